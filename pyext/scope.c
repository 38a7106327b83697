/* Scope enter/exit and the exit clean-up. */
#include "pyext/scope.h"

#include "pyext/clock.h"
#include "pyext/collect.h"
#include "pyext/task_scope.h"
#include "pyext/env.h"
#include "pyext/phase_collect.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

void objarena_scope_options_init(objarena_scope_options_t *options) {
    memset(options, 0, sizeof *options);
    options->collect = OBJARENA_COLLECT_AUTO;
    options->reuse = true; /* see docs/benchmarks.md: measured against bump mode */
    options->adopt = true;
    options->trim_malloc = true;
}

/* Trim pacing (state changed with the GIL held): a scope's exit trims only
 * when TRIM_PACE times the last trim's duration has passed since it ended.
 * A trim walks all of malloc's free chunks (0.1-1.3 ms in bench/), so a
 * worker that opens a scope per short request would otherwise spend much
 * of its time trimming; paced, trimming takes at most ~1/TRIM_PACE of the
 * wall time, and phases longer than that trim at every exit. */
#define TRIM_PACE 50
/* While another task scope is open (running or parked), an exit trims at
 * most once a TRIM_BUSY_INTERVAL: the heap it would trim is the one the
 * other tasks' phases are using (their MEM-domain blocks on 3.10-3.12),
 * and each trim made the next requests fault its pages in again (3.11.7,
 * 100 requests interleaved: 343 faults a request, 289 with this rule, 273
 * without trims). The last task scope of a burst to exit trims as before.
 * A service whose task scopes never all close (an open WebSocket
 * connection) trims at the first exit a second after the last trim; if no
 * exit comes, objarena.collect() trims. */
#define TRIM_BUSY_INTERVAL 1.0
static struct {
    objarena_pace_t pace;
    uint64_t done, skipped, deferred;
} trim_state;
static uint64_t open_task_scopes; /* entered and not yet exited (the GIL held) */


void objarena_trim_malloc(void) {
    double start = objarena_monotonic_seconds();
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    objarena_pace_record(&trim_state.pace, start);
    trim_state.done++;
}

static void trim_malloc_paced(void) {
    double now = objarena_monotonic_seconds();
    if (!objarena_pace_allows(&trim_state.pace, now, TRIM_PACE)) {
        trim_state.skipped++;
        return;
    }
    if (open_task_scopes && now - trim_state.pace.last_end < TRIM_BUSY_INTERVAL) {
        trim_state.deferred++;
        return;
    }
    objarena_trim_malloc();
}

void objarena_trim_stats(uint64_t *done, uint64_t *skipped, uint64_t *deferred) {
    *done = trim_state.done;
    *skipped = trim_state.skipped;
    *deferred = trim_state.deferred;
}

static int check_main_interpreter(void) {
#ifdef Py_GIL_DISABLED
    PyErr_SetString(PyExc_RuntimeError,
                    "objarena does not support free-threaded CPython builds: the free-threaded "
                    "GC finds objects by walking mimalloc heaps and cannot see arena objects. "
                    "See docs/design.md, section \"Free-threaded CPython\"");
    return -1;
#else
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_RuntimeError, "objarena scopes can only be used in the main interpreter");
        return -1;
    }
    return 0;
#endif
}

int objarena_check_chunk_size(size_t chunk, bool huge_pages) {
    if (chunk && (chunk < ARENA_MIN_CHUNK_SIZE || chunk > ARENA_MAX_CHUNK_SIZE || (chunk & (chunk - 1)))) {
        PyErr_Format(PyExc_ValueError,
                     "chunk_size must be a power of two between %zu and %zu bytes, got %zu",
                     (size_t)ARENA_MIN_CHUNK_SIZE, (size_t)ARENA_MAX_CHUNK_SIZE, chunk);
        return -1;
    }
    if (huge_pages && chunk && chunk < ARENA_HUGE_PAGE_SIZE) {
        PyErr_Format(PyExc_ValueError, "huge_pages needs chunk_size of at least %zu bytes (one huge page), got %zu",
                     (size_t)ARENA_HUGE_PAGE_SIZE, chunk);
        return -1;
    }
    return 0;
}

/* The chunk size a scope with byte limit `limit` and no chunk_size given
 * uses: a quarter of the limit (rounded down to a power of two, at least
 * `smallest`: ARENA_MIN_CHUNK_SIZE, or one huge page with huge_pages), at
 * most the default, so a small limit admits several chunks instead of
 * failing at the first one; the limit is then exact to within a quarter of
 * itself (or one smallest chunk). */
static size_t chunk_size_for_limit(size_t limit, size_t chunk, size_t smallest) {
    while (chunk > smallest && chunk > limit / 4)
        chunk /= 2;
    return chunk;
}

