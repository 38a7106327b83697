/* ScopedCoroutine: the step driver of task scopes (scoped_coroutine_type.h).
 *
 * asyncio's Task drives its coroutine through PyIter_Send (am_send here) and
 * coro.throw(exc); each call is one step. Around it the wrapper resumes the
 * task's segment (its parked scopes go back on top of the thread's stack) and
 * parks it again, so what the step allocates goes to the task's scopes and
 * what the loop and other tasks allocate between steps does not. Measured
 * against a Python wrapper and a per-step hook (docs/design.md, "Task
 * scopes"): the C wrapper is the cheapest that sees every step. */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/scoped_coroutine_type.h"

#include "pyext/coro_finalizer.h"
#include "pyext/module/scope_type.h"
#include "pyext/task_scope.h"

typedef struct {
    PyObject_HEAD
    PyObject *coro;   /* the wrapped coroutine */
    PyObject *scope;  /* objarena.scope entered at the first step and exited when the coroutine ends, or NULL */
    objarena_task_segment_t seg;
    bool started;
    bool finished;
    bool defer_exit;  /* the scope exits in finish() (the task's done callback), not in the last step */
    bool finalizer_held; /* coro's own finalizer is held back until ours has run (coro_finalizer.h) */
} ScopedCoroutineObject;

/* ---- Ready: an awaitable already done ---- */

typedef ReadyObject_public ReadyObject;

PyObject *objarena_ready(PyObject *value) {
    ReadyObject *r = PyObject_New(ReadyObject, &ReadyType);
    if (!r)
        return NULL;
    Py_INCREF(value);
    r->value = value;
    return (PyObject *)r;
}

static void Ready_dealloc(ReadyObject *self) {
    Py_XDECREF(self->value);
    PyObject_Free(self);
}

static PyObject *Ready_await(PyObject *self) {
    Py_INCREF(self);
    return self;
}

static PyObject *set_stop_iteration(PyObject *value) {
    if (value == Py_None)
        return NULL; /* iternext: NULL without an exception is StopIteration(None) */
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
    return NULL;
}

static PyObject *Ready_next(ReadyObject *self) {
    PyObject *v = self->value ? self->value : Py_None;
    Py_INCREF(v);
    Py_CLEAR(self->value);
    set_stop_iteration(v);
    Py_DECREF(v);
    return NULL;
}

static PyAsyncMethods Ready_async = {.am_await = Ready_await};

PyTypeObject ReadyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "objarena._Ready",
    .tp_basicsize = sizeof(ReadyObject),
    .tp_dealloc = (destructor)Ready_dealloc,
    .tp_as_async = &Ready_async,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Ready_next,
};

/* ---- ScopedCoroutine ---- */

static PyObject *SC_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"coro", "scope", "defer_exit", NULL};
    PyObject *coro, *scope = Py_None;
    int defer_exit = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$p:ScopedCoroutine", kwlist, &coro, &scope, &defer_exit))
        return NULL;
    if (scope != Py_None && !PyObject_TypeCheck(scope, &ScopeType)) {
        PyErr_Format(PyExc_TypeError, "scope must be an objarena.scope or None, not %.100s", Py_TYPE(scope)->tp_name);
        return NULL;
    }
    if (scope != Py_None && ((ScopeObject *)scope)->scope->frame.state != FRAME_NEW) {
        PyErr_SetString(PyExc_ValueError, "the task's scope must not have been entered yet");
        return NULL;
    }
    if (!PyObject_HasAttrString(coro, "send") || !PyObject_HasAttrString(coro, "throw")) {
        PyErr_Format(PyExc_TypeError, "ScopedCoroutine wraps a coroutine, not %.100s", Py_TYPE(coro)->tp_name);
        return NULL;
    }
    ScopedCoroutineObject *self = (ScopedCoroutineObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    Py_INCREF(coro);
    self->coro = coro;
    self->defer_exit = defer_exit;
    /* Dropped unfinished, the coroutine is closed by SC_finalize inside the
     * task's scopes; its own finalizer, which the collector may call first
     * when both die in a cycle, would close it outside them. */
    self->finalizer_held = objarena_coro_hold_finalizer(coro);
    if (scope != Py_None) {
        Py_INCREF(scope);
        self->scope = scope;
    }
    return (PyObject *)self;
}

