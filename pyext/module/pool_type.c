/* objarena.Pool: warm chunks with an explicit lifetime (pool_type.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/pool_type.h"

#include "pyext/module/args.h"
#include "pyext/module/dict_set.h"
#include "pyext/module/scope_type.h"
#include "pyext/scope.h"

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

/* The statistics Pool.stats and repr show: the live pool's, or those close() kept. */
static void pool_stats(const PoolObject *self, arena_pool_stats_t *st) {
    if (self->pool)
        arena_pool_get_stats(self->pool, st);
    else
        *st = self->closed_stats;
}

static PyObject *Pool_close(PoolObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->pool)
        Py_RETURN_NONE;
    arena_pool_stats_t st;
    arena_pool_get_stats(self->pool, &st);
    if (st.arenas_open) {
        PyErr_SetString(PyExc_RuntimeError, "a scope of this pool is still active");
        return NULL;
    }
    /* Trim first so that the kept statistics count the last chunks given back. */
    arena_pool_trim(self->pool, 0);
    arena_pool_get_stats(self->pool, &self->closed_stats);
    if (arena_pool_destroy(self->pool) != ARENA_OK) { /* (no scope open: checked above) */
        PyErr_SetString(PyExc_RuntimeError, "a scope of this pool is still active");
        return NULL;
    }
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
    pool_stats(self, &st);
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
        set_u64(d, "parked_emptied", st.parked_emptied) < 0 ||
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
    pool_stats(self, &st);
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

PyTypeObject PoolType = {
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
