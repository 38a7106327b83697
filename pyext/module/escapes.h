/* What escaped a scope: its arena's objects that can be found safely, and
 * strict mode's EscapeError. All need the GIL and run outside any scope's
 * capture (they allocate). */
#ifndef OBJARENA_MODULE_ESCAPES_H
#define OBJARENA_MODULE_ESCAPES_H

#include <Python.h>
#include <stdint.h>

#include "pyext/scope.h"

/* objarena.EscapeError(RuntimeError), once objarena_escape_error_ready()
 * made it (module init; 0 or -1 with an exception). */
extern PyObject *objarena_EscapeError;
int objarena_escape_error_ready(void);

/* {type: [objects]} of the objects inside chunks of arena `id` that can be
 * found safely: gc-tracked ones, and untracked ones referred to by a tracked
 * object (one level). Blocks held only by C code, or only by other
 * untracked objects, are not found. New reference, or NULL with an
 * exception. */
PyObject *objarena_escaped_objects(uint64_t id);

/* Sets EscapeError for an exited strict scope whose blocks outlived it
 * (message, .blocks, .bytes_retained, .types) and returns NULL. */
PyObject *objarena_raise_escape_error(const objarena_scope_t *scope);

#endif