static size_t smallest_chunk(bool huge_pages) { return huge_pages ? ARENA_HUGE_PAGE_SIZE : ARENA_MIN_CHUNK_SIZE; }

/* A limit smaller than the smallest chunk the scope can map would refuse its
 * first allocation with nothing mapped (issue 24: pool.scope(limit=256 KiB)
 * with the pool's 1 MiB chunks, scope(huge_pages=True, limit=1 MiB)). So
 * chunks are sized to the limit where the scope may choose them, and a limit
 * under one chunk is a ValueError here, at construction: with a given
 * chunk_size, a pool's chunk size (options->chunk_size, filled in by the
 * module; a C caller that leaves it 0 gets no check) or one huge page. */
static int check_limit_fits_a_chunk(const objarena_scope_options_t *o) {
    if (!o->limit)
        return 0;
    if (o->pool) {
        if (o->chunk_size && o->limit < o->chunk_size) {
            PyErr_Format(PyExc_ValueError,
                         "limit=%zu is smaller than one chunk of the pool (chunk_size=%zu): a pool's scopes map "
                         "the pool's chunks; give a larger limit, or a scope without the pool",
                         o->limit, o->chunk_size);
            return -1;
        }
        return 0;
    }
    if (o->chunk_size && o->limit < o->chunk_size) {
        PyErr_Format(PyExc_ValueError,
                     "limit=%zu is smaller than one chunk (chunk_size=%zu): leave chunk_size out (chunks are then "
                     "sized to the limit) or give a smaller one",
                     o->limit, o->chunk_size);
        return -1;
    }
    if (!o->chunk_size && o->limit < smallest_chunk(o->huge_pages)) {
        PyErr_Format(PyExc_ValueError,
                     "limit=%zu is smaller than one chunk: huge_pages needs chunks of at least %zu bytes "
                     "(one huge page); give a larger limit, or leave huge_pages out",
                     o->limit, smallest_chunk(o->huge_pages));
        return -1;
    }
    return 0;
}

objarena_scope_t *objarena_scope_new(const objarena_scope_options_t *options) {
    size_t chunk = options->chunk_size;
    /* (A pool scope's chunk size is its pool's, checked with the pool.) */
    if (objarena_check_chunk_size(chunk, options->huge_pages && !options->pool) < 0 ||
        check_limit_fits_a_chunk(options) < 0)
        return NULL;
    objarena_scope_t *s = PyMem_RawCalloc(1, sizeof *s);
    if (!s) {
        PyErr_NoMemory();
        return NULL;
    }
    s->options = *options;
    s->chunk_size_given = chunk != 0;
    if (!options->pool)
        s->options.chunk_size = arena_default_chunk_size(chunk, options->huge_pages);
    bool poison_env = false;
    if (objarena_env_poison(&poison_env) < 0) {
        PyMem_RawFree(s);
        return NULL;
    }
    if (poison_env)
        s->options.poison = true;
    return s;
}

/* The tightest byte limit that applies to a scope entered now: its own
 * (0: none) and what the nearest enclosing scope of this thread has left if
 * it has a limit (its effective limit minus what its arena has mapped and
 * the big blocks charged to it, charge.h). That one is enough: a scope
 * entered inside a limited scope always gets a limit itself, no larger
 * than what each enclosing limited scope had left then, so the nearest
 * scope's limit already carries theirs (as of its entry). Walking every
 * enclosing frame instead made entering N nested scopes quadratic (issue
 * 24: 10,000 took 6.9 s to enter). An inner scope cannot escape an outer
 * budget; what it maps is not charged to the outer scope afterwards (its
 * chunks go back at its exit). At least 1, so a spent budget refuses
 * everything rather than meaning "no limit". */
static size_t tightest_limit(size_t own) {
    objarena_frame_t *f = objarena_thread_top();
    while (f && !f->arena)
        f = f->parent; /* pauses */
    if (!f)
        return own;
    objarena_scope_t *outer = (objarena_scope_t *)f; /* a scope's frame is its first member */
    if (!outer->effective_limit)
        return own;
    uint64_t held = arena_bytes_mapped(f->arena) + f->charged; /* its chunks and its charged blocks (charge.h) */
    size_t left = held < outer->effective_limit ? outer->effective_limit - held : 1;
    return own && own < left ? own : left;
}

/* This thread's exit-collection seconds so far: the nested scopes' share of
 * a phase's time (collect.h). Per thread: other threads' exits did not run
 * inside this thread's phase. */
static _Thread_local double thread_exit_collect_seconds;

