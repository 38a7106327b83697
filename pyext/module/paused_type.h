/* objarena.paused: a frame that allocates from the saved allocator inside a
 * scope (pyext/scope.h, objarena_pause_enter). */
#ifndef OBJARENA_MODULE_PAUSED_TYPE_H
#define OBJARENA_MODULE_PAUSED_TYPE_H

#include <Python.h>

extern PyTypeObject PausedType;

#endif
