/* A scope's allocations that the saved allocator served because no chunk
 * could be had: counted, and warned about once (fallback_report.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/fallback_report.h"

/* Scopes whose allocations fell back to the saved allocator (no chunk could
 * be had: the region's address space, poison's quarantine or the OS's
 * memory ran out), and those allocations, process-wide. */
static uint64_t scopes_fell_back, fallback_allocations;
static bool fallback_warned;

/* At exit (a safe point: the hook never calls Python): count a scope's
 * fallbacks and warn once per process. A warning filter that turns it into
 * an error must not turn a served allocation into a failure: the error is
 * reported as unraisable and the exit goes on. */
void objarena_report_fallbacks(const objarena_scope_t *scope) {
    uint64_t n = scope->frame.alloc_fallbacks;
    if (n == 0)
        return;
    scopes_fell_back++;
    fallback_allocations += n;
    if (fallback_warned)
        return;
    fallback_warned = true;
    arena_global_stats_t g;
    arena_global_stats(&g);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    /* An enclosing scope may be capturing: the warnings machinery's registry
     * entries would be its blocks. */
    objarena_frame_t pause = {0};
    objarena_pause_enter(&pause);
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "objarena: %llu allocation(s) of a scope came from the saved allocator, not the arena: "
                         "no chunk could be mapped (region: %llu MiB mapped, %llu MiB quarantined by poison mode, "
                         "of %llu MiB reserved; or the OS refused memory). Such blocks are not given back at "
                         "exit. Warned once; info()['scopes_fell_back'] counts them",
                         (unsigned long long)n, (unsigned long long)(g.bytes_mapped >> 20),
                         (unsigned long long)(g.quarantined_bytes >> 20),
                         (unsigned long long)(g.reserve_bytes >> 20)) < 0)
        PyErr_WriteUnraisable(NULL);
    objarena_pause_exit(&pause);
    PyErr_Restore(type, value, tb);
}


void objarena_fallback_counts(uint64_t *scopes, uint64_t *allocations) {
    *scopes = scopes_fell_back;
    *allocations = fallback_allocations;
}
