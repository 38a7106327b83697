/* The thread guard. A thread that ends inside a scope (or pause) would leave it on its stack
 * for good: the full hook face installed for the whole process, its arena
 * live, and a later thread with the same id able to exit it. The first frame
 * a thread pushes puts a guard in the thread state's dict; CPython clears
 * that dict on the ending thread itself, with the GIL held, so the guard's
 * deallocation unlinks what is still open there: scopes are released
 * (survivors retained as usual), pauses dropped, the stack's references
 * given back. */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/thread_guard.h"

#include "pyext/scope.h"

typedef struct {
    PyObject_HEAD
} ThreadGuardObject;

static uint64_t frames_orphaned;

static void release_orphan(objarena_frame_t *f);

static void ThreadGuard_dealloc(ThreadGuardObject *self) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    for (objarena_frame_t *f = objarena_thread_top(); f; f = objarena_thread_top())
        release_orphan(f);
    PyErr_Restore(type, value, tb);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject ThreadGuardType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "objarena._objarena._ThreadGuard",
    .tp_basicsize = sizeof(ThreadGuardObject),
    .tp_dealloc = (destructor)ThreadGuard_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = NULL,
};

/* Puts this thread's guard in place (once per thread). Called right after a
 * push, paused, so the dict entry and guard come from the saved allocator. */
void objarena_ensure_thread_guard(void) {
    static _Thread_local bool guarded;
    if (guarded)
        return;
    PyObject *dict = PyThreadState_GetDict();
    if (!dict)
        return;
    objarena_frame_t pause = {0};
    objarena_pause_enter(&pause);
    PyObject *guard = PyType_GenericAlloc(&ThreadGuardType, 0);
    if (guard && PyDict_SetItemString(dict, "_objarena.thread_guard", guard) == 0)
        guarded = true;
    else
        PyErr_Clear();
    Py_XDECREF(guard);
    objarena_pause_exit(&pause);
}

static void release_orphan(objarena_frame_t *f) {
    PyObject *owner = f->owner;
    if (f->arena)
        objarena_scope_orphan((objarena_scope_t *)f); /* a scope's frame is its first member */
    else
        objarena_thread_unlink(f);
    frames_orphaned++;
    Py_XDECREF(owner); /* the stack's reference */
}

uint64_t objarena_frames_orphaned(void) { return frames_orphaned; }

int objarena_thread_guard_ready(void) { return PyType_Ready(&ThreadGuardType); }