static void release_owner(void *owner) { Py_XDECREF((PyObject *)owner); }

/* Starts a step: resume the segment; at the first step, enter the task's
 * scope (above the step's base, so it parks with the segment). */
static int step_begin(ScopedCoroutineObject *self) {
    if (objarena_task_resume(&self->seg) < 0)
        return -1;
    if (!self->started) {
        self->started = true;
        if (self->scope) {
            PyObject *r = Scope_enter((ScopeObject *)self->scope, NULL);
            if (!r) {
                objarena_task_park(&self->seg);
                return -1;
            }
            Py_DECREF(r);
        }
    }
    return 0;
}

/* The coroutine ended in this step (returned *result, or raised: result
 * NULL, exception set): exit the task's scope, inside the step, where it is
 * on top. A strict scope's EscapeError replaces a return value; an error of
 * the exit under a pending exception is reported as unraisable. */
static PySendResult step_finish(ScopedCoroutineObject *self, PySendResult status, PyObject **result) {
    self->finished = true;
    ScopeObject *scope = (ScopeObject *)self->scope;
    if (!scope || scope->scope->frame.state != FRAME_ACTIVE || self->defer_exit)
        return status; /* (deferred: it parks with the segment; finish() exits it) */
    if (status == PYGEN_ERROR) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *args[3] = {type ? type : Py_None, value ? value : Py_None, tb ? tb : Py_None};
        PyObject *r = Scope_exit(scope, args, 3);
        if (!r)
            PyErr_WriteUnraisable(self->scope);
        Py_XDECREF(r);
        PyErr_Restore(type, value, tb);
        return status;
    }
    PyObject *args[3] = {Py_None, Py_None, Py_None};
    PyObject *r = Scope_exit(scope, args, 3);
    if (!r) {
        Py_CLEAR(*result);
        return PYGEN_ERROR;
    }
    Py_DECREF(r);
    return status;
}

/* Budget (per step, over the coroutine's own send): resume and park, a few
 * dozen instructions plus one per parked frame. */
static PySendResult SC_am_send(ScopedCoroutineObject *self, PyObject *arg, PyObject **result) {
    *result = NULL;
    if (step_begin(self) < 0)
        return PYGEN_ERROR;
    PySendResult status = PyIter_Send(self->coro, arg, result);
    if (status != PYGEN_NEXT)
        status = step_finish(self, status, result);
    objarena_task_park(&self->seg);
    return status;
}

/* Converts an am_send-style outcome to the iterator protocol. */
static PyObject *as_iter_result(PySendResult status, PyObject *result) {
    if (status == PYGEN_NEXT)
        return result;
    if (status == PYGEN_RETURN) {
        set_stop_iteration(result);
        Py_DECREF(result);
        if (!PyErr_Occurred())
            PyErr_SetNone(PyExc_StopIteration);
    }
    return NULL;
}

static PyObject *SC_send(ScopedCoroutineObject *self, PyObject *arg) {
    PyObject *result;
    PySendResult status = SC_am_send(self, arg, &result);
    return as_iter_result(status, result);
}

static PyObject *SC_iternext(ScopedCoroutineObject *self) {
    PyObject *result;
    PySendResult status = SC_am_send(self, Py_None, &result);
    if (status == PYGEN_RETURN && result == Py_None) {
        Py_DECREF(result);
        return NULL;
    }
    return as_iter_result(status, result);
}

/* A method call on the coroutine (throw, close) as one step. An exception
 * out of it ends the coroutine; StopIteration carries its return value. */
