/* objarena.scope: the Python type over a C scope (scope.h). Everything that
 * runs between a scope's enter and exit is C, so no Python frame or code
 * object of objarena's own is ever allocated inside a user's arena. */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/scope_type.h"

#include "pyext/module/args.h"
#include "pyext/module/escapes.h"
#include "pyext/module/fallback_report.h"
#include "pyext/module/pool_type.h"
#include "pyext/module/scope_stats.h"
#include "pyext/module/scoped_coroutine_type.h"
#include "pyext/module/thread_guard.h"
#include "pyext/task_scope.h"

/* The asyncio task running on this thread, or NULL (no loop, or asyncio
 * never imported: nothing is imported for the question). New reference;
 * never fails (errors are cleared). */
static PyObject *current_asyncio_task(void) {
    PyObject *name = PyUnicode_FromString("asyncio");
    PyObject *mod = name ? PyImport_GetModule(name) : NULL;
    Py_XDECREF(name);
    PyObject *task = NULL;
    if (mod) {
        PyObject *loop = PyObject_CallMethod(mod, "_get_running_loop", NULL);
        if (loop && loop != Py_None)
            task = PyObject_CallMethod(mod, "current_task", NULL);
        Py_XDECREF(loop);
        Py_DECREF(mod);
    }
    if (task == Py_None)
        Py_CLEAR(task);
    PyErr_Clear();
    return task;
}

static PyObject *Scope_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"limit", "chunk_size", "strict", "collect", "poison", "reuse",
                             "domains", "pool", "huge_pages", "adopt", "trim_malloc", NULL};
    PyObject *limit = NULL, *chunk_size = NULL, *strict = NULL, *collect = NULL, *poison = NULL;
    PyObject *reuse = NULL, *domains = NULL, *pool = NULL, *huge_pages = NULL, *adopt = NULL;
    PyObject *trim_malloc = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOOOOOOOOOO:scope", kwlist, &limit, &chunk_size, &strict,
                                     &collect, &poison, &reuse, &domains, &pool, &huge_pages, &adopt,
                                     &trim_malloc))
        return NULL;
    objarena_scope_options_t options;
    objarena_scope_options_init(&options);
    /* Without domains=, capture where this CPython keeps a phase's container
     * storage: from 3.13 dict key tables come from PyMem_Malloc. */
    options.capture_mem = PY_VERSION_HEX >= 0x030D0000;
    bool strict_flag = false;
    if (parse_size(limit, "limit", &options.limit) < 0 ||
        parse_size(chunk_size, "chunk_size", &options.chunk_size) < 0 ||
        parse_flag(strict, "strict", &strict_flag) < 0 || parse_collect(collect, &options.collect) < 0 ||
        parse_flag(poison, "poison", &options.poison) < 0 || parse_flag(reuse, "reuse", &options.reuse) < 0 ||
        parse_flag(huge_pages, "huge_pages", &options.huge_pages) < 0 ||
        parse_flag(adopt, "adopt", &options.adopt) < 0 ||
        parse_domains(domains, &options.capture_mem) < 0)
        return NULL;
    options.strict = strict_flag;
    /* A pool keeps memory warm on purpose: its scopes leave the C heap alone
     * too (Pool.trim() and close() trim it), unless asked. */
    options.trim_malloc = !(pool && pool != Py_None);
    if (trim_malloc != Py_None && parse_flag(trim_malloc, "trim_malloc", &options.trim_malloc) < 0)
        return NULL;
    if (pool && pool != Py_None) {
        if (!PyObject_TypeCheck(pool, &PoolType)) {
            PyErr_Format(PyExc_TypeError, "pool must be an objarena.Pool, not %.100s", Py_TYPE(pool)->tp_name);
            return NULL;
        }
        PoolObject *p = (PoolObject *)pool;
        if (!p->pool) {
            PyErr_SetString(PyExc_ValueError, "the pool is closed");
            return NULL;
        }
        if (chunk_size && chunk_size != Py_None) { /* even the pool's own: the docs refuse it (issue 24) */
            PyErr_Format(PyExc_ValueError,
                         "chunk_size cannot be given to a pool's scope: its scopes use the pool's chunk_size (%zu)",
                         p->chunk_size);
            return NULL;
        }
        if (objarena_check_chunk_size(p->chunk_size, options.huge_pages) < 0)
            return NULL;
        options.pool = p->pool;
        options.chunk_size = p->chunk_size; /* what its arena uses (and repr shows) */
    } else {
        pool = NULL;
    }
    objarena_scope_t *scope = objarena_scope_new(&options);
    if (!scope)
        return NULL;
    ScopeObject *self = (ScopeObject *)type->tp_alloc(type, 0);
    if (!self) {
        objarena_scope_free(scope);
        return NULL;
    }
    self->scope = scope;
    self->strict = strict_flag;
    Py_XINCREF(pool);
    self->pool = pool;
    return (PyObject *)self;
}

