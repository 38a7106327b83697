/* The collection at scope exit, and objarena.collect(). */
#include "pyext/collect.h"

#include <string.h>

#include "pyext/clock.h"
#include "pyext/freelists.h"
#include "pyext/gc_counts.h"
#include "pyext/layout_check.h"
#include "pyext/phase_collect.h"
#include "pyext/scope.h"

/* ---- the exit collection ----
 *
 * A full collection walks every tracked object of the process: 2.5 ms with
 * an empty heap, 160 ms with 1M tracked objects (issue 12), whatever the
 * phase did. The phase's own garbage is young: its objects are in gen 0
 * unless a collection ran during the phase (gc.get_stats()' cumulative
 * counters tell), in gen 1 if only gen-0 collections ran, and possibly in
 * gen 2 once a gen-1 or full collection ran. So the exit collects the
 * generations the phase's objects can be in (gc.collect(0) or (1): cost in
 * proportion to the phase plus CPython's young-generation bound). What that
 * leaves live is a true escape, or pinned by a freelist (cleared only by a
 * full collection) or garbage promoted to gen 2 during a long phase: for
 * those a full collection runs when it fits the pace (at most ~1/PACE of the
 * wall time, as the trim), when it costs at most a quarter of the phase's
 * own time, or when the scope is strict; otherwise it is
 * deferred, and the chunks are released by their last block's free whenever
 * a later collection (CPython's own, a later exit's, objarena.collect())
 * frees them. gc thresholds, gc.freeze() and gc.enable state are untouched:
 * explicit gc.collect(n) runs whatever they say. */
#define FULL_COLLECT_PACE 50
#define FULL_COLLECT_PHASE_SHARE 4
static struct {
    objarena_pace_t pace;
    objarena_collect_stats_t stats;
} collect_state;
static PyObject *gc_collect_fn, *gc_get_stats_fn; /* gc.collect, gc.get_stats (strong, never freed) */

static int gc_functions(void) {
    if (gc_collect_fn)
        return 0;
    PyObject *gc = PyImport_ImportModule("gc");
    if (!gc)
        return -1;
    PyObject *collect = PyObject_GetAttrString(gc, "collect");
    PyObject *get_stats = collect ? PyObject_GetAttrString(gc, "get_stats") : NULL;
    Py_DECREF(gc);
    if (!get_stats) {
        Py_XDECREF(collect);
        return -1;
    }
    gc_collect_fn = collect;
    gc_get_stats_fn = get_stats;
    return 0;
}

/* gc.get_stats()[g]["collections"] for g = 0..2; -1 each on failure (then
 * the exit assumes the phase's objects may be anywhere). */
void objarena_gc_collections(long out[3]) {
    /* First: the scope's entry calls this before its frame is pushed, so a
     * first import of gc (and its module dict) is not made in the arena at
     * the exit, where it would escape. */
    if (gc_functions() < 0)
        PyErr_Clear();
    if (objarena_gc_read_collections(out))
        return;
    out[0] = out[1] = out[2] = -1;
    PyObject *stats = gc_functions() == 0 ? PyObject_CallNoArgs(gc_get_stats_fn) : NULL;
    if (stats && PyList_Check(stats) && PyList_GET_SIZE(stats) >= 3) {
        for (int g = 0; g < 3; g++) {
            PyObject *d = PyList_GET_ITEM(stats, g);
            PyObject *n = PyDict_Check(d) ? PyDict_GetItemString(d, "collections") : NULL;
            out[g] = n ? PyLong_AsLong(n) : -1;
        }
    }
    Py_XDECREF(stats);
    if (PyErr_Occurred())
        PyErr_Clear();
}

static void gc_collect_generation(int generation) {
    PyObject *r = gc_functions() == 0 ? PyObject_CallFunction(gc_collect_fn, "i", generation) : NULL;
    Py_XDECREF(r);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(gc_collect_fn);
}

