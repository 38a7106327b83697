/* objarena.paused (paused_type.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/paused_type.h"

#include "pyext/module/scope_type.h"
#include "pyext/module/thread_guard.h"
#include "pyext/freelists.h"
#include "pyext/scope.h"

typedef struct {
    PyObject_HEAD
    objarena_frame_t frame;
} PausedObject;

static PyObject *Paused_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwds && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "paused() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static void Paused_dealloc(PausedObject *self) {
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Paused_enter(PausedObject *self, PyObject *Py_UNUSED(ignored)) {
    Py_INCREF(self); /* held by the thread's stack while active */
    if (objarena_pause_enter(&self->frame) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->frame.owner = self;
    /* The phase's dead floats, tuples, dicts... wait on CPython's freelists
     * and would be handed out again under the pause, making what the pause
     * is for (objects that outlive the phase) arena blocks. Only with a
     * scope below: outside scopes a pause changes nothing. */
    for (objarena_frame_t *f = self->frame.parent; f; f = f->parent) {
        if (f->arena) {
            objarena_trim_freelists();
            break;
        }
    }
    objarena_ensure_thread_guard();
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *Paused_exit(PausedObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    bool was_active = self->frame.state == FRAME_ACTIVE;
    bool same_thread = self->frame.thread_id == PyThread_get_thread_ident();
    int rc = objarena_pause_exit(&self->frame);
    if (was_active && same_thread)
        Py_DECREF(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_FALSE;
}

static PyObject *Paused_repr(PausedObject *self) {
    return PyUnicode_FromFormat("<objarena.paused %s>", objarena_frame_state_name(&self->frame));
}

static PyMethodDef Paused_methods[] = {
    {"__enter__", (PyCFunction)Paused_enter, METH_NOARGS, "Allocate from the saved allocator again."},
    {"__exit__", (PyCFunction)(void (*)(void))Paused_exit, METH_FASTCALL, "Resume the enclosing scope."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject PausedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "objarena.paused",
    .tp_basicsize = sizeof(PausedObject),
    .tp_dealloc = (destructor)Paused_dealloc,
    .tp_repr = (reprfunc)Paused_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "paused()\n\nInside a scope: allocate from the saved (normal) allocator until the block\n"
              "ends, for objects that must outlive the phase (caches, results). Outside any\n"
              "scope it changes nothing.",
    .tp_methods = Paused_methods,
    .tp_new = Paused_new,
};
