/* _objarena._call_in(scope, fn, /, *args, **kwargs): fn(*args, **kwargs)
 * inside `scope`, as `with scope: return fn(*args, **kwargs)` would run it,
 * with no Python frame of its own.
 *
 * Why not the Python wrapper: a wrapper's frame shifts every frame of the
 * call by its size on CPython's data stack (3.11+: frames live in 16 KiB
 * chunks, and a chunk is mapped when a call crosses into it and unmapped
 * as soon as the call returns below it). A test that recurses around a
 * chunk boundary then maps and unmaps one per crossing: pyparsing's six
 * testNestedExpressionRandom tests made 80-106k mmap calls plain and
 * 340-413k under the pytest plugin's one-frame wrapper, and took 10.8-12.4 s
 * instead of 7.9-9.7 s (3.13.0); a wrapper frame with no scope did the
 * same. Called from C, fn's frames sit where they would without objarena.
 *
 * Semantics of the with statement: the scope is entered (its errors
 * propagate, fn is not called); fn's exception is passed to the scope's
 * exit, is the handled exception (sys.exc_info()) while the exit runs, and
 * is then re-raised; an exception raised by the exit (an EscapeError
 * of a strict scope, an exit error) propagates, chained to fn's as its
 * __context__. TypeError if scope is not an objarena.scope or fewer than two
 * positional arguments are given. Needs the GIL. */
#ifndef OBJARENA_MODULE_CALL_IN_H
#define OBJARENA_MODULE_CALL_IN_H

#include <Python.h>

PyObject *objarena_call_in(PyObject *module, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames);

#endif
