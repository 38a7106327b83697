/* Scopes: the C API under `objarena.scope()` (also used directly by the
 * embedding GoogleTest harness).
 *
 * A scope owns one arena. Entering pushes it on the calling thread's stack:
 * from then on PYMEM_DOMAIN_OBJ allocations of that thread come from its
 * arena. Exiting (same thread, innermost first) stops the capture, runs the
 * clean-up that frees what CPython caches behind the user's back (full gc
 * even if gc is disabled, the type attribute cache, the slice cache), then
 * releases the arena: chunks with no live block go back to the OS at once,
 * chunks with survivors are retained until their last block is freed.
 *
 * Errors: every function returning int returns 0 on success and -1 with a
 * Python exception set (ValueError, RuntimeError, MemoryError). All of them
 * need the GIL of the main interpreter. Memory is never unsafe after an
 * error: a failed exit leaves no frame capturing that should not.
 */
#ifndef OBJARENA_SCOPE_H
#define OBJARENA_SCOPE_H

#include "pyext/collect.h"
#include "pyext/hook.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct objarena_scope_options {
    size_t limit;       /* bytes; 0: none */
    size_t chunk_size;  /* 0: default (sized to the limit when there is one) */
    int collect;        /* objarena_collect_mode_t (default AUTO) */
    bool strict;        /* what is live after exit must be a true escape: AUTO collects in full
                         * whenever blocks are left after the young collection */
    bool poison;        /* poison released memory (debug) */
    bool reuse;         /* recycle blocks freed inside the scope (size classes) */
    bool capture_mem;   /* capture PYMEM_DOMAIN_MEM requests of up to 512 bytes too (small list/set storage...) */
    bool huge_pages;    /* MADV_HUGEPAGE on fresh chunks >= 2 MiB */
    bool adopt;         /* allocate into earlier scopes' retained chunks (default true) */
    bool trim_malloc;   /* outermost exit: malloc_trim(0), glibc's free heap back to the OS (default true) */
    arena_pool_t *pool; /* warm chunks (not owned); must outlive the scope */
} objarena_scope_options_t;

typedef struct objarena_scope {
    objarena_frame_t frame;   /* first: a scope is a frame */
    objarena_scope_options_t options;
    arena_stats_t exit_stats; /* snapshot taken at exit */
    objarena_exit_collection_t exit_collection;
    long gc_collections_at_enter[3]; /* gc.get_stats()[g]["collections"] when entered (-1: unknown) */
    PyObject *phase_sentinel; /* generation-2 marker of the phase collection (phase_collect.h; NULL: none) */
    double entered_at;        /* monotonic seconds at entry */
    double collect_seconds_at_enter; /* this thread's exit-collection seconds at entry (scope.c) */
    size_t effective_limit;   /* the arena's byte limit: the tightest of its own and its enclosing scopes' (0: none) */
    bool chunk_size_given;    /* options.chunk_size came from the caller (else sized to the limit at entry) */
    bool task_scope;          /* entered in an asyncio task's step (task_scope.h): parked while the task waits */
    uint64_t arena_id;
} objarena_scope_t;

void objarena_scope_options_init(objarena_scope_options_t *options);

/* Validates options and makes a scope (not entered). NULL + exception. */
objarena_scope_t *objarena_scope_new(const objarena_scope_options_t *options);

/* A chunk_size option (0: the default) is a power of two in range and, with
 * huge_pages, at least one huge page: 0, or -1 with ValueError set. */
int objarena_check_chunk_size(size_t chunk_size, bool huge_pages);

/* Frees a scope that is not active (new or exited). An active scope is
 * exited first (errors are reported as unraisable). */
void objarena_scope_free(objarena_scope_t *scope);

/* Enters: installs the hook on first use, creates the arena, pushes. A
 * scope is entered once; entering again raises RuntimeError. */
int objarena_scope_enter(objarena_scope_t *scope);

/* Exits. RuntimeError if the scope is not active, belongs to another
 * thread, or is not the innermost frame of this thread. In the last case the
 * scope is still unlinked and its arena released (survivors stay safe), so
 * nothing keeps capturing into a scope whose `with` block has ended. */
int objarena_scope_exit(objarena_scope_t *scope);

/* The thread that entered the scope is ending with it still active (its
 * `with` block never finished), or the scope is parked and its task will
 * never run again (task_scope.h): unlinks it and releases its arena (survivors
 * retained as usual), without the exit collection (the thread state is being
 * torn down). Afterwards the scope is exited. GIL held, on that thread. */
void objarena_scope_orphan(objarena_scope_t *scope);

/* Pause frames: `objarena.paused()`. While a pause is the innermost frame
 * the thread allocates from the saved allocator. Entered in a sub-interpreter
 * a pause is a no-op (nothing is captured there): it is marked `elsewhere`,
 * never pushed, and its exit only checks the thread. */
int objarena_pause_enter(objarena_frame_t *pause);
int objarena_pause_exit(objarena_frame_t *pause);

/* The extension's own allocations kept out of every arena: if a scope is
 * capturing on this thread, pushes `pause` (zeroed by the caller) and
 * returns true; else pushes nothing and returns false. End with
 * objarena_uncaptured_end(pause, returned value), innermost first. Used
 * where the extension allocates on a user's behalf during entry or exit (a
 * phase marker, the freelist walk's heap copies), which would otherwise land
 * in an enclosing scope's arena and be charged to its limit. Never fails:
 * an out-of-order end is cleared, as the pause is the extension's own. */
bool objarena_uncaptured_begin(objarena_frame_t *pause);
void objarena_uncaptured_end(objarena_frame_t *pause, bool paused);

/* Current stats of a scope: live counters while active, the exit snapshot
 * afterwards. */
void objarena_scope_stats(const objarena_scope_t *scope, arena_stats_t *out);

/* Hands the free memory of the C heap back to the OS (glibc's malloc_trim(0);
 * nothing elsewhere). The phase's blocks over pymalloc's 512 bytes (list
 * arrays, buffers) come from malloc, and glibc keeps freed heap memory below
 * its trim threshold, which grows to the largest freed mmap'd block.
 * Unconditional (Pool.trim, close); a scope's exit paces its trims so they
 * take at most ~2% of the wall time, and while other task scopes are open
 * (requests in flight) trims at most once a second (scope.c). GIL held. */
void objarena_trim_malloc(void);

/* Trims done, scope exits that skipped theirs to keep the pace, and exits
 * that deferred theirs because other task scopes were still open (at most
 * one trim a second then; scope.c). */
void objarena_trim_stats(uint64_t *done, uint64_t *skipped, uint64_t *deferred);

#ifdef __cplusplus
}
#endif
#endif
