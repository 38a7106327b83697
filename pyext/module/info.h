/* objarena.info(): process-wide state (the hook, arenas, retained chunks,
 * exit collections, fallbacks; docs/reference.md lists the keys). */
#ifndef OBJARENA_MODULE_INFO_H
#define OBJARENA_MODULE_INFO_H

#include <Python.h>

/* METH_NOARGS: a new dict, or NULL with an exception. */
PyObject *objarena_info(PyObject *module, PyObject *ignored);

#endif
