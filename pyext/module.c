/* The `_objarena` extension module: Scope and Paused context managers,
 * EscapeError, info(), and the tracemalloc.start()/stop() guards. The public Python
 * API is the `objarena` package, which re-exports these. Everything that
 * runs between a scope's enter and exit is C, so no Python frame or code
 * object of objarena's own is ever allocated inside a user's arena. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "arena/testing.h"
#include "pyext/freelists.h"
#include "pyext/gc_counts.h"
#include "pyext/scope.h"

static PyObject *EscapeError;        /* objarena.EscapeError(RuntimeError) */
static PyObject *tracemalloc_stop;   /* the original _tracemalloc.stop */
static PyObject *tracemalloc_start;  /* the original _tracemalloc.start */

/* ---------------------------------------------------------- thread guard */

/* A thread that ends inside a scope (or pause) would leave it on its stack
 * for good: the full hook face installed for the whole process, its arena
 * live, and a later thread with the same id able to exit it. The first frame
 * a thread pushes puts a guard in the thread state's dict; CPython clears
 * that dict on the ending thread itself, with the GIL held, so the guard's
 * deallocation unlinks what is still open there: scopes are released
 * (survivors retained as usual), pauses dropped, the stack's references
 * given back. */
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
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_objarena._ThreadGuard",
    .tp_basicsize = sizeof(ThreadGuardObject),
    .tp_dealloc = (destructor)ThreadGuard_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = NULL,
};

/* Puts this thread's guard in place (once per thread). Called right after a
 * push, paused, so the dict entry and guard come from the saved allocator. */
