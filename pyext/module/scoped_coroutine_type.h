/* objarena.asyncio.ScopedCoroutine: a coroutine wrapper that runs each step
 * of the wrapped coroutine inside its task segment (pyext/task_scope.h), and
 * optionally gives the whole task a scope. The task factory of
 * objarena.asyncio wraps every task's coroutine in one. */
#ifndef OBJARENA_MODULE_SCOPED_COROUTINE_TYPE_H
#define OBJARENA_MODULE_SCOPED_COROUTINE_TYPE_H

#include <Python.h>

extern PyTypeObject ScopedCoroutineType;
extern PyTypeObject ReadyType; /* an awaitable that is already done (async with on scopes) */

typedef struct {
    PyObject_HEAD
    PyObject *value;
} ReadyObject_public;

/* An awaitable whose await returns `value` at once (steals nothing; new ref). */
PyObject *objarena_ready(PyObject *value);

#endif