static void clear_caches(void) {
    /* The type attribute cache holds strong references to attribute names. */
    PyType_ClearCache();
    /* The one-entry slice cache is never cleared by gc: take the cached slice,
     * make a fresh one (not from this arena: capture is off), free the fresh
     * one first so it takes the cache, then the old one for real. */
    PyObject *cached = PySlice_New(Py_None, Py_None, Py_None);
    PyObject *fresh = PySlice_New(Py_None, Py_None, Py_None);
    Py_XDECREF(fresh);
    Py_XDECREF(cached);
    if (PyErr_Occurred())
        PyErr_Clear();
}

/* A full collection; its cost sets the pace of the next (exit_collect). */
static void collect_full(void) {
    double start = objarena_monotonic_seconds();
    /* Freelists are cleared only by a full collection, and PyGC_Collect does
     * nothing while gc is disabled. */
    int was_enabled = PyGC_Enable();
    PyGC_Collect();
    if (!was_enabled)
        PyGC_Disable();
    objarena_pace_record(&collect_state.pace, start);
}

void objarena_collect_caches(void) {
    collect_full();
    clear_caches();
}

/* The freelist walk with capture off: an exit nested in an outer scope
 * still captures into the outer arena, and the walk's copies of arena
 * entries (freelists.h) belong on the heap, not in the outer arena. */
static uint64_t walk_freelists_uncaptured(uint64_t (*walk)(const arena_t *), const arena_t *arena) {
    objarena_frame_t pause;
    bool paused = objarena_uncaptured_begin(&pause);
    uint64_t freed = walk(arena);
    objarena_uncaptured_end(&pause, paused);
    return freed;
}

void objarena_collect_stats(objarena_collect_stats_t *out) { *out = collect_state.stats; }

