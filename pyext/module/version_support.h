/* objarena.version_support(): which CPython internals this build reads on
 * the running interpreter, and why any is off (pyext/layout_check.h); and
 * the tests' lever on the layout check. */
#ifndef OBJARENA_MODULE_VERSION_SUPPORT_H
#define OBJARENA_MODULE_VERSION_SUPPORT_H

#include <Python.h>

/* METH_NOARGS: a new dict, or NULL with an exception. */
PyObject *objarena_version_support(PyObject *module, PyObject *ignored);

/* _layout_recheck(pretend_version=0, perturb=None) (tests): runs the import
 * check again as if Py_Version were pretend_version (0: the real one) and
 * the debug offset named `perturb` read 8 bytes off; returns
 * version_support(). */
PyObject *objarena_layout_recheck(PyObject *module, PyObject *args, PyObject *kwargs);

#endif
