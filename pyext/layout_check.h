/* Is the running interpreter laid out the way this build was compiled?
 *
 * freelists.c and gc_counts.c read CPython's private structures at offsets
 * fixed when the extension was compiled. Wheels are per minor version
 * (cp314), but a minor's point releases may differ: 3.14.0-3.14.4 ran the
 * incremental collector with a shorter gc state (every later interpreter
 * field 24 bytes off), 3.14.5 went back to the generational one. At import
 * objarena_layout_check() compares the running interpreter (Py_Version, and
 * on 3.14+ the field offsets CPython publishes in _PyRuntime.debug_offsets)
 * with the compiled layout. On a mismatch it warns once (RuntimeWarning),
 * counts it, and turns off what would read a wrong offset: the freelist
 * walk (a full collection clears freelists instead), the direct read of
 * collection counts (gc.get_stats() instead), and, where the collector may
 * not be generational, the young exit collections (a full one instead).
 * objarena.version_support() reports each decision with its reason.
 *
 * GIL held for every call. */
#ifndef OBJARENA_LAYOUT_CHECK_H
#define OBJARENA_LAYOUT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What this build may read on the running interpreter, and why not. */
typedef struct objarena_layout {
    bool checked;
    unsigned long running_version;  /* Py_Version (hex) */
    unsigned long compiled_version; /* PY_VERSION_HEX of the headers */
    bool layout_ok;                 /* every compared offset matched */
    bool freelists;                 /* walk CPython's freelists at exit */
    bool gc_counts;                 /* read collection counts from the gc state */
    bool young_collections;         /* gc.collect(0)/(1) collect a phase's young objects */
    int freelist_lists;             /* lists whose chains were checked at import */
    const char *reason;             /* why a feature is off ("" if none is) */
    char detail[200];               /* the first mismatch found, if any */
    uint64_t mismatches;            /* checks that found a mismatch (warned once) */
    uint64_t freelist_walks_skipped;
} objarena_layout_t;

/* Runs the check (at import). `pretend_version` != 0 replaces Py_Version and
 * `perturb` (NULL or a compared field's name, e.g. "interpreter_state.gc")
 * makes that field read 8 bytes off: tests drive the mismatch path with
 * them. Returns -1 with an exception set only if the warning raised (warnings
 * turned into errors). */
int objarena_layout_check(unsigned long pretend_version, const char *perturb);

bool objarena_layout_freelists_ok(void);
bool objarena_layout_gc_counts_ok(void);
bool objarena_layout_young_collections_ok(void);
/* A walk that the check turned off (counted for version_support()). */
void objarena_layout_count_skipped_walk(void);
void objarena_layout_get(objarena_layout_t *out);

#ifdef __cplusplus
}
#endif
#endif
