/* The thread guard. A thread that ends inside a scope (or pause) would leave it on its stack
 * for good: the full hook face installed for the whole process, its arena
 * live, and a later thread with the same id able to exit it. The first frame
 * a thread pushes puts a guard in the thread state's dict; CPython clears
 * that dict on the ending thread itself, with the GIL held, so the guard's
 * deallocation unlinks what is still open there: scopes are released
 * (survivors retained as usual), pauses dropped, the stack's references
 * given back.
 *
 * The guard belongs to the main interpreter's thread state of its OS thread,
 * the only one that may open frames (scopes are refused, pauses are no-ops
 * elsewhere: scope.c). A sub-interpreter's thread state is cleared when that
 * interpreter is destroyed or (3.13+) at the end of each exec, while the
 * thread's main frames live on: a guard there released the main scope
 * (issue 24). And a thread state is not always cleared by its own thread:
 * in a fork child CPython clears the other threads' states on the forking
 * thread, and Py_Finalize clears daemon threads' states on the main thread.
 * The stack is this OS thread's (thread-locals), so a guard deallocated on
 * another thread must leave the current thread's frames alone: it only
 * counts (guards_foreign); the frames it stood for died with their thread.
 * "Guarded" is remembered as the thread state the guard was put in, so a
 * thread whose state was cleared and made anew (PyGILState_Release /
 * Ensure from a C thread) gets a new guard. */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/thread_guard.h"

#include "pyext/scope.h"

typedef struct {
    PyObject_HEAD
    PyThreadState *tstate;  /* the thread state whose dict holds it */
    unsigned long thread_id; /* PyThread_get_thread_ident() of its thread */
} ThreadGuardObject;

static uint64_t frames_orphaned;
static uint64_t guards_foreign;

/* The thread state this OS thread's guard was put in (NULL: none). */
static _Thread_local PyThreadState *guarded_tstate;

static void release_orphan(objarena_frame_t *f);

static void ThreadGuard_dealloc(ThreadGuardObject *self) {
    if (self->thread_id == PyThread_get_thread_ident()) {
        if (guarded_tstate == self->tstate)
            guarded_tstate = NULL;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        for (objarena_frame_t *f = objarena_thread_top(); f; f = objarena_thread_top())
            release_orphan(f);
        PyErr_Restore(type, value, tb);
    } else {
        guards_foreign++; /* another thread's state, cleared here (fork child, finalization) */
    }
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
    PyThreadState *tstate = PyThreadState_Get();
    if (tstate == guarded_tstate || PyThreadState_GetInterpreter(tstate) != PyInterpreterState_Main())
        return;
    PyObject *dict = PyThreadState_GetDict();
    if (!dict)
        return;
    objarena_frame_t pause = {0};
    objarena_pause_enter(&pause);
    ThreadGuardObject *guard = (ThreadGuardObject *)PyType_GenericAlloc(&ThreadGuardType, 0);
    if (guard) {
        guard->tstate = tstate;
        guard->thread_id = PyThread_get_thread_ident();
    }
    if (guard && PyDict_SetItemString(dict, "_objarena.thread_guard", (PyObject *)guard) == 0)
        guarded_tstate = tstate;
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

uint64_t objarena_thread_guards_foreign(void) { return guards_foreign; }

int objarena_thread_guard_ready(void) { return PyType_Ready(&ThreadGuardType); }
