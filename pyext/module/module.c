/* The `objarena._objarena` extension module: its functions and initialisation. The
 * types live beside it, one file each (scope_type.c, paused_type.c,
 * pool_type.c), as do info() (info.c), the tracemalloc guards
 * (tracemalloc_guard.c), the thread guard (thread_guard.c), the escape
 * search (escapes.c), and the pytest plugin's survey walk (survey_walk.c)
 * and holder names (holder_names.c).
 * The public Python API is the `objarena` package, which re-exports these.
 * The module is a client of the C API in pyext/ (scope.h, hook.h,
 * collect.h...), never the other way round. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "arena/testing.h"
#include "pyext/freelists.h"
#include "pyext/layout_check.h"
#include "pyext/module/version_support.h"
#include "pyext/gc_counts.h"
#include "pyext/module/call_in.h"
#include "pyext/module/escapes.h"
#include "pyext/module/holder_names.h"
#include "pyext/module/info.h"
#include "pyext/module/paused_type.h"
#include "pyext/module/pool_type.h"
#include "pyext/module/scope_type.h"
#include "pyext/module/scoped_coroutine_type.h"
#include "pyext/module/survey_walk.h"
#include "pyext/module/thread_guard.h"
#include "pyext/module/tracemalloc_guard.h"
#include "pyext/scope.h"
#include "pyext/task_scope.h"

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
    objarena_trim_malloc(); /* and the C heap's free pages, unpaced (an exit may have deferred its trim) */
    Py_RETURN_NONE;
}

static PyObject *objarena_verify_chain(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    return PyBool_FromLong(objarena_hook_verify_chain());
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

/* current_scope(): the scope this thread allocates into now (a task's scope
 * while its step runs), or None. */
static PyObject *objarena_current_scope(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    objarena_frame_t *f = objarena_thread_capture();
    PyObject *owner = f && f->owner ? (PyObject *)f->owner : Py_None;
    Py_INCREF(owner);
    return owner;
}

/* _task_stats() -> dict (tests, benchmarks): task-segment counters. */
static PyObject *objarena_task_stats_py(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    objarena_task_stats_t st;
    objarena_task_get_stats(&st);
    return Py_BuildValue("{sKsKsKsK}", "steps", (unsigned long long)st.steps, "parks", (unsigned long long)st.parks,
                         "discarded", (unsigned long long)st.discarded, "base_lost",
                         (unsigned long long)st.base_lost);
}

static PyMethodDef module_methods[] = {
    {"current_scope", objarena_current_scope, METH_NOARGS,
     "current_scope() -> scope | None\n\nThe scope this thread allocates into now (inside a task: the task's)."},
    {"_call_in", (PyCFunction)(void (*)(void))objarena_call_in, METH_FASTCALL | METH_KEYWORDS,
     "_call_in(scope, fn, /, *args, **kwargs) -> fn(*args, **kwargs) inside scope\n\n"
     "As `with scope: return fn(*args, **kwargs)`, with no Python frame of its own, so fn's\n"
     "frames sit on CPython's data stack where they would without the scope (call_in.h)."},
    {"_survey_edges", objarena_survey_edges, METH_VARARGS,
     "_survey_edges(objects, arena_ids, cap) -> [(obj, arena, holder, holder_arena)]\n\n"
     "The pytest plugin's survey walk: objects of the list, and what they refer to, that live in\n"
     "one of the arenas (survey_walk.h)."},
    {"_holder_paths", objarena_holder_paths, METH_VARARGS,
     "_holder_paths(passes, wanted, budget) -> {id: (kind, module, steps)}\n\n"
     "The pytest plugin's holder names: paths from module globals to the wanted objects\n"
     "(holder_names.h)."},
    {"_task_stats", objarena_task_stats_py, METH_NOARGS, "Task-scope counters: steps, parks, discarded, base_lost."},
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
    {"version_support", objarena_version_support, METH_NOARGS,
     "version_support() -> dict\n\nWhich CPython internals this build reads on the running interpreter\n"
     "(freelists, collection counts, young exit collections) and, if any is off, why."},
    {"_layout_recheck", (PyCFunction)(void (*)(void))objarena_layout_recheck, METH_VARARGS | METH_KEYWORDS,
     "_layout_recheck(pretend_version=0, perturb=None)\n\nTests only: rerun the import layout check."},
    {"_testing_fail_commit_after", objarena_testing_fail_commit_after, METH_O,
     "_testing_fail_commit_after(n)\n\nTests only: the (n+1)th chunk commit from now fails; -1: off."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef objarena_module = {
    PyModuleDef_HEAD_INIT, "objarena._objarena",
    "Low-level objarena: use the `objarena` package.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__objarena(void) {
#ifdef Py_GIL_DISABLED
    PyErr_SetString(PyExc_RuntimeError,
                    "objarena does not support free-threaded CPython builds (Py_GIL_DISABLED): "
                    "the free-threaded GC finds objects by walking mimalloc heaps, and arena "
                    "objects are outside them; lock-free readers also need freed memory to stay "
                    "mapped until a quiescent point. See docs/design.md, section "
                    "\"Free-threaded CPython\"");
    return NULL;
#endif
    /* Before anything can walk a freelist or read the gc state. */
    if (objarena_layout_check(0, NULL) < 0)
        return NULL;
    if (PyType_Ready(&ScopeType) < 0 || PyType_Ready(&PausedType) < 0 || PyType_Ready(&PoolType) < 0 ||
        PyType_Ready(&ScopedCoroutineType) < 0 || PyType_Ready(&ReadyType) < 0 ||
        objarena_thread_guard_ready() < 0 || objarena_escape_error_ready() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&objarena_module);
    if (!m)
        return NULL;
    Py_INCREF(&ScopeType);
    Py_INCREF(&PausedType);
    Py_INCREF(objarena_EscapeError);
    Py_INCREF(&PoolType);
    Py_INCREF(&ScopedCoroutineType);
    if (PyModule_AddObject(m, "Pool", (PyObject *)&PoolType) < 0 ||
        PyModule_AddObject(m, "scope", (PyObject *)&ScopeType) < 0 ||
        PyModule_AddObject(m, "ScopedCoroutine", (PyObject *)&ScopedCoroutineType) < 0 ||
        PyModule_AddObject(m, "paused", (PyObject *)&PausedType) < 0 ||
        PyModule_AddObject(m, "EscapeError", objarena_EscapeError) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_CHUNK_SIZE", (long)ARENA_DEFAULT_CHUNK_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MIN_CHUNK_SIZE", (long)ARENA_MIN_CHUNK_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MAX_CHUNK_SIZE", (long)ARENA_MAX_CHUNK_SIZE) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
