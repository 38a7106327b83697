/* objarena.info(): process-wide state (info.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/info.h"

#include "pyext/module/dict_set.h"
#include "pyext/module/fallback_report.h"
#include "pyext/module/thread_guard.h"
#include "pyext/freelists.h"
#include "pyext/scope.h"

PyObject *objarena_info(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    uint64_t scopes_fell_back, fallback_allocations;
    objarena_fallback_counts(&scopes_fell_back, &fallback_allocations);
    objarena_hook_stats_t hs;
    objarena_hook_get_stats(&hs);
    arena_global_stats_t g;
    arena_global_stats(&g);
    int depth = 0, capturing = objarena_thread_capture() != NULL;
    for (objarena_frame_t *f = objarena_thread_top(); f; f = f->parent)
        depth += f->arena != NULL;
    uint64_t trims, trims_skipped, trims_deferred;
    objarena_trim_stats(&trims, &trims_skipped, &trims_deferred);
    objarena_collect_stats_t cs;
    objarena_collect_stats(&cs);
    uint64_t rehomed, not_rehomed;
    objarena_freelist_rehome_stats(&rehomed, &not_rehomed);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    PyObject *collect_seconds = PyFloat_FromDouble(cs.seconds);
    if (!collect_seconds || PyDict_SetItemString(d, "exit_collect_seconds", collect_seconds) < 0 ||
        set_u64(d, "exit_collections_none", cs.none) < 0 || set_u64(d, "exit_collections_young", cs.young) < 0 ||
        set_u64(d, "exit_collections_phase", cs.phase) < 0 || set_u64(d, "exit_collections_full", cs.full) < 0 ||
        set_u64(d, "exit_collections_deferred", cs.deferred) < 0 ||
        set_u64(d, "freelist_blocks_freed", cs.freelist_blocks_freed) < 0 ||
        set_u64(d, "freelist_entries_rehomed", rehomed) < 0 ||
        set_u64(d, "freelist_entries_not_rehomed", not_rehomed) < 0 ||
        set_u64(d, "scopes_fell_back", scopes_fell_back) < 0 ||
        set_u64(d, "frames_orphaned", objarena_frames_orphaned()) < 0 ||
        set_u64(d, "thread_guards_foreign", objarena_thread_guards_foreign()) < 0 ||
        set_u64(d, "fallback_allocations", fallback_allocations) < 0) {
        Py_XDECREF(collect_seconds);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(collect_seconds);
    if (PyDict_SetItemString(d, "hook_installed", hs.installed ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(d, "hook_on_top", hs.hook_on_top ? Py_True : Py_False) < 0 ||
        set_str(d, "hook_face", hs.full_face ? "full" : "thin") < 0 ||
        PyDict_SetItemString(d, "installed_over_tracemalloc", hs.installed_over_tracemalloc ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(d, "installed_under_tracemalloc", hs.installed_under_tracemalloc ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(d, "capturing", capturing ? Py_True : Py_False) < 0 ||
        set_u64(d, "scope_depth", (uint64_t)depth) < 0 || set_u64(d, "chain_repairs", hs.chain_repairs) < 0 ||
        set_u64(d, "blocks_moved_out", hs.moved_out) < 0 || set_u64(d, "malloc_trims", trims) < 0 ||
        set_u64(d, "malloc_trims_skipped", trims_skipped) < 0 ||
        set_u64(d, "malloc_trims_deferred", trims_deferred) < 0 || set_u64(d, "arenas_live", g.arenas_live) < 0 ||
        set_u64(d, "arenas_created", g.arenas_created) < 0 || set_u64(d, "bytes_mapped", g.bytes_mapped) < 0 ||
        set_u64(d, "peak_mapped", g.peak_mapped) < 0 || set_u64(d, "chunks_live", g.chunks_live) < 0 ||
        set_u64(d, "large_live", g.large_live) < 0 || set_u64(d, "retained_chunks", g.chunks_retained) < 0 ||
        set_u64(d, "retained_bytes", g.bytes_retained) < 0 ||
        set_u64(d, "retained_blocks", g.blocks_retained) < 0 ||
        set_u64(d, "retained_unmapped_total", g.retained_unmapped_total) < 0 ||
        set_u64(d, "quarantined_bytes", g.quarantined_bytes) < 0 ||
        set_u64(d, "bytes_pages_released", g.bytes_pages_released) < 0 ||
        set_u64(d, "warm_bytes", g.warm_bytes) < 0 ||
        set_u64(d, "warm_retained_bytes", g.warm_retained_bytes) < 0 ||
        set_u64(d, "chunks_adopted_total", g.chunks_adopted_total) < 0 ||
        PyDict_SetItemString(d, "mem_hook_installed", hs.mem_installed ? Py_True : Py_False) < 0 ||
        set_u64(d, "reserve_bytes", g.reserve_bytes) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}
