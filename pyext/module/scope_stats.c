/* A scope's statistics as a dict (scope_stats.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/scope_stats.h"

#include "pyext/module/dict_set.h"

/* What the exit collected: "exit_collection" ("none", "gen0", "gen1",
 * "phase" (phase_collect.h; "full" if a full collection followed it),
 * "full"), "phase_objects" (objects the phase collection moved back), "exit_collect_seconds", "full_collection_deferred",
 * "objects_promoted" (a gen-1/full collection ran during the phase). */
static int add_exit_collection(PyObject *d, const objarena_scope_t *scope) {
    static const char *const names[] = {"none", "gen0", "gen1", "full"};
    const objarena_exit_collection_t *c = &scope->exit_collection;
    PyObject *seconds = PyFloat_FromDouble(c->seconds);
    const char *name = c->phase && c->generation < 2 ? "phase" : names[c->generation + 1];
    int rc = (!seconds || set_str(d, "exit_collection", name) < 0 ||
              PyDict_SetItemString(d, "exit_collect_seconds", seconds) < 0 ||
              PyDict_SetItemString(d, "full_collection_deferred", c->full_deferred ? Py_True : Py_False) < 0 ||
              PyDict_SetItemString(d, "objects_promoted", c->promoted ? Py_True : Py_False) < 0 ||
              set_u64(d, "freelist_blocks_freed", c->freelist_blocks_freed) < 0 ||
              set_u64(d, "phase_objects", c->phase_objects) < 0)
                 ? -1
                 : 0;
    Py_XDECREF(seconds);
    return rc;
}

PyObject *objarena_scope_stats_dict(const objarena_scope_t *scope) {
    arena_stats_t st;
    objarena_scope_stats(scope, &st);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    if (set_u64(d, "bytes_requested", st.bytes_requested) < 0 ||
        set_u64(d, "bytes_mapped", st.bytes_mapped) < 0 || set_u64(d, "peak_mapped", st.peak_mapped) < 0 ||
        set_u64(d, "blocks_allocated", st.blocks_allocated) < 0 ||
        set_u64(d, "frees_absorbed", st.blocks_freed) < 0 ||
        set_u64(d, "frees_forwarded", scope->frame.frees_forwarded) < 0 ||
        set_u64(d, "alloc_failures", scope->frame.alloc_failures) < 0 ||
        set_u64(d, "alloc_fallbacks", scope->frame.alloc_fallbacks) < 0 ||
        set_u64(d, "limit_hits", scope->frame.limit_hits) < 0 ||
        set_u64(d, "limit_grace_allocs", scope->frame.limit_grace_allocs) < 0 ||
        set_u64(d, "limit_grace_bytes", scope->frame.limit_grace_bytes) < 0 ||
        set_u64(d, "effective_limit", scope->effective_limit) < 0 ||
        set_u64(d, "charged_bytes", scope->frame.charged) < 0 ||
        set_u64(d, "charged_bytes_peak", scope->frame.charged_peak) < 0 ||
        set_u64(d, "chunks_mapped", st.chunks_mapped) < 0 ||
        set_u64(d, "large_mappings", st.large_mappings) < 0 ||
        set_u64(d, "chunks_released", st.chunks_released) < 0 ||
        set_u64(d, "bytes_released", st.bytes_released) < 0 ||
        set_u64(d, "chunks_retained", st.chunks_retained) < 0 ||
        set_u64(d, "bytes_retained", st.bytes_retained) < 0 ||
        set_u64(d, "live_blocks_at_exit", st.live_blocks_at_release) < 0 ||
        set_u64(d, "bytes_pages_released", st.bytes_pages_released) < 0 ||
        set_u64(d, "chunks_parked", st.chunks_parked) < 0 ||
        set_u64(d, "blocks_reused", st.blocks_reused) < 0 ||
        set_u64(d, "chunks_adopted", st.chunks_adopted) < 0 ||
        set_u64(d, "bytes_adopted", st.bytes_adopted) < 0 ||
        PyDict_SetItemString(d, "exited", st.released ? Py_True : Py_False) < 0 ||
        add_exit_collection(d, scope) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}