static PyObject *call_step(ScopedCoroutineObject *self, const char *method, PyObject *const *args, Py_ssize_t nargs) {
    if (step_begin(self) < 0)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(self->coro, method);
    PyObject *r = fn ? PyObject_Vectorcall(fn, args, nargs, NULL) : NULL;
    Py_XDECREF(fn);
    PySendResult status = PYGEN_NEXT;
    if (!r) {
        status = PYGEN_ERROR;
        if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            r = value ? PyObject_GetAttrString(value, "value") : (Py_INCREF(Py_None), Py_None);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            status = r ? PYGEN_RETURN : PYGEN_ERROR;
        }
    } else if (strcmp(method, "close") == 0) {
        status = PYGEN_RETURN; /* closed: the coroutine is done */
    }
    if (status != PYGEN_NEXT)
        status = step_finish(self, status, &r);
    objarena_task_park(&self->seg);
    if (strcmp(method, "close") == 0)
        return r; /* close() returns its value, never StopIteration */
    return as_iter_result(status, r);
}

static PyObject *SC_throw(ScopedCoroutineObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return call_step(self, "throw", args, nargs);
}

static PyObject *SC_close(ScopedCoroutineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->started || self->finished) {
        self->finished = true;
        return PyObject_CallMethod(self->coro, "close", NULL);
    }
    return call_step(self, "close", NULL, 0);
}

/* finish(task): the task's done callback (defer_exit). In its last step the
 * coroutine's return value, and the future it awaited last (which the
 * loop's wake-up callback holds until that step has returned), are still
 * alive; exiting the task's scope a callback later, they are gone, so they
 * are not counted as survivors (nor pin a chunk). The scope is resumed on
 * top of the thread's stack, exited, and the segment parked again. */
static PyObject *SC_finish(ScopedCoroutineObject *self, PyObject *task) {
    ScopeObject *scope = (ScopeObject *)self->scope;
    if (!self->finished || !scope || scope->scope->frame.state != FRAME_PARKED || self->seg.running)
        Py_RETURN_NONE;
    PyObject *exc = NULL; /* the task's exception, for the limit's message (scope_type.c) */
    if (task != Py_None) {
        PyObject *cancelled = PyObject_CallMethod(task, "cancelled", NULL);
        if (!cancelled)
            return NULL;
        int is_cancelled = PyObject_IsTrue(cancelled);
        Py_DECREF(cancelled);
        if (!is_cancelled)
            exc = PyObject_CallMethod(task, "exception", NULL);
        else
            (exc = Py_None, Py_INCREF(exc));
        if (!exc)
            return NULL;
    }
    if (objarena_task_resume(&self->seg) < 0) {
        Py_XDECREF(exc);
        return NULL;
    }
    PyObject *args[3] = {Py_None, Py_None, Py_None};
    if (exc && exc != Py_None) {
        args[0] = (PyObject *)Py_TYPE(exc);
        args[1] = exc;
    }
    PyObject *r = Scope_exit(scope, args, 3);
    objarena_task_park(&self->seg);
    Py_XDECREF(exc);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *SC_await(PyObject *self) {
    Py_INCREF(self);
    return self;
}

/* A task that never finishes (its loop was closed, or it was dropped): close
 * the coroutine inside its scopes so its finally blocks run there, and exit
 * the task's scope; whatever is still parked is released. */
static void SC_finalize(ScopedCoroutineObject *self) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (self->started && !self->finished && self->coro && !self->seg.running) {
        PyObject *r = SC_close(self, NULL);
        if (!r)
            PyErr_WriteUnraisable((PyObject *)self);
        Py_XDECREF(r);
    }
    if (self->finalizer_held && self->coro) {
        /* Closed above, or never started (its finalizer warns that it was
         * never awaited), or not closable here: its own finalizer again. */
        objarena_coro_give_back_finalizer(self->coro);
        self->finalizer_held = false;
    }
    if (self->seg.top && !self->seg.running)
        objarena_task_discard(&self->seg, release_owner);
    PyErr_Restore(type, value, tb);
}