static void Scope_dealloc(ScopeObject *self) {
    objarena_scope_free(self->scope);
    Py_XDECREF(self->task);
    Py_XDECREF(self->pool);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyObject *Scope_enter(ScopeObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->pool && !((PoolObject *)self->pool)->pool) {
        PyErr_SetString(PyExc_ValueError, "the scope's pool was closed");
        return NULL;
    }
    /* The thread's stack holds a reference while the scope is active, so an
     * active scope is never deallocated under the hook. */
    Py_INCREF(self);
    if (objarena_scope_enter(self->scope) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->scope->frame.owner = self;
    /* After the push the lookup would allocate into the arena: pause it. */
    if (!objarena_task_current()) { /* (a task scope parks at suspensions: nothing to explain) */
        objarena_frame_t pause = {0};
        objarena_pause_enter(&pause);
        self->task = current_asyncio_task();
        objarena_pause_exit(&pause);
    }
    objarena_ensure_thread_guard();
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *Scope_escaped(ScopeObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->scope->frame.state == FRAME_NEW)
        return PyDict_New();
    return objarena_escaped_objects(self->scope->arena_id);
}

/* Scopes are per thread, not per asyncio task: a scope held across an
 * await captures what other tasks allocate meanwhile, and their scopes
 * nest with it and exit out of order. A scope entered inside a task whose
 * exit fails (out of order, another thread) says so in the error. */
static void explain_task_switch(ScopeObject *self) {
    PyObject *task = self->task;
    self->task = NULL;
    if (task && PyErr_ExceptionMatches(PyExc_RuntimeError)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_Format(PyExc_RuntimeError,
                     "%S. This scope was entered in asyncio task %R: scopes are per thread, not per task, "
                     "so a scope held across an await captures what the other tasks allocate meanwhile, and "
                     "their scopes nest with it and exit out of order. Keep scopes around synchronous code, "
                     "or run the phase with objarena.run in a worker thread (loop.run_in_executor)",
                     value ? value : Py_None, task);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
    Py_XDECREF(task);
}

/* The hook cannot call Python, so a MemoryError raised by the scope's limit
 * is a bare MemoryError where it is raised (a handler inside the phase sees
 * that, and phase.stats['limit_hits']). The exit is the safe point: a
 * MemoryError leaving the scope gets the message. */
static void explain_limit(ScopeObject *self, PyObject *exc) {
    const objarena_scope_t *s = self->scope;
    if (!s->frame.limit_hits || !exc || !PyErr_GivenExceptionMatches(exc, PyExc_MemoryError))
        return;
    PyObject *args = PyObject_GetAttrString(exc, "args");
    bool bare = args && PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 0;
    Py_XDECREF(args);
    if (!bare) {
        PyErr_Clear();
        return;
    }
    const char *whose = s->effective_limit < s->options.limit || !s->options.limit ? "an enclosing scope's" : "its";
    PyObject *msg = PyUnicode_FromFormat(
        "objarena: the scope's allocation of %zu bytes was refused by %s limit: %zu bytes for this scope, "
        "%llu bytes mapped at the peak, %zu bytes of big buffers charged at the peak (limit=%zu given to this "
        "scope; 0: none of its own)",
        s->frame.limit_refused_bytes, whose, s->effective_limit,
        (unsigned long long)s->exit_stats.peak_mapped, s->frame.charged_peak, s->options.limit);
    PyObject *new_args = msg ? PyTuple_Pack(1, msg) : NULL;
    if (!new_args || PyObject_SetAttrString(exc, "args", new_args) < 0)
        PyErr_Clear();
    Py_XDECREF(msg);
    Py_XDECREF(new_args);
}

PyObject *Scope_exit(ScopeObject *self, PyObject *const *args, Py_ssize_t nargs) {
    bool exception_pending = nargs > 0 && args[0] != Py_None;
    bool was_active = self->scope->frame.state == FRAME_ACTIVE;
    bool same_thread = self->scope->frame.thread_id == PyThread_get_thread_ident();
    int rc = objarena_scope_exit(self->scope);
    if (rc < 0)
        explain_task_switch(self);
    else
        Py_CLEAR(self->task);
    if (rc == 0 && exception_pending && nargs > 1)
        explain_limit(self, args[1]);
    /* Drop the stack's reference once the scope left the stack. */
    if (was_active && same_thread)
        objarena_report_fallbacks(self->scope);
    if (was_active && same_thread)
        Py_DECREF(self);
    if (rc < 0)
        return NULL;
    if (self->strict && !exception_pending && self->scope->exit_stats.live_blocks_at_release > 0)
        return objarena_raise_escape_error(self->scope);
    Py_RETURN_FALSE;
}

/* `async with objarena.scope()`: a task scope. It needs a step driver
 * (task_scope.h), i.e. a task made by objarena.asyncio's task factory: in
 * any other task the scope would capture the loop and the other tasks
 * between this task's steps. */
static PyObject *Scope_aenter(ScopeObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!objarena_task_current()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "`async with objarena.scope()` needs a task created by objarena's task factory "
                        "(objarena.asyncio.install(loop), or loop.set_task_factory(objarena.asyncio.task_factory"
                        "(predicate=lambda coro: False)) to wrap tasks without giving each a scope): a scope in "
                        "another task would capture what the loop and other tasks allocate while it waits");
        return NULL;
    }
    PyObject *ready = objarena_ready(Py_None); /* made before the scope captures */
    if (!ready)
        return NULL;
    PyObject *r = Scope_enter(self, NULL);
    if (!r) {
        Py_DECREF(ready);
        return NULL;
    }
    Py_SETREF(((ReadyObject_public *)ready)->value, r);
    return ready;
}