int objarena_scope_enter(objarena_scope_t *s) {
    if (s->frame.state != FRAME_NEW) {
        PyErr_SetString(PyExc_RuntimeError,
                        s->frame.state == FRAME_ACTIVE ? "scope is already active"
                                                       : "a scope can be entered only once; make a new one");
        return -1;
    }
    if (check_main_interpreter() < 0 || objarena_env_check_at_entry() < 0 || objarena_hook_install() < 0)
        return -1;
    s->effective_limit = tightest_limit(s->options.limit);
    /* A limit also charges the big MEM blocks (charge.h): the MEM hook too. */
    if ((s->options.capture_mem || s->effective_limit) && objarena_hook_install_mem() < 0)
        return -1;
    objarena_hook_verify_chain();
    arena_config_t config;
    arena_config_init(&config);
    if (s->options.chunk_size)
        config.chunk_size = s->options.chunk_size;
    config.byte_limit = s->effective_limit;
    if (s->effective_limit && !s->chunk_size_given && !s->options.pool) {
        s->options.chunk_size = chunk_size_for_limit(s->effective_limit, arena_default_chunk_size(0, s->options.huge_pages),
                                                     smallest_chunk(s->options.huge_pages));
        config.chunk_size = s->options.chunk_size;
    }
    config.poison_on_release = s->options.poison;
    config.reuse = s->options.reuse;
    config.huge_pages = s->options.huge_pages;
    config.pool = s->options.pool;
    config.adopt_retained = s->options.adopt;
    /* A task scope (entered in a task's step, task_scope.h): thousands may
     * be open at once, most making little, so its first chunk is 64 KiB
     * (measured in docs/benchmarks.md, "Task scopes"); a pool scope's too
     * (its chunk_size is the pool's, not the caller's): else each waiting
     * task holds one of the pool's whole chunks ("A Pool behind task
     * scopes"). */
    s->task_scope = objarena_task_current() != NULL;
    if (s->task_scope && (s->options.pool || !s->chunk_size_given) && !s->options.huge_pages)
        config.first_chunk_size = ARENA_MIN_CHUNK_SIZE;
    arena_t *arena = NULL;
    arena_error_t err = arena_create(&config, &arena);
    if (err != ARENA_OK) {
        if (err == ARENA_ENOMEM)
            PyErr_SetString(PyExc_MemoryError, "objarena: cannot reserve the arena region");
        else
            PyErr_Format(PyExc_ValueError, "objarena: %s", arena_error_name(err));
        return -1;
    }
    /* Before the push: gc.get_stats() allocates, and not into the arena. */
    if (s->options.collect == OBJARENA_COLLECT_AUTO || s->options.collect == OBJARENA_COLLECT_YOUNG)
        objarena_gc_collections(s->gc_collections_at_enter);
    /* A task scope's exit never runs the phase collection (collect.h). */
    if (s->options.collect == OBJARENA_COLLECT_AUTO && !s->task_scope) {
        /* The marker outside every arena: in a nested scope the enclosing
         * one is still capturing here, and its limit would be charged a
         * chunk for it. */
        objarena_frame_t pause;
        bool paused = objarena_uncaptured_begin(&pause);
        s->phase_sentinel = objarena_phase_mark();
        objarena_uncaptured_end(&pause, paused);
    }
    s->entered_at = objarena_monotonic_seconds();
    s->collect_seconds_at_enter = thread_exit_collect_seconds;
    s->frame.arena = arena;
    s->frame.capture_mem = s->options.capture_mem;
    s->frame.limit = s->effective_limit;
    if (objarena_thread_push(&s->frame) < 0) {
        objarena_phase_unmark(s->phase_sentinel);
        s->phase_sentinel = NULL;
        arena_destroy(arena);
        s->frame.arena = NULL;
        return -1;
    }
    s->arena_id = arena_id(arena);
    open_task_scopes += s->task_scope; /* (finish_exit takes it off: it runs once per entered scope) */
    return 0;
}

static void finish_exit(objarena_scope_t *s) {
    open_task_scopes -= s->task_scope;
    /* The exit collection lets a phase pay for a full collection out of its
     * own wall time (collect.c), less what nested exits already spent
     * (objarena_exit_pacing_start). A task scope's wall time is mostly
     * waiting, not work: with it, 2,000 parked tasks finishing together each
     * ran a full collection (107 s instead of 0.27 s, 3.11); only the
     * process-wide pace applies to them. */
    double pacing_start =
        s->task_scope ? objarena_monotonic_seconds()
                      : objarena_exit_pacing_start(s->entered_at,
                                                   thread_exit_collect_seconds - s->collect_seconds_at_enter);
    objarena_exit_collect(&s->options, s->gc_collections_at_enter, pacing_start, s->frame.arena,
                          s->phase_sentinel, s->task_scope, &s->exit_collection);
    thread_exit_collect_seconds += s->exit_collection.seconds;
    objarena_phase_unmark(s->phase_sentinel);
    s->phase_sentinel = NULL;
    objarena_hook_verify_chain();
    arena_release(s->frame.arena);
    objarena_scope_stats(s, &s->exit_stats);
    arena_destroy(s->frame.arena);
    s->frame.arena = NULL;
    /* Outermost only: an inner scope's exit would trim a heap the outer
     * phase is still using (and, while other task scopes are open, at most
     * once a TRIM_BUSY_INTERVAL). */
    if (s->options.trim_malloc && !objarena_thread_top())
        trim_malloc_paced();
}