static int SC_traverse(ScopedCoroutineObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->coro);
    Py_VISIT(self->scope);
    return 0;
}

static int SC_clear(ScopedCoroutineObject *self) {
    Py_CLEAR(self->coro);
    Py_CLEAR(self->scope);
    return 0;
}

static void SC_dealloc(ScopedCoroutineObject *self) {
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(self);
    if (self->seg.top && !self->seg.running)
        objarena_task_discard(&self->seg, release_owner);
    SC_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Anything else (cr_frame, cr_code, __qualname__...) is the coroutine's. */
static PyObject *SC_getattro(ScopedCoroutineObject *self, PyObject *name) {
    PyObject *r = PyObject_GenericGetAttr((PyObject *)self, name);
    if (r || !PyErr_ExceptionMatches(PyExc_AttributeError) || !self->coro)
        return r;
    PyErr_Clear();
    return PyObject_GetAttr(self->coro, name);
}

static PyObject *SC_repr(ScopedCoroutineObject *self) {
    return PyUnicode_FromFormat("<objarena.asyncio.ScopedCoroutine %R scope=%R>", self->coro,
                                self->scope ? self->scope : Py_None);
}

static PyObject *SC_get_scope(ScopedCoroutineObject *self, void *Py_UNUSED(closure)) {
    PyObject *s = self->scope ? self->scope : Py_None;
    Py_INCREF(s);
    return s;
}

static PyObject *SC_get_coro(ScopedCoroutineObject *self, void *Py_UNUSED(closure)) {
    PyObject *c = self->coro ? self->coro : Py_None;
    Py_INCREF(c);
    return c;
}

static PyAsyncMethods SC_async = {
    .am_await = SC_await,
    .am_send = (sendfunc)SC_am_send,
};

static PyMethodDef SC_methods[] = {
    {"send", (PyCFunction)SC_send, METH_O, "send(value): one step of the coroutine inside the task's scopes."},
    {"throw", (PyCFunction)(void (*)(void))SC_throw, METH_FASTCALL,
     "throw(exc): one step of the coroutine, raising exc in it, inside the task's scopes."},
    {"close", (PyCFunction)SC_close, METH_NOARGS, "close(): close the coroutine inside the task's scopes."},
    {"finish", (PyCFunction)SC_finish, METH_O,
     "finish(task): exit the task's scope once the task is done (its done callback, with defer_exit=True)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef SC_getset[] = {
    {"scope", (getter)SC_get_scope, NULL, "The task's objarena.scope (None: the task has none of its own).", NULL},
    {"coro", (getter)SC_get_coro, NULL, "The wrapped coroutine.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject ScopedCoroutineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "objarena.asyncio.ScopedCoroutine",
    .tp_basicsize = sizeof(ScopedCoroutineObject),
    .tp_dealloc = (destructor)SC_dealloc,
    .tp_repr = (reprfunc)SC_repr,
    .tp_as_async = &SC_async,
    .tp_getattro = (getattrofunc)SC_getattro,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ScopedCoroutine(coro, scope=None, *, defer_exit=False)\n\n"
              "Wraps a coroutine for an asyncio Task: every step runs with the task's scopes\n"
              "active (parked between steps); `scope` (not entered) is entered at the first\n"
              "step and exited when the coroutine ends, or with defer_exit by finish(task), the\n"
              "task's done callback. objarena.asyncio.task_factory makes them.",
    .tp_traverse = (traverseproc)SC_traverse,
    .tp_clear = (inquiry)SC_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)SC_iternext,
    .tp_methods = SC_methods,
    .tp_getset = SC_getset,
    .tp_new = SC_new,
    .tp_finalize = (destructor)SC_finalize,
};
