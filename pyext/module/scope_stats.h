/* A scope's statistics as a dict: live counters while active, the exit
 * snapshot afterwards, and what the exit collected (docs/reference.md
 * lists the keys). */
#ifndef OBJARENA_MODULE_SCOPE_STATS_H
#define OBJARENA_MODULE_SCOPE_STATS_H

#include <Python.h>

#include "pyext/scope.h"

/* New reference, or NULL with an exception. */
PyObject *objarena_scope_stats_dict(const objarena_scope_t *scope);

#endif
