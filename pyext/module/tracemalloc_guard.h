/* Guards around tracemalloc.start() and stop(), installed by the objarena
 * package (objarena/__init__.py):
 * - start() stacks tracemalloc's hook on what is installed: outside scopes
 *   that is objarena's thin face, under which scopes could not capture, so
 *   the guard installs the full face first;
 * - stop() restores the allocator tracemalloc saved at start, over
 *   objarena's hook if tracemalloc was started first: the guard
 *   re-establishes the chain at once;
 * - at exit, tracemalloc stops itself late in finalization: if our hook
 *   sits on tracemalloc, it is stopped earlier, through the guard.
 * Module-level functions (METH_* as in module.c's table); GIL held. */
#ifndef OBJARENA_MODULE_TRACEMALLOC_GUARD_H
#define OBJARENA_MODULE_TRACEMALLOC_GUARD_H

#include <Python.h>

/* _guard_tracemalloc(start, stop) -> (guarded start, guarded stop). */
PyObject *objarena_guard_tracemalloc(PyObject *module, PyObject *args);
PyObject *objarena_tracemalloc_stop(PyObject *module, PyObject *ignored);
PyObject *objarena_tracemalloc_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* atexit hook (_at_exit). */
PyObject *objarena_at_exit(PyObject *module, PyObject *ignored);

#endif
