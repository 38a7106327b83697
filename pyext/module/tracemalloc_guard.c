/* The guards around tracemalloc.start() and stop() (tracemalloc_guard.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/tracemalloc_guard.h"

#include "pyext/hook.h"

static PyObject *tracemalloc_stop;  /* the original _tracemalloc.stop */
static PyObject *tracemalloc_start; /* the original _tracemalloc.start */

/* Replacement for _tracemalloc.stop: tracemalloc.stop() restores, over
 * whatever is installed, the allocator it saved at start; when that was
 * before objarena's hook, the hook is gone and arena blocks would reach
 * pymalloc's free. Re-establish the chain before anything else runs. */
PyObject *objarena_tracemalloc_stop(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
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
PyObject *objarena_tracemalloc_start(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (!tracemalloc_start) {
        PyErr_SetString(PyExc_RuntimeError, "tracemalloc.start is not available");
        return NULL;
    }
    objarena_hook_prepare_for_wrapper();
    return PyObject_Vectorcall(tracemalloc_start, args, (size_t)nargs, NULL);
}

/* _guard_tracemalloc(start, stop) -> (guarded start, guarded stop). */
PyObject *objarena_guard_tracemalloc(PyObject *module, PyObject *args) {
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
PyObject *objarena_at_exit(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    objarena_hook_stats_t hs;
    objarena_hook_get_stats(&hs);
    if (hs.installed && hs.installed_over_tracemalloc && tracemalloc_stop)
        return objarena_tracemalloc_stop(module, NULL);
    Py_RETURN_NONE;
}