static PyObject *Scope_aexit(ScopeObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *r = Scope_exit(self, args, nargs);
    if (!r)
        return NULL;
    PyObject *ready = objarena_ready(r);
    Py_DECREF(r);
    return ready;
}

static PyObject *Scope_get_stats(ScopeObject *self, void *Py_UNUSED(closure)) {
    PyObject *d = objarena_scope_stats_dict(self->scope);
    if (!d)
        return NULL;
    PyObject *proxy = PyDictProxy_New(d);
    Py_DECREF(d);
    return proxy;
}

const char *objarena_frame_state_name(const objarena_frame_t *frame) {
    static const char *names[] = {"new", "active", "exited", "parked"};
    return names[frame->state];
}

static PyObject *Scope_get_state(ScopeObject *self, void *Py_UNUSED(closure)) {
    return PyUnicode_FromString(objarena_frame_state_name(&self->scope->frame));
}

static PyObject *Scope_get_arena_id(ScopeObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(self->scope->arena_id);
}

static PyObject *Scope_get_domains(ScopeObject *self, void *Py_UNUSED(closure)) {
    return self->scope->options.capture_mem ? Py_BuildValue("(ss)", "obj", "mem") : Py_BuildValue("(s)", "obj");
}

static PyObject *Scope_repr(ScopeObject *self) {
    arena_stats_t st;
    objarena_scope_stats(self->scope, &st);
    const objarena_scope_options_t *o = &self->scope->options;
    return PyUnicode_FromFormat("<objarena.scope %s domains=%s limit=%zu chunk_size=%zu strict=%s collect=%s "
                                "blocks=%llu mapped=%llu retained=%llu>",
                                objarena_frame_state_name(&self->scope->frame),
                                o->capture_mem ? "('obj', 'mem')" : "('obj',)", o->limit,
                                o->chunk_size,
                                self->strict ? "True" : "False", collect_mode_names[o->collect],
                                (unsigned long long)st.blocks_allocated,
                                (unsigned long long)(st.released ? st.peak_mapped : st.bytes_mapped),
                                (unsigned long long)st.bytes_retained);
}

