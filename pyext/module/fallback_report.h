/* Allocations of a scope that the saved allocator served because no chunk
 * could be had (the region's address space, poison's quarantine or the
 * OS's memory ran out): counted at the scope's exit and warned about once
 * per process. */
#ifndef OBJARENA_MODULE_FALLBACK_REPORT_H
#define OBJARENA_MODULE_FALLBACK_REPORT_H

#include <Python.h>
#include <stdint.h>

#include "pyext/scope.h"

/* At a scope's exit (GIL held, the scope unlinked): counts its fallbacks
 * and issues the one RuntimeWarning (an error from a filter is reported as
 * unraisable, never raised). A pending exception is kept. */
void objarena_report_fallbacks(const objarena_scope_t *scope);

/* Scopes that fell back, and their fallback allocations, process-wide. */
void objarena_fallback_counts(uint64_t *scopes, uint64_t *allocations);

#endif
