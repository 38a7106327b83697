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

/* "new", "active" or "exited" (a scope's or a pause's frame). */
const char *objarena_frame_state_name(const objarena_frame_t *frame);

#endif