static PyMethodDef Scope_methods[] = {
    {"__enter__", (PyCFunction)Scope_enter, METH_NOARGS,
     "Start capturing this thread's object allocations into a fresh arena."},
    {"__exit__", (PyCFunction)(void (*)(void))Scope_exit, METH_FASTCALL,
     "Stop capturing, clean CPython's caches, release the arena (survivors are retained)."},
    {"__aenter__", (PyCFunction)Scope_aenter, METH_NOARGS,
     "async with: a task scope (parked while its task waits); needs objarena.asyncio's task factory."},
    {"__aexit__", (PyCFunction)(void (*)(void))Scope_aexit, METH_FASTCALL, "Exit the task scope, as __exit__."},
    {"escaped", (PyCFunction)Scope_escaped, METH_NOARGS,
     "escaped() -> dict[type, list]\n\nGC-tracked objects that live in this scope's arena now, grouped "
     "by type (empty when nothing escaped)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Scope_getset[] = {
    {"stats", (getter)Scope_get_stats, NULL,
     "Read-only mapping: live counters while active, the exit snapshot afterwards.", NULL},
    {"state", (getter)Scope_get_state, NULL, "'new', 'active' or 'exited'.", NULL},
    {"domains", (getter)Scope_get_domains, NULL, "The allocator domains the scope captures: ('obj',) or ('obj', 'mem').",
     NULL},
    {"arena_id", (getter)Scope_get_arena_id, NULL, "Process-unique id of the scope's arena (0 before entry).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Scope_doc,
"scope(*, limit=None, chunk_size=None, strict=False, collect=True, poison=False,\n"
"      reuse=True, domains=None, pool=None, huge_pages=False, adopt=True,\n"
"      trim_malloc=None)\n\n"
"A phase whose object allocations (PYMEM_DOMAIN_OBJ) on this thread come from\n"
"a fresh arena, given back to the OS when the phase ends.\n\n"
"limit: bytes the arena may map; past it allocations fail (MemoryError inside\n"
"  the phase) and the scope still exits cleanly.\n"
"chunk_size: power of two, 64 KiB to 1 GiB (default 1 MiB; 2 MiB with huge_pages).\n"
"strict: after exit raise EscapeError if any block is still alive.\n"
"collect: what the exit collects. True/'auto' (default): the young gc\n"
"  generations the phase's objects can be in; then, if blocks are still live,\n"
"  a full gc plus CPython's cache flushes when it fits the pace (at most ~2%\n"
"  of wall time) or strict=True, else that full collection is deferred (the\n"
"  chunks go back when a later collection frees their last block). 'young':\n"
"  never a full gc at exit. 'full': a full gc at every exit. False: nothing.\n"
"poison: make released memory inaccessible (debug; also OBJARENA_POISON=1).\n"
"reuse: recycle blocks of up to 256 KiB freed inside the scope (per-size\n"
"  free lists); False: pure bump allocation, frees are no-ops until exit.\n"
"domains: (\"obj\",) or (\"obj\", \"mem\"): also capture PyMem_Malloc requests of\n"
"  up to 512 bytes (small list/set storage, 3.13 dict keys...); larger ones, and\n"
"  captured blocks grown past 512 bytes, stay with the saved allocator.\n"
"  Default: (\"obj\", \"mem\") on 3.13+, where dict key tables are PyMem_Malloc'd,\n"
"  (\"obj\",) before.\n"
"pool: an objarena.Pool whose warm chunks the scope uses and returns to.\n"
"huge_pages: ask for transparent huge pages (MADV_HUGEPAGE) on fresh chunks:\n"
"  one fault per 2 MiB instead of 512. chunk_size then defaults to 2 MiB and\n"
"  may not be smaller; a chunk's 2 MiB become resident at its first touch.\n"
"adopt: before mapping a fresh chunk, allocate into the free pages of chunks\n"
"  that earlier scopes' survivors keep (never into a survivor's page).\n"
"trim_malloc: when the outermost scope of the thread exits, hand the C heap's\n"
"  free memory back to the OS (glibc malloc_trim(0)): blocks over 512 bytes\n"
"  (big list arrays, buffers) come from malloc, which keeps freed heap memory.\n"
"  Default: True, False for pool scopes (Pool.trim() and close() do it). Paced:\n"
"  an exit skips its trim while less than 50 times the last trim's duration has\n"
"  passed (info()['malloc_trims'], ['malloc_trims_skipped']).\n\n"
"Nothing reachable is ever freed: chunks holding survivors are retained until\n"
"their last block is freed, and reported in .stats. If no chunk can be had (the\n"
"region's address space or the OS's memory ran out), blocks come from the saved\n"
"allocator instead (.stats['alloc_fallbacks']); only `limit` raises MemoryError.");

PyTypeObject ScopeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "objarena.scope",
    .tp_basicsize = sizeof(ScopeObject),
    .tp_dealloc = (destructor)Scope_dealloc,
    .tp_repr = (reprfunc)Scope_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Scope_doc,
    .tp_methods = Scope_methods,
    .tp_getset = Scope_getset,
    .tp_new = Scope_new,
};