static void ensure_thread_guard(void) {
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

/* ---------------------------------------------------------------- Scope */

typedef struct {
    PyObject_HEAD
    objarena_scope_t *scope;
    PyObject *pool; /* the Pool object whose chunks the scope uses, or NULL */
    PyObject *task; /* the asyncio task running when it was entered, or NULL */
    bool strict;
} ScopeObject;

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

/* ----------------------------------------------------------------- Pool */

typedef struct {
    PyObject_HEAD
    arena_pool_t *pool; /* NULL once closed */
    size_t chunk_size;
    bool huge_pages;
} PoolObject;

static PyTypeObject PoolType;

static int parse_size(PyObject *value, const char *name, size_t *out) {
    if (value == NULL || value == Py_None) {
        *out = 0;
        return 0;
    }
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int (bytes) or None, not %.100s", name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow > 0 || (overflow == 0 && (unsigned long long)v > SIZE_MAX)) {
        PyErr_Format(PyExc_ValueError, "%s is too large: %R", name, value);
        return -1;
    }
    if (overflow < 0 || v <= 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a positive number of bytes, got %R", name, value);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* domains: an iterable of "obj" / "mem"; "obj" is required. */
static int parse_domains(PyObject *value, bool *capture_mem) {
    if (value == NULL || value == Py_None)
        return 0;
    /* A plain string names one domain: domains="obj" means ("obj",). */
    PyObject *seq = PyUnicode_Check(value) ? PyTuple_Pack(1, value)
                                           : PySequence_Fast(value, "domains must be a tuple of names, e.g. (\"obj\", \"mem\")");
    if (!seq)
        return -1;
    bool obj = false, mem = false;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "domain names are str, not %.100s", Py_TYPE(item)->tp_name);
            Py_DECREF(seq);
            return -1;
        }
        bool is_obj = PyUnicode_CompareWithASCIIString(item, "obj") == 0;
        bool is_mem = !is_obj && PyUnicode_CompareWithASCIIString(item, "mem") == 0;
        if ((is_obj && obj) || (is_mem && mem)) {
            PyErr_Format(PyExc_ValueError, "domain %R is named twice", item);
            Py_DECREF(seq);
            return -1;
        }
        if (is_obj)
            obj = true;
        else if (is_mem)
            mem = true;
        else {
            PyErr_Format(PyExc_ValueError, "unknown domain %R: use \"obj\" and optionally \"mem\"", item);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    if (!obj) {
        PyErr_SetString(PyExc_ValueError, "domains must include \"obj\"");
        return -1;
    }
    *capture_mem = mem;
    return 0;
}

static int parse_flag(PyObject *value, const char *name, bool *out) {
    if (value == NULL)
        return 0; /* keep default */
    if (!PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be True or False, not %.100s", name, Py_TYPE(value)->tp_name);
        return -1;
    }
    *out = value == Py_True;
    return 0;
}

/* collect=: True ("auto", the default), False (none), "auto", "young", "full". */
static const char *const collect_mode_names[] = {"none", "auto", "young", "full"};

static int parse_collect(PyObject *value, int *out) {
    if (value == NULL)
        return 0; /* keep default */
    if (PyBool_Check(value)) {
        *out = value == Py_True ? OBJARENA_COLLECT_AUTO : OBJARENA_COLLECT_NONE;
        return 0;
    }
    if (PyUnicode_Check(value)) {
        for (int m = OBJARENA_COLLECT_AUTO; m <= OBJARENA_COLLECT_FULL; m++) {
            if (PyUnicode_CompareWithASCIIString(value, collect_mode_names[m]) == 0) {
                *out = m;
                return 0;
            }
        }
        PyErr_Format(PyExc_ValueError, "collect must be True, False, 'auto', 'young' or 'full', not %R", value);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "collect must be True, False, 'auto', 'young' or 'full', not %.100s",
                 Py_TYPE(value)->tp_name);
    return -1;
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
        if (options.chunk_size && options.chunk_size != p->chunk_size) {
            PyErr_SetString(PyExc_ValueError, "a pool's scopes use the pool's chunk_size");
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

static PyObject *Scope_enter(ScopeObject *self, PyObject *Py_UNUSED(ignored)) {
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
    objarena_frame_t pause = {0};
    objarena_pause_enter(&pause);
    self->task = current_asyncio_task();
    objarena_pause_exit(&pause);
    ensure_thread_guard();
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *stats_dict(const objarena_scope_t *scope);

/* escaped_objects' search: adds obj to result[type(obj)] once. */
typedef struct escape_search {
    uint64_t id;
    PyObject *result; /* {type: [objects]} */
    PyObject *seen;   /* ids of the untracked objects already added */
    int failed;
} escape_search_t;

static int add_escaped(escape_search_t *es, PyObject *obj) {
    PyObject *type = (PyObject *)Py_TYPE(obj);
    PyObject *bucket = PyDict_GetItemWithError(es->result, type);
    if (!bucket) {
        if (PyErr_Occurred() || !(bucket = PyList_New(0)) || PyDict_SetItem(es->result, type, bucket) < 0) {
            Py_XDECREF(bucket);
            return -1;
        }
        Py_DECREF(bucket); /* the dict holds it */
    }
    return PyList_Append(bucket, obj);
}

/* tp_traverse visitor: an arena object the gc does not track (str, int,
 * float, an untracked dict or tuple...) is found through a tracked object
 * that refers to it. */
static int visit_untracked(PyObject *obj, void *arg) {
    escape_search_t *es = arg;
    if (es->failed || !obj || arena_block_arena_id(obj) != es->id)
        return 0;
    if (PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj))
        return 0; /* found as itself */
    PyObject *key = PyLong_FromVoidPtr(obj);
    int known = key ? PySet_Contains(es->seen, key) : -1;
    if (known == 0 && (PySet_Add(es->seen, key) < 0 || add_escaped(es, obj) < 0))
        known = -1;
    Py_XDECREF(key);
    if (known < 0)
        es->failed = 1;
    return 0;
}

/* {type: [objects]} of the objects inside chunks of this scope's arena that
 * can be found safely: gc-tracked ones, and untracked ones referred to by a
 * tracked object (one level: what a tracked container holds). Blocks held
 * only by C code, or only by other untracked objects, are not found. */
static PyObject *escaped_objects(uint64_t id) {
    PyObject *gc = PyImport_ImportModule("gc");
    if (!gc)
        return NULL;
    PyObject *objects = PyObject_CallMethod(gc, "get_objects", NULL);
    Py_DECREF(gc);
    if (!objects)
        return NULL;
    escape_search_t es = {id, PyDict_New(), PySet_New(NULL), 0};
    for (Py_ssize_t i = 0; es.result && es.seen && !es.failed && i < PyList_GET_SIZE(objects); i++) {
        PyObject *obj = PyList_GET_ITEM(objects, i);
        if (arena_block_arena_id(obj) == id && add_escaped(&es, obj) < 0)
            es.failed = 1;
        traverseproc traverse = Py_TYPE(obj)->tp_traverse;
        if (traverse && !es.failed)
            traverse(obj, visit_untracked, &es);
    }
    Py_DECREF(objects);
    Py_XDECREF(es.seen);
    if (es.failed || !es.seen)
        Py_CLEAR(es.result);
    return es.result;
}

static PyObject *Scope_escaped(ScopeObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->scope->frame.state == FRAME_NEW)
        return PyDict_New();
    return escaped_objects(self->scope->arena_id);
}

static PyObject *raise_escape_error(ScopeObject *self) {
    const arena_stats_t *st = &self->scope->exit_stats;
    PyObject *escaped = escaped_objects(self->scope->arena_id);
    if (!escaped)
        return NULL;
    PyObject *parts = PyList_New(0);
    PyObject *key, *value;
    Py_ssize_t pos = 0, found = 0;
    while (parts && PyDict_Next(escaped, &pos, &key, &value)) {
        found += PyList_GET_SIZE(value);
        PyObject *part = PyUnicode_FromFormat("%s: %zd", ((PyTypeObject *)key)->tp_name, PyList_GET_SIZE(value));
        if (!part || PyList_Append(parts, part) < 0)
            Py_CLEAR(parts);
        Py_XDECREF(part);
    }
    PyObject *sep = parts ? PyUnicode_FromString(", ") : NULL;
    PyObject *types = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    Py_XDECREF(parts);
    if (types) {
        PyObject *exc = PyObject_CallFunction(
            EscapeError, "N",
            PyUnicode_FromFormat("%llu block(s) escaped the scope, retaining %llu chunk(s) (%llu bytes); "
                                 "survivors found by type: {%U}%s",
                                 (unsigned long long)st->live_blocks_at_release,
                                 (unsigned long long)st->chunks_retained, (unsigned long long)st->bytes_retained,
                                 types,
                                 (uint64_t)found < st->live_blocks_at_release
                                     ? "; the other blocks are not reachable from the gc's objects (buffers, "
                                       "objects held by C code or by other untracked objects)"
                                     : ""));
        if (exc) {
            PyObject *counts = PyDict_New();
            pos = 0;
            while (counts && PyDict_Next(escaped, &pos, &key, &value)) {
                PyObject *n = PyLong_FromSsize_t(PyList_GET_SIZE(value));
                if (!n || PyDict_SetItem(counts, key, n) < 0)
                    Py_CLEAR(counts);
                Py_XDECREF(n);
            }
            PyObject *blocks = PyLong_FromUnsignedLongLong(st->live_blocks_at_release);
            PyObject *bytes = PyLong_FromUnsignedLongLong(st->bytes_retained);
            if (counts && blocks && bytes && PyObject_SetAttrString(exc, "blocks", blocks) == 0 &&
                PyObject_SetAttrString(exc, "bytes_retained", bytes) == 0 &&
                PyObject_SetAttrString(exc, "types", counts) == 0)
                PyErr_SetObject(EscapeError, exc);
            Py_XDECREF(counts);
            Py_XDECREF(blocks);
            Py_XDECREF(bytes);
            Py_DECREF(exc);
        }
        Py_DECREF(types);
    }
    Py_DECREF(escaped);
    return NULL;
}

/* Scopes whose allocations fell back to the saved allocator (no chunk could
 * be had: the region's address space, poison's quarantine or the OS's
 * memory ran out), and those allocations, process-wide. */
static uint64_t scopes_fell_back, fallback_allocations;
static bool fallback_warned;

/* At exit (a safe point: the hook never calls Python): count a scope's
 * fallbacks and warn once per process. A warning filter that turns it into
 * an error must not turn a served allocation into a failure: the error is
 * reported as unraisable and the exit goes on. */
static void report_fallbacks(const objarena_scope_t *scope) {
    uint64_t n = scope->frame.alloc_fallbacks;
    if (n == 0)
        return;
    scopes_fell_back++;
    fallback_allocations += n;
    if (fallback_warned)
        return;
    fallback_warned = true;
    arena_global_stats_t g;
    arena_global_stats(&g);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    /* An enclosing scope may be capturing: the warnings machinery's registry
     * entries would be its blocks. */
    objarena_frame_t pause = {0};
    objarena_pause_enter(&pause);
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "objarena: %llu allocation(s) of a scope came from the saved allocator, not the arena: "
                         "no chunk could be mapped (region: %llu MiB mapped, %llu MiB quarantined by poison mode, "
                         "of %llu MiB reserved; or the OS refused memory). Such blocks are not given back at "
                         "exit. Warned once; info()['scopes_fell_back'] counts them",
                         (unsigned long long)n, (unsigned long long)(g.bytes_mapped >> 20),
                         (unsigned long long)(g.quarantined_bytes >> 20),
                         (unsigned long long)(g.reserve_bytes >> 20)) < 0)
        PyErr_WriteUnraisable(NULL);
    objarena_pause_exit(&pause);
    PyErr_Restore(type, value, tb);
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

static PyObject *Scope_exit(ScopeObject *self, PyObject *const *args, Py_ssize_t nargs) {
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
        report_fallbacks(self->scope);
    if (was_active && same_thread)
        Py_DECREF(self);
    if (rc < 0)
        return NULL;
    if (self->strict && !exception_pending && self->scope->exit_stats.live_blocks_at_release > 0)
        return raise_escape_error(self);
    Py_RETURN_FALSE;
}

static PyObject *Scope_get_stats(ScopeObject *self, void *Py_UNUSED(closure)) {
    PyObject *d = stats_dict(self->scope);
    if (!d)
        return NULL;
    PyObject *proxy = PyDictProxy_New(d);
    Py_DECREF(d);
    return proxy;
}

static const char *frame_state_name(const objarena_frame_t *frame) {
    static const char *names[] = {"new", "active", "exited"};
    return names[frame->state];
}

static PyObject *Scope_get_state(ScopeObject *self, void *Py_UNUSED(closure)) {
    return PyUnicode_FromString(frame_state_name(&self->scope->frame));
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
                                frame_state_name(&self->scope->frame),
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

static PyTypeObject ScopeType = {
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

static int set_u64(PyObject *d, const char *key, uint64_t value) {
    PyObject *v = PyLong_FromUnsignedLongLong(value);
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

static int set_str(PyObject *d, const char *key, const char *value) {
    PyObject *v = PyUnicode_FromString(value);
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* What the exit collected: "exit_collection" ("none", "gen0", "gen1",
 * "full"), "exit_collect_seconds", "full_collection_deferred",
 * "objects_promoted" (a gen-1/full collection ran during the phase). */
static int add_exit_collection(PyObject *d, const objarena_scope_t *scope) {
    static const char *const names[] = {"none", "gen0", "gen1", "full"};
    const objarena_exit_collection_t *c = &scope->exit_collection;
    PyObject *seconds = PyFloat_FromDouble(c->seconds);
    int rc = (!seconds || set_str(d, "exit_collection", names[c->generation + 1]) < 0 ||
              PyDict_SetItemString(d, "exit_collect_seconds", seconds) < 0 ||
              PyDict_SetItemString(d, "full_collection_deferred", c->full_deferred ? Py_True : Py_False) < 0 ||
              PyDict_SetItemString(d, "objects_promoted", c->promoted ? Py_True : Py_False) < 0 ||
              set_u64(d, "freelist_blocks_freed", c->freelist_blocks_freed) < 0)
                 ? -1
                 : 0;
    Py_XDECREF(seconds);
    return rc;
}

static PyObject *stats_dict(const objarena_scope_t *scope) {
    arena_stats_t st;
    objarena_scope_stats(scope, &st);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    if (set_u64(d, "bytes_requested", st.bytes_requested) < 0 ||
        set_u64(d, "bytes_mapped", st.bytes_mapped) < 0 || set_u64(d, "peak_mapped", st.peak_mapped) < 0 ||
        set_u64(d, "blocks_allocated", st.blocks_allocated) < 0 ||
        set_u64(d, "frees_absorbed", st.blocks_freed) < 0 ||
        set_u64(d, "frees_forwarded", scope->frame.frees_forwarded) < 0 ||
        set_u64(d, "alloc_failures", scope->frame.alloc_failures) < 0 ||
        set_u64(d, "alloc_fallbacks", scope->frame.alloc_fallbacks) < 0 ||
        set_u64(d, "limit_hits", scope->frame.limit_hits) < 0 ||
        set_u64(d, "limit_grace_allocs", scope->frame.limit_grace_allocs) < 0 ||
        set_u64(d, "limit_grace_bytes", scope->frame.limit_grace_bytes) < 0 ||
        set_u64(d, "effective_limit", scope->effective_limit) < 0 ||
        set_u64(d, "charged_bytes", scope->frame.charged) < 0 ||
        set_u64(d, "charged_bytes_peak", scope->frame.charged_peak) < 0 ||
        set_u64(d, "chunks_mapped", st.chunks_mapped) < 0 ||
        set_u64(d, "large_mappings", st.large_mappings) < 0 ||
        set_u64(d, "chunks_released", st.chunks_released) < 0 ||
        set_u64(d, "bytes_released", st.bytes_released) < 0 ||
        set_u64(d, "chunks_retained", st.chunks_retained) < 0 ||
        set_u64(d, "bytes_retained", st.bytes_retained) < 0 ||
        set_u64(d, "live_blocks_at_exit", st.live_blocks_at_release) < 0 ||
        set_u64(d, "bytes_pages_released", st.bytes_pages_released) < 0 ||
        set_u64(d, "chunks_parked", st.chunks_parked) < 0 ||
        set_u64(d, "blocks_reused", st.blocks_reused) < 0 ||
        set_u64(d, "chunks_adopted", st.chunks_adopted) < 0 ||
        set_u64(d, "bytes_adopted", st.bytes_adopted) < 0 ||
        PyDict_SetItemString(d, "exited", st.released ? Py_True : Py_False) < 0 ||
        add_exit_collection(d, scope) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* --------------------------------------------------------------- Paused */

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
    ensure_thread_guard();
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
    return PyUnicode_FromFormat("<objarena.paused %s>", frame_state_name(&self->frame));
}

static PyMethodDef Paused_methods[] = {
    {"__enter__", (PyCFunction)Paused_enter, METH_NOARGS, "Allocate from the saved allocator again."},
    {"__exit__", (PyCFunction)(void (*)(void))Paused_exit, METH_FASTCALL, "Resume the enclosing scope."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PausedType = {
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

static PyObject *Pool_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"max_warm_bytes", "chunk_size", "huge_pages", NULL};
    PyObject *max_warm = NULL, *chunk_size = NULL, *huge = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOO:Pool", kwlist, &max_warm, &chunk_size, &huge))
        return NULL;
    arena_pool_config_t config = {0, 0, false};
    if (parse_size(max_warm, "max_warm_bytes", &config.max_warm_bytes) < 0 ||
        parse_size(chunk_size, "chunk_size", &config.chunk_size) < 0 ||
        parse_flag(huge, "huge_pages", &config.huge_pages) < 0)
        return NULL;
    if (objarena_check_chunk_size(config.chunk_size, config.huge_pages) < 0)
        return NULL;
    arena_pool_t *pool = NULL;
    arena_error_t err = arena_pool_create(&config, &pool); /* (config checked above: no EINVAL) */
    if (err != ARENA_OK) {
        PyErr_SetString(PyExc_MemoryError, "objarena: cannot create the pool");
        return NULL;
    }
    PoolObject *self = (PoolObject *)type->tp_alloc(type, 0);
    if (!self) {
        arena_pool_destroy(pool);
        return NULL;
    }
    self->pool = pool;
    self->chunk_size = arena_default_chunk_size(config.chunk_size, config.huge_pages);
    self->huge_pages = config.huge_pages;
    return (PyObject *)self;
}

static PyObject *Pool_close(PoolObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->pool && arena_pool_destroy(self->pool) != ARENA_OK) {
        PyErr_SetString(PyExc_RuntimeError, "a scope of this pool is still active");
        return NULL;
    }
    if (self->pool)
        objarena_trim_malloc(); /* (see Pool.trim) */
    self->pool = NULL;
    Py_RETURN_NONE;
}

static void Pool_dealloc(PoolObject *self) {
    /* Scopes hold a reference while they may use the pool, so none is open. */
    if (self->pool)
        arena_pool_destroy(self->pool);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Pool_trim(PoolObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"keep_bytes", NULL};
    PyObject *keep = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:trim", kwlist, &keep))
        return NULL;
    size_t keep_bytes = 0;
    if (keep && keep != Py_None) {
        if (!PyLong_Check(keep) || PyBool_Check(keep)) {
            PyErr_Format(PyExc_TypeError, "keep_bytes must be an int, not %.100s", Py_TYPE(keep)->tp_name);
            return NULL;
        }
        keep_bytes = PyLong_AsSize_t(keep);
        if (keep_bytes == (size_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "keep_bytes must be a non-negative number of bytes, got %R", keep);
            return NULL;
        }
    }
    if (self->pool)
        arena_pool_trim(self->pool, keep_bytes);
    objarena_trim_malloc(); /* what the pool's scopes left in the C heap (see scope's trim_malloc) */
    Py_RETURN_NONE;
}

static PyObject *Pool_scope(PoolObject *self, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "Pool.scope() takes keyword arguments only");
        return NULL;
    }
    if (kwds && PyDict_GetItemString(kwds, "pool")) {
        PyErr_SetString(PyExc_TypeError, "Pool.scope() takes no pool= (its scopes use this pool); "
                                         "for another pool call other_pool.scope()");
        return NULL;
    }
    PyObject *kw = kwds ? PyDict_Copy(kwds) : PyDict_New();
    if (!kw || PyDict_SetItemString(kw, "pool", (PyObject *)self) < 0) {
        Py_XDECREF(kw);
        return NULL;
    }
    PyObject *empty = PyTuple_New(0);
    PyObject *scope = empty ? PyObject_Call((PyObject *)&ScopeType, empty, kw) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(kw);
    return scope;
}

static PyObject *Pool_enter(PoolObject *self, PyObject *Py_UNUSED(ignored)) {
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *Pool_exit(PoolObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    PyObject *r = Pool_close(self, NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *Pool_get_stats(PoolObject *self, void *Py_UNUSED(closure)) {
    arena_pool_stats_t st = {0};
    if (self->pool)
        arena_pool_get_stats(self->pool, &st);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    if (set_u64(d, "warm_bytes", st.warm_bytes) < 0 || set_u64(d, "warm_chunks", st.warm_chunks) < 0 ||
        set_u64(d, "hits", st.hits) < 0 || set_u64(d, "misses", st.misses) < 0 ||
        set_u64(d, "parked", st.parked) < 0 || set_u64(d, "trimmed_bytes", st.trimmed_bytes) < 0 ||
        set_u64(d, "scopes_active", st.arenas_open) < 0 ||
        set_u64(d, "warm_retained_bytes", st.warm_retained_bytes) < 0 ||
        set_u64(d, "warm_retained_chunks", st.warm_retained_chunks) < 0 ||
        set_u64(d, "retained_hits", st.retained_hits) < 0 ||
        PyDict_SetItemString(d, "closed", self->pool ? Py_False : Py_True) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    PyObject *proxy = PyDictProxy_New(d);
    Py_DECREF(d);
    return proxy;
}

static PyObject *Pool_repr(PoolObject *self) {
    arena_pool_stats_t st = {0};
    if (self->pool)
        arena_pool_get_stats(self->pool, &st);
    return PyUnicode_FromFormat("<objarena.Pool %s chunk_size=%zu warm_bytes=%llu hits=%llu misses=%llu>",
                                self->pool ? "open" : "closed", self->chunk_size,
                                (unsigned long long)st.warm_bytes, (unsigned long long)st.hits,
                                (unsigned long long)st.misses);
}

static PyMethodDef Pool_methods[] = {
    {"scope", (PyCFunction)(void (*)(void))Pool_scope, METH_VARARGS | METH_KEYWORDS,
     "scope(**options) -> scope\n\nA scope whose chunks come from, and go back to, this pool."},
    {"trim", (PyCFunction)(void (*)(void))Pool_trim, METH_VARARGS | METH_KEYWORDS,
     "trim(keep_bytes=0)\n\nGive warm chunks back to the OS until at most keep_bytes stay, and the C\n"
     "heap's free memory (malloc_trim(0), which the pool's scopes skip)."},
    {"close", (PyCFunction)Pool_close, METH_NOARGS,
     "close()\n\nGive every warm chunk back, and the C heap's free memory; the pool can make no\n"
     "more scopes."},
    {"__enter__", (PyCFunction)Pool_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Pool_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Pool_getset[] = {
    {"stats", (getter)Pool_get_stats, NULL, "Read-only mapping: warm bytes/chunks, hits, misses...", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "objarena.Pool",
    .tp_basicsize = sizeof(PoolObject),
    .tp_dealloc = (destructor)Pool_dealloc,
    .tp_repr = (reprfunc)Pool_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pool(*, max_warm_bytes=256 MiB, chunk_size=None, huge_pages=False)\n\n"
              "Warm memory with an explicit lifetime (like APR pools): empty chunks of its\n"
              "scopes stay mapped, up to max_warm_bytes, and the next scope of the pool\n"
              "allocates into them without page faults. trim()/close() (or leaving a\n"
              "`with Pool()` block) give the memory back. A bare scope() keeps nothing.\n"
              "huge_pages: its chunks are advised as transparent huge pages (chunk_size\n"
              "then defaults to 2 MiB and may not be smaller).",
    .tp_methods = Pool_methods,
    .tp_getset = Pool_getset,
    .tp_new = Pool_new,
};

/* ------------------------------------------------------------ functions */

static PyObject *objarena_info(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    objarena_hook_stats_t hs;
    objarena_hook_get_stats(&hs);
    arena_global_stats_t g;
    arena_global_stats(&g);
    int depth = 0, capturing = objarena_thread_capture() != NULL;
    for (objarena_frame_t *f = objarena_thread_top(); f; f = f->parent)
        depth += f->arena != NULL;
    uint64_t trims, trims_skipped;
    objarena_trim_stats(&trims, &trims_skipped);
    objarena_collect_stats_t cs;
    objarena_collect_stats(&cs);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    PyObject *collect_seconds = PyFloat_FromDouble(cs.seconds);
    if (!collect_seconds || PyDict_SetItemString(d, "exit_collect_seconds", collect_seconds) < 0 ||
        set_u64(d, "exit_collections_young", cs.young) < 0 || set_u64(d, "exit_collections_full", cs.full) < 0 ||
        set_u64(d, "exit_collections_deferred", cs.deferred) < 0 ||
        set_u64(d, "freelist_blocks_freed", cs.freelist_blocks_freed) < 0 ||
        set_u64(d, "scopes_fell_back", scopes_fell_back) < 0 ||
        set_u64(d, "frames_orphaned", frames_orphaned) < 0 ||
        set_u64(d, "fallback_allocations", fallback_allocations) < 0) {
        Py_XDECREF(collect_seconds);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(collect_seconds);
    if (PyDict_SetItemString(d, "hook_installed", hs.installed ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(d, "hook_on_top", hs.hook_on_top ? Py_True : Py_False) < 0 ||
        set_str(d, "hook_face", hs.full_face ? "full" : "thin") < 0 ||
        PyDict_SetItemString(d, "installed_over_tracemalloc", hs.installed_over_tracemalloc ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(d, "installed_under_tracemalloc", hs.installed_under_tracemalloc ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(d, "capturing", capturing ? Py_True : Py_False) < 0 ||
        set_u64(d, "scope_depth", (uint64_t)depth) < 0 || set_u64(d, "chain_repairs", hs.chain_repairs) < 0 ||
        set_u64(d, "blocks_moved_out", hs.moved_out) < 0 || set_u64(d, "malloc_trims", trims) < 0 ||
        set_u64(d, "malloc_trims_skipped", trims_skipped) < 0 || set_u64(d, "arenas_live", g.arenas_live) < 0 ||
        set_u64(d, "arenas_created", g.arenas_created) < 0 || set_u64(d, "bytes_mapped", g.bytes_mapped) < 0 ||
        set_u64(d, "peak_mapped", g.peak_mapped) < 0 || set_u64(d, "chunks_live", g.chunks_live) < 0 ||
        set_u64(d, "large_live", g.large_live) < 0 || set_u64(d, "retained_chunks", g.chunks_retained) < 0 ||
        set_u64(d, "retained_bytes", g.bytes_retained) < 0 ||
        set_u64(d, "retained_blocks", g.blocks_retained) < 0 ||
        set_u64(d, "retained_unmapped_total", g.retained_unmapped_total) < 0 ||
        set_u64(d, "quarantined_bytes", g.quarantined_bytes) < 0 ||
        set_u64(d, "bytes_pages_released", g.bytes_pages_released) < 0 ||
        set_u64(d, "warm_bytes", g.warm_bytes) < 0 ||
        set_u64(d, "warm_retained_bytes", g.warm_retained_bytes) < 0 ||
        set_u64(d, "chunks_adopted_total", g.chunks_adopted_total) < 0 ||
        PyDict_SetItemString(d, "mem_hook_installed", hs.mem_installed ? Py_True : Py_False) < 0 ||
        set_u64(d, "reserve_bytes", g.reserve_bytes) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *objarena_owns(PyObject *Py_UNUSED(module), PyObject *obj) {
    return PyBool_FromLong(arena_owns(obj));
}

static PyObject *objarena_arena_id_of(PyObject *Py_UNUSED(module), PyObject *obj) {
    return PyLong_FromUnsignedLongLong(arena_block_arena_id(obj));
}

static PyObject *objarena_collect(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    objarena_frame_t *capture = objarena_thread_capture();
    if (capture) {
        PyErr_SetString(PyExc_RuntimeError, "collect() inside an active scope would allocate into it");
        return NULL;
    }
    objarena_collect_caches();
    arena_pool_t *default_pool = arena_default_pool();
    if (default_pool)
        arena_pool_trim(default_pool, 0); /* the empty chunk bare scopes keep warm goes back too */
    Py_RETURN_NONE;
}

static PyObject *objarena_verify_chain(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    return PyBool_FromLong(objarena_hook_verify_chain());
}

/* Replacement for _tracemalloc.stop: tracemalloc.stop() restores, over
 * whatever is installed, the allocator it saved at start; when that was
 * before objarena's hook, the hook is gone and arena blocks would reach
 * pymalloc's free. Re-establish the chain before anything else runs. */
static PyObject *objarena_tracemalloc_stop(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    if (!tracemalloc_stop) {
        PyErr_SetString(PyExc_RuntimeError, "tracemalloc.stop is not available");
        return NULL;
    }
    PyObject *r = PyObject_CallNoArgs(tracemalloc_stop);
    objarena_hook_verify_chain();
    return r;
}

/* Replacement for _tracemalloc.start: tracemalloc stacks its hook on the
 * allocator installed now. Outside scopes that is objarena's thin face,
 * under which scopes could not capture: install the full face first. */
static PyObject *objarena_tracemalloc_start(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (!tracemalloc_start) {
        PyErr_SetString(PyExc_RuntimeError, "tracemalloc.start is not available");
        return NULL;
    }
    objarena_hook_prepare_for_wrapper();
    return PyObject_Vectorcall(tracemalloc_start, args, (size_t)nargs, NULL);
}

/* _guard_tracemalloc(start, stop) -> (guarded start, guarded stop). */
static PyObject *objarena_guard_tracemalloc(PyObject *module, PyObject *args) {
    PyObject *start, *stop;
    if (!PyArg_ParseTuple(args, "OO:_guard_tracemalloc", &start, &stop))
        return NULL;
    if (!PyCallable_Check(start) || !PyCallable_Check(stop)) {
        PyErr_SetString(PyExc_TypeError, "expected the original tracemalloc.start and tracemalloc.stop");
        return NULL;
    }
    if (!tracemalloc_stop) {
        Py_INCREF(stop);
        tracemalloc_stop = stop;
        Py_INCREF(start);
        tracemalloc_start = start;
    }
    PyObject *guarded_start = PyObject_GetAttrString(module, "_tracemalloc_start");
    if (!guarded_start)
        return NULL;
    PyObject *guarded_stop = PyObject_GetAttrString(module, "_tracemalloc_stop");
    PyObject *pair = guarded_stop ? PyTuple_Pack(2, guarded_start, guarded_stop) : NULL;
    Py_DECREF(guarded_start);
    Py_XDECREF(guarded_stop);
    return pair;
}

/* atexit: tracemalloc stops itself late in finalization, after which more
 * objects are freed. If our hook sits on tracemalloc, stop it now, through
 * the guard, while the chain can still be repaired. */
static PyObject *objarena_at_exit(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    objarena_hook_stats_t hs;
    objarena_hook_get_stats(&hs);
    if (hs.installed && hs.installed_over_tracemalloc && tracemalloc_stop)
        return objarena_tracemalloc_stop(module, NULL);
    Py_RETURN_NONE;
}

/* _testing_fail_commit_after(n): the OS layer's failure switch (arena/testing.h).
 * After n more successful chunk commits the next one fails as if the OS had
 * refused memory; -1 turns injection off. For fault-injection tests only. */
static PyObject *objarena_testing_fail_commit_after(PyObject *module, PyObject *arg) {
    (void)module;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < -1) {
        PyErr_SetString(PyExc_ValueError, "_testing_fail_commit_after: n must be >= -1");
        return NULL;
    }
    arena_testing_fail_commit_after(n);
    Py_RETURN_NONE;
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

/* _gc_counts() -> (read, [3 counts]) (tests): the counts read from the
 * interpreter's gc state, to compare with gc.get_stats(). */
static PyObject *objarena_gc_counts_py(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    long counts[3] = {-1, -1, -1};
    bool read = objarena_gc_read_collections(counts);
    return Py_BuildValue("O[lll]", read ? Py_True : Py_False, counts[0], counts[1], counts[2]);
}

/* _freelists_check_layout() -> number of freelists checked (tests): the
 * layouts freelists.c walks, against CPython's counters. RuntimeError on a
 * mismatch. */
static PyObject *objarena_freelists_check_layout_py(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    char what[200];
    int n = objarena_freelists_check_layout(what, sizeof what);
    if (n < 0) {
        PyErr_Format(PyExc_RuntimeError, "objarena: %s", what);
        return NULL;
    }
    return PyLong_FromLong(n);
}

static PyMethodDef module_methods[] = {
    {"info", objarena_info, METH_NOARGS,
     "info() -> dict\n\nProcess-wide state: hook installed and on top, arenas, retained chunks/bytes/blocks."},
    {"owns", objarena_owns, METH_O, "owns(obj) -> bool\n\nIs obj's memory inside an arena chunk?"},
    {"arena_id_of", objarena_arena_id_of, METH_O,
     "arena_id_of(obj) -> int\n\nId of the arena obj lives in (0: not in an arena)."},
    {"collect", objarena_collect, METH_NOARGS,
     "collect()\n\nFull gc plus CPython's cache flushes, as at scope exit, and the empty chunk that\n"
     "scopes without a pool keep warm (OBJARENA_WARM_BYTES) goes back to the OS; outside scopes only."},
    {"_verify_chain", objarena_verify_chain, METH_NOARGS, "Re-establish the hook if it was removed."},
    {"_tracemalloc_stop", objarena_tracemalloc_stop, METH_NOARGS,
     "stop()\n\nStop tracing Python memory allocations (objarena keeps its hook installed)."},
    {"_tracemalloc_start", (PyCFunction)(void (*)(void))objarena_tracemalloc_start, METH_FASTCALL,
     "start(nframe: int = 1)\n\nStart tracing Python memory allocations (over objarena's full hook)."},
    {"_guard_tracemalloc", objarena_guard_tracemalloc, METH_VARARGS, NULL},
    {"_at_exit", objarena_at_exit, METH_NOARGS, NULL},
    {"_gc_counts", objarena_gc_counts_py, METH_NOARGS, "(read, [collections per generation]) from the gc state."},
    {"_freelists_check_layout", objarena_freelists_check_layout_py, METH_NOARGS, NULL},
    {"_testing_fail_commit_after", objarena_testing_fail_commit_after, METH_O,
     "_testing_fail_commit_after(n)\n\nTests only: the (n+1)th chunk commit from now fails; -1: off."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef objarena_module = {
    PyModuleDef_HEAD_INIT, "_objarena",
    "Low-level objarena: use the `objarena` package.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__objarena(void) {
#ifdef Py_GIL_DISABLED
    PyErr_SetString(PyExc_RuntimeError,
                    "objarena does not support free-threaded CPython builds (Py_GIL_DISABLED): "
                    "the free-threaded GC finds objects by walking mimalloc heaps, and arena "
                    "objects are outside them");
    return NULL;
#endif
    if (PyType_Ready(&ScopeType) < 0 || PyType_Ready(&PausedType) < 0 || PyType_Ready(&PoolType) < 0 ||
        PyType_Ready(&ThreadGuardType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&objarena_module);
    if (!m)
        return NULL;
    if (!EscapeError) {
        EscapeError = PyErr_NewExceptionWithDoc(
            "objarena.EscapeError",
            "Raised by a strict scope whose blocks outlived it. Attributes: blocks (live blocks\n"
            "at exit), bytes_retained (bytes of the chunks they pin), types ({type: count} of\n"
            "gc-tracked survivors). The memory is safe either way: survivors stay valid.",
            PyExc_RuntimeError, NULL);
        if (!EscapeError)
            goto fail;
    }
    Py_INCREF(&ScopeType);
    Py_INCREF(&PausedType);
    Py_INCREF(EscapeError);
    Py_INCREF(&PoolType);
    if (PyModule_AddObject(m, "Pool", (PyObject *)&PoolType) < 0 ||
        PyModule_AddObject(m, "scope", (PyObject *)&ScopeType) < 0 ||
        PyModule_AddObject(m, "paused", (PyObject *)&PausedType) < 0 ||
        PyModule_AddObject(m, "EscapeError", EscapeError) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_CHUNK_SIZE", (long)ARENA_DEFAULT_CHUNK_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MIN_CHUNK_SIZE", (long)ARENA_MIN_CHUNK_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MAX_CHUNK_SIZE", (long)ARENA_MAX_CHUNK_SIZE) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