void objarena_exit_collect(const objarena_scope_options_t *options, const long collections_at_enter[3],
                           double entered_at, const arena_t *arena, PyObject *phase_sentinel, bool interleaved,
                           objarena_exit_collection_t *c) {
    memset(c, 0, sizeof *c);
    c->generation = -1;
    if (options->collect == OBJARENA_COLLECT_NONE)
        return;
    double start = objarena_monotonic_seconds();
    /* Keep a pending exception (the one leaving the with block) out of the
     * way of the collection's finalizers. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (options->collect != OBJARENA_COLLECT_FULL) {
        /* The phase's dead floats, tuples, dicts... parked on CPython's
         * short freelists are freed first (the walk stops at the arena's
         * last live block; 3.14's long lists are left to the walk after
         * the collection, so a phase that keeps something does not walk
         * them twice). If nothing of the phase is alive then (no garbage,
         * no escape), no collection can free anything of its arena: a test
         * or a task that cleaned up after itself pays no collection at
         * all. collect="full" still runs the full collection it asks for. */
        if (arena_live_blocks(arena) > 0)
            c->freelist_blocks_freed =
                walk_freelists_uncaptured(objarena_free_arena_blocks_on_short_freelists, arena);
        if (arena_live_blocks(arena) == 0) {
            long now[3]; /* (for the scope's report: did a collection run during the phase) */
            objarena_gc_collections(now);
            c->promoted = now[0] < 0 || collections_at_enter[0] < 0 || now[1] != collections_at_enter[1] ||
                          now[2] != collections_at_enter[2];
            goto done;
        }
    }
    /* A collector that may not be generational (a 3.14.0-3.14.4
     * interpreter, layout_check.h): gc.collect(1) is one increment there,
     * not the phase's generations, so the default exit collects in full
     * (collect="young" keeps its promise of no full collection). */
    if (options->collect == OBJARENA_COLLECT_FULL ||
        (options->collect == OBJARENA_COLLECT_AUTO && !objarena_layout_young_collections_ok())) {
        collect_full();
        clear_caches();
        c->generation = 2;
    } else {
        long now[3];
        objarena_gc_collections(now);
        const long *then = collections_at_enter;
        bool known = now[0] >= 0 && then[0] >= 0;
        c->promoted = !known || now[1] != then[1] || now[2] != then[2];
        c->generation = (known && !c->promoted && now[0] == then[0]) ? 0 : 1;
        /* An interleaved phase (a task scope) shares its generations with
         * everything the loop's other tasks made since it began:
         * collecting them, or moving back what was promoted since entry
         * (the phase collection), costs in proportion to the concurrency,
         * not to the task (issue 22: 2,000 requests at 100 in flight ran
         * 2,161-2,463 such exit collections, 5-7 ms each on 3.13/3.14).
         * It collects nothing: CPython's own collections, which the
         * allocations of all tasks pace as under pymalloc (the freelist
         * walk keeps the lists' lengths, freelists.h), free its garbage,
         * and its chunks go with their last block. That holds for its gen
         * 0 too: once the walk stopped emptying the lists, 1,900-2,700 of
         * 10,000 requests saw no CPython collection and each ran a gen-0
         * collection at exit, the only extra collections left (5,000
         * requests x 2 bursts, gen-0 collections against plain's: 3.13.0
         * 1.65x with them, 1.08x without; 3.14.10 2.07x, 1.21x; RSS growth
         * 0.16-0.23x either way: docs/benchmarks.md). */
        if (interleaved)
            c->generation = -1;
        /* Promoted objects of the phase, and no full collection reordered
         * generation 2: collect them with generation 1 (phase_collect.h),
         * in proportion to the phase, instead of leaving them to a full
         * collection. */
        Py_ssize_t moved = -1;
        if (options->collect == OBJARENA_COLLECT_AUTO && !interleaved && c->promoted && known &&
            now[2] == then[2] && gc_functions() == 0)
            moved = objarena_phase_collect(phase_sentinel, gc_collect_fn);
        if (PyErr_Occurred())
            PyErr_Clear();
        if (moved > 0) {
            c->phase = true;
            c->phase_objects = (uint64_t)moved;
        } else if (!interleaved) {
            gc_collect_generation(c->generation);
        }
        if (arena_live_blocks(arena) > 0) {
            /* What the collection put on CPython's freelists, and the long
             * lists: freed directly, at the cost of the entries walked. */
            c->freelist_blocks_freed += walk_freelists_uncaptured(objarena_free_arena_blocks_on_freelists, arena);
        }
        if (arena_live_blocks(arena) > 0) {
            /* A true escape, a cache or old garbage: only a full collection
             * and the cache flushes tell them apart. They cost ~10 us (the
             * type cache) plus the whole heap, so they are paced together. */
            /* Due if it fits the process-wide pace, or costs at most 1/4 of
             * the phase's own time (a long phase whose garbage was promoted
             * pays for its own collection, as pymalloc's users would). */
            double now_s = objarena_monotonic_seconds();
            bool paced = objarena_pace_allows(&collect_state.pace, now_s, FULL_COLLECT_PACE) ||
                         FULL_COLLECT_PHASE_SHARE * collect_state.pace.last_cost <= now_s - entered_at;
            if (options->collect == OBJARENA_COLLECT_AUTO && (options->strict || paced)) {
                collect_full();
                clear_caches();
                c->generation = 2;
            } else {
                c->full_deferred = true;
            }
        }
    }
done:
    PyErr_Restore(type, value, tb);
    collect_state.stats.freelist_blocks_freed += c->freelist_blocks_freed;
    c->seconds = objarena_monotonic_seconds() - start;
    collect_state.stats.seconds += c->seconds;
    if (c->generation == 2)
        collect_state.stats.full++;
    else if (c->phase)
        collect_state.stats.phase++;
    else if (c->generation >= 0)
        collect_state.stats.young++;
    else
        collect_state.stats.none++;
    if (c->full_deferred)
        collect_state.stats.deferred++;
}


/* ---- pacing across nested scopes (collect.h) ----
 *
 * With own = elapsed - nested (the phase's time outside exit collections)
 * the rule "nested + cost <= own / SHARE" is "SHARE * cost <= elapsed -
 * (SHARE + 1) * nested", which objarena_exit_collect's test reads with the
 * entry time moved later by (SHARE + 1) * nested. So the collections that N
 * nested exits run together stay within a quarter of the time of the work
 * they enclose, and unwinding is linear. Before (issue 24), every one of
 * them found the others' collections, and the time spent entering the
 * inner scopes, in its own time: unwinding 2,000 nested scopes ran 1,552
 * full collections (6.7 s), 8,000 took 84 s. */
double objarena_exit_pacing_start(double entered_at, double nested) {
    return entered_at + (nested > 0 ? (FULL_COLLECT_PHASE_SHARE + 1) * nested : 0);
}
