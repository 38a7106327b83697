/* objarena.scope: the Python type over a C scope (pyext/scope.h). */
#ifndef OBJARENA_MODULE_SCOPE_TYPE_H
#define OBJARENA_MODULE_SCOPE_TYPE_H

#include <Python.h>
#include <stdbool.h>

#include "pyext/scope.h"

typedef struct {
    PyObject_HEAD
    objarena_scope_t *scope;
    PyObject *pool; /* the Pool object whose chunks the scope uses, or NULL */
    PyObject *task; /* the asyncio task running when it was entered, or NULL */
    bool strict;
} ScopeObject;

extern PyTypeObject ScopeType;

/* __enter__ and __exit__(type, value, tb) called from C (the task step
 * driver): no bound method or argument tuple is made, so nothing is
 * allocated into the scope around its own exit. New reference or NULL. */
PyObject *Scope_enter(ScopeObject *self, PyObject *ignored);
PyObject *Scope_exit(ScopeObject *self, PyObject *const *args, Py_ssize_t nargs);

/* "new", "active", "exited" or "parked" (a scope's or a pause's frame). */
const char *objarena_frame_state_name(const objarena_frame_t *frame);

#endif
