/* The collection at scope exit.
 *
 * What pins a phase's arena blocks after its last reference is gone:
 * garbage cycles (until the gc collects them), CPython's freelists (cleared
 * only by a full collection) and caches (the type attribute cache, the
 * slice cache). A full collection walks the whole process heap, so the exit
 * collects the young generations the phase's objects can be in, and runs
 * the full collection and cache flushes only when blocks are left, paced to
 * a bounded share of wall time (collect.c says how). All functions need the
 * GIL and run with capture off.
 */
#ifndef OBJARENA_COLLECT_H
#define OBJARENA_COLLECT_H

#include <Python.h>
#include <stdbool.h>

#include "arena/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a scope's exit collects (objarena_scope_options_t.collect). */
typedef enum objarena_collect_mode {
    OBJARENA_COLLECT_NONE = 0,  /* nothing: garbage of the phase pins its chunks until CPython's gc runs */
    OBJARENA_COLLECT_AUTO = 1,  /* default: the young generations the phase's objects can be in, then a
                                 * full collection only if blocks are still live and the pace allows
                                 * (or strict); otherwise the full collection is deferred */
    OBJARENA_COLLECT_YOUNG = 2, /* the young generations only; never a full collection at exit */
    OBJARENA_COLLECT_FULL = 3,  /* a full collection at every exit (costs what the whole heap costs) */
} objarena_collect_mode_t;

/* What a scope's exit collected. */
typedef struct objarena_exit_collection {
    int generation;        /* highest generation collected: -1 none, 0-1 young, 2 full */
    bool full_deferred;    /* blocks were left and a full collection was due but skipped (paced) */
    bool promoted;         /* a gen-1 or full collection ran during the phase: its objects may be old */
    bool phase;            /* the phase collection ran (phase_collect.h): the objects promoted during
                            * the phase were collected with generation 1, the rest of gen 2 untouched */
    uint64_t phase_objects; /* objects it moved back from generation 2 */
    uint64_t freelist_blocks_freed; /* arena blocks taken off CPython's freelists (freelists.h) */
    double seconds;        /* time spent collecting and clearing caches at exit */
} objarena_exit_collection_t;

struct objarena_scope_options;

/* gc.get_stats()[g]["collections"] for g = 0..2 (-1 each if unavailable).
 * Allocates: call it with capture off. */
void objarena_gc_collections(long out[3]);

/* The exit collection of a scope with these options (collect mode, strict)
 * whose arena is `arena` (capture off, not released yet); collections_at_enter
 * from objarena_gc_collections at entry, entered_at its monotonic time,
 * phase_sentinel from objarena_phase_mark at entry (NULL: none; AUTO uses it
 * when the phase's objects were promoted and no full collection ran).
 * interleaved: other work ran on the thread between the phase's steps (a
 * task scope); once a collection ran during such a phase, its young
 * generations hold the other work's objects too and the exit collects no
 * generation (collect.c says why). Fills *out. A pending exception is kept
 * aside while finalizers run. */
void objarena_exit_collect(const struct objarena_scope_options *options, const long collections_at_enter[3],
                           double entered_at, const arena_t *arena, PyObject *phase_sentinel, bool interleaved,
                           objarena_exit_collection_t *out);

/* Pacing across nested scopes. A full collection is due at exit when it
 * costs at most a quarter of the phase's own time; the exit collections of
 * the scopes nested in the phase (`nested` seconds, on the phase's thread:
 * the caller counts them) ran inside that time and already spent from that
 * quarter. Returns the entry time to pass to objarena_exit_collect so that
 * its rule reads "the nested collections plus this one cost at most a
 * quarter of the phase's own time, not counting the nested collections". */
double objarena_exit_pacing_start(double entered_at, double nested);

/* Frees CPython's caches that pin phase memory: full gc (even when gc is
 * disabled), PyType_ClearCache, the slice cache. Runs with capture off. */
void objarena_collect_caches(void);

/* Process-wide exit-collection counters (GIL held). */
typedef struct objarena_collect_stats {
    uint64_t none;         /* exits that collected nothing: nothing of the phase was alive, or a
                            * task scope's generations were shared (collect.c) */
    uint64_t young;        /* exits that collected only young generations */
    uint64_t phase;        /* exits that ran the phase collection and no full one */
    uint64_t full;         /* exits that ran a full collection */
    uint64_t deferred;     /* exits that left blocks behind and skipped a due full collection */
    uint64_t freelist_blocks_freed; /* arena blocks taken off CPython's freelists at exits */
    double seconds;        /* total time of exit collections */
} objarena_collect_stats_t;
void objarena_collect_stats(objarena_collect_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