int objarena_scope_exit(objarena_scope_t *s) {
    if (s->frame.state != FRAME_ACTIVE) {
        PyErr_SetString(PyExc_RuntimeError,
                        s->frame.state == FRAME_NEW      ? "scope was never entered"
                        : s->frame.state == FRAME_PARKED ? "scope is parked: the asyncio task it belongs to is "
                                                           "suspended; it exits in its own task"
                                                         : "scope has already exited");
        return -1;
    }
    if (s->frame.thread_id != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "a scope must be exited by the thread that entered it");
        return -1;
    }
    bool innermost = objarena_thread_top() == &s->frame;
    objarena_thread_unlink(&s->frame); /* capture stops here */
    finish_exit(s);
    if (!innermost) {
        PyErr_SetString(PyExc_RuntimeError,
                        "scope exited out of order: an inner scope or pause is still active; "
                        "the scope was closed and its arena released, the inner one keeps running");
        return -1;
    }
    return 0;
}

void objarena_scope_orphan(objarena_scope_t *s) {
    if (s->frame.state != FRAME_ACTIVE && s->frame.state != FRAME_PARKED)
        return;
    objarena_thread_unlink(&s->frame);
    s->options.collect = OBJARENA_COLLECT_NONE;
    s->options.trim_malloc = false;
    finish_exit(s);
}

void objarena_scope_free(objarena_scope_t *s) {
    if (!s)
        return;
    if (s->frame.state == FRAME_PARKED) {
        /* On no stack (its task's segment was dropped without discarding
         * it): release it here, without the collection. */
        objarena_scope_orphan(s);
    } else if (s->frame.state == FRAME_ACTIVE) {
        /* Only reachable if the owner dropped an active scope. On its own
         * thread: close it so nothing captures into freed memory. On another
         * thread its stack still points here: leak it (safe) instead. */
        if (s->frame.thread_id != PyThread_get_thread_ident())
            return;
        objarena_thread_unlink(&s->frame);
        finish_exit(s);
    }
    if (s->frame.arena)
        arena_destroy(s->frame.arena);
    PyMem_RawFree(s);
}

int objarena_pause_enter(objarena_frame_t *pause) {
    if (pause->state != FRAME_NEW) {
        PyErr_SetString(PyExc_RuntimeError, "a pause can be entered only once");
        return -1;
    }
    pause->arena = NULL;
    /* Outside the main interpreter no scope captures (hook.c forwards there),
     * so a pause has nothing to do, and this OS thread's stack holds the
     * main interpreter's frames: the pause stays off it (issue 24). */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        pause->elsewhere = true;
        pause->parent = NULL;
        pause->thread_id = PyThread_get_thread_ident();
        pause->state = FRAME_ACTIVE;
        return 0;
    }
    return objarena_thread_push(pause); /* a pause never fails */
}

int objarena_pause_exit(objarena_frame_t *pause) {
    if (pause->state != FRAME_ACTIVE) {
        PyErr_SetString(PyExc_RuntimeError, "pause is not active");
        return -1;
    }
    if (pause->thread_id != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "a pause must be exited by the thread that entered it");
        return -1;
    }
    if (pause->elsewhere) {
        pause->state = FRAME_EXITED;
        return 0;
    }
    bool innermost = objarena_thread_top() == pause;
    objarena_thread_unlink(pause);
    if (!innermost) {
        PyErr_SetString(PyExc_RuntimeError, "pause exited out of order: an inner scope is still active");
        return -1;
    }
    return 0;
}

bool objarena_uncaptured_begin(objarena_frame_t *pause) {
    memset(pause, 0, sizeof *pause);
    return objarena_thread_capture() && objarena_pause_enter(pause) == 0;
}

void objarena_uncaptured_end(objarena_frame_t *pause, bool paused) {
    if (paused && objarena_pause_exit(pause) < 0)
        PyErr_Clear();
}

void objarena_scope_stats(const objarena_scope_t *s, arena_stats_t *out) {
    if (s->frame.arena)
        arena_get_stats(s->frame.arena, out);
    else
        *out = s->exit_stats;
}
