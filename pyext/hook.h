/* The allocator hooks for PYMEM_DOMAIN_OBJ and, for scopes that capture it
 * or have a byte limit (whose big MEM blocks are charged to it, charge.h),
 * PYMEM_DOMAIN_MEM.
 *
 * Each is installed once (objarena_hook_install, objarena_hook_install_mem)
 * and never removed: arena blocks may
 * be freed at any later time, even during Py_Finalize, and a pointer from the
 * arena handed to pymalloc's or mimalloc's free aborts or corrupts memory.
 * The hooks never call into Python and never allocate from a Python domain
 * (their own metadata comes from libc).
 *
 * Two faces. While a scope that captures the domain is active on any
 * thread, the installed allocator is the FULL face: malloc/calloc test one
 * thread-local pointer and either bump-allocate or call the saved
 * ("forward") allocator; free/realloc test ownership (arena_owns: a compare
 * and a load). While no such scope is active, it is the THIN face: the
 * forward allocator's own malloc, calloc and ctx, with only free and realloc
 * ours (the ownership test), so allocation outside scopes costs nothing
 * extra. The face is switched under the GIL when the first scope starts and
 * the last one ends, and only while ours is on top of the chain. A hook
 * stacked on ours keeps the face it wrapped: over the full face scopes still
 * capture; over the thin face they cannot, and entering a scope raises
 * RuntimeError. tracemalloc.start() is guarded by the objarena package
 * (objarena_hook_prepare_for_wrapper), so tracemalloc always wraps the full
 * face. OBJARENA_PASSTHROUGH=full (read at install) keeps the full face.
 *
 * Thread safety: the hook functions run on any thread of any interpreter.
 * The saved ("forward") allocator is an immutable struct published through
 * one atomic pointer, so a thread never sees half of a re-established chain.
 * Install, verify, the face switch and the capture switch need the main
 * interpreter's GIL.
 *
 * Interpreters: scopes and pauses belong to the main interpreter (the owner,
 * recorded at install). The thread-local stack belongs to the OS thread, so
 * a sub-interpreter run on a thread with an open scope sees that scope's
 * frame: every path that would allocate from an arena or touch the charge
 * table first checks that the thread's current interpreter is the owner, and
 * forwards to the saved allocator if not. So arena blocks and charges are
 * only ever made under the main GIL, and since CPython never hands an
 * own-GIL interpreter another interpreter's objects (PEP 684; cross-
 * interpreter data is released in its own interpreter), they are freed
 * under it too (legacy sub-interpreters share that GIL).
 */
#ifndef OBJARENA_HOOK_H
#define OBJARENA_HOOK_H

#include <Python.h>
#include <stdbool.h>

#include "arena/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One frame of a thread's scope stack: a scope (arena != NULL) or a pause
 * (arena == NULL). Owned by the Python object that pushed it. */
typedef struct objarena_frame {
    arena_t *arena;                 /* first: the hook's fast path loads it */
    uint64_t frees_forwarded;       /* frees sent to the saved allocator while capturing */
    uint64_t alloc_failures;        /* allocations the arena refused (limit, region or OS memory) */
    uint64_t alloc_fallbacks;       /* of those, served by the saved allocator instead (not limit) */
    uint64_t limit_hits;            /* of those, refused by the scope's byte limit */
    size_t limit_refused_bytes;     /* the request the limit refused last */
    size_t limit_grace_left;        /* bytes past the limit the last refusal's grace window still grants (hook.c) */
    uint64_t limit_grace_allocs;    /* blocks served past the limit so a MemoryError can unwind and be reported */
    uint64_t limit_grace_bytes;     /* their bytes */
    size_t limit;                   /* the scope's effective byte limit (0: none): charges big MEM blocks too (charge.h) */
    size_t charged;                 /* bytes of saved-allocator blocks charged to this scope now (kept at exit) */
    size_t charged_peak;            /* highest `charged` */
    bool capture_mem;               /* also capture PYMEM_DOMAIN_MEM requests of up to 512 bytes */
    struct objarena_frame *parent;  /* next frame down this thread's stack */
    void *owner;                    /* the Python object that pushed it (the stack holds a reference), or NULL */
    unsigned long thread_id;        /* PyThread_get_thread_ident() of the owner */
    int state;                      /* objarena_frame_state */
    bool elsewhere;                 /* a pause entered outside the main interpreter: a no-op, never on the stack */
} objarena_frame_t;

/* PARKED: on no thread's stack, because the asyncio task it belongs to is
 * suspended (task_scope.h); it still counts as capturing for the face. */
enum objarena_frame_state { FRAME_NEW = 0, FRAME_ACTIVE = 1, FRAME_EXITED = 2, FRAME_PARKED = 3 };

/* The frame the hook allocates from on this thread (NULL: pass-through) and
 * the top of this thread's stack (scope or pause). */
objarena_frame_t *objarena_thread_capture(void);
objarena_frame_t *objarena_thread_top(void);

/* Pushes/pops a frame on this thread's stack and recomputes capture.
 * unlink removes a frame from anywhere in this thread's stack. Pushing a
 * scope frame (arena != NULL) puts the full face in the chain first; it
 * fails (-1, RuntimeError, nothing pushed) only if a foreign hook sits on the
 * thin face. Pushing a pause never fails. Unlinking the last scope frame
 * puts the thin face back. */
int objarena_thread_push(objarena_frame_t *frame);
void objarena_thread_unlink(objarena_frame_t *frame);

/* Segments (task scopes, task_scope.h): the frames an asyncio task pushed
 * during its step are taken off the thread's stack as a unit when the task
 * suspends, and put back on top of whatever is there when it resumes. A
 * parked frame keeps its parent links inside the segment, its state is
 * FRAME_PARKED, and it still counts as capturing (the full face stays in
 * the chain: no face switch per step). Neither call allocates or fails.
 *
 * detach_above: takes the frames above `base` (a frame of this thread's
 * stack, or NULL: the whole stack) off it; returns the segment's top and
 * sets *bottom (NULL: nothing above base). If base is no longer on the
 * stack (unlinked out of order during the step) nothing is detached and
 * *bottom is set to NULL; the return value is then the stack's top, and the
 * caller counts it. attach: the reverse, on this thread. unlink (above)
 * also accepts a parked frame: it is then only marked exited.
 * Budget: a few loads and stores per frame of the segment. */
objarena_frame_t *objarena_thread_detach_above(objarena_frame_t *base, objarena_frame_t **bottom);
void objarena_thread_attach(objarena_frame_t *top, objarena_frame_t *bottom);

/* Saves the current OBJ allocator and installs the hook, once. 0 on success,
 * -1 with a Python exception set. Needs the GIL. */
int objarena_hook_install(void);
bool objarena_hook_installed(void);

/* The same for PYMEM_DOMAIN_MEM (scopes with capture_mem or a limit), once. */
int objarena_hook_install_mem(void);

/* Is the hook still in the OBJ domain's chain? If tracemalloc (started
 * before the hook) was stopped, it restored its own saved allocator over the
 * hook: then the hook is re-installed on top of what is there now and the
 * repair is counted. Returns 1 if it repaired, 0 otherwise. Needs the GIL. */
int objarena_hook_verify_chain(void);

/* A hook is about to be stacked on ours (tracemalloc.start): install the
 * full face now, so that scopes capture through the wrapper. The thin face
 * comes back once ours is on top again with no scope active. */
void objarena_hook_prepare_for_wrapper(void);

/* Thin face outside scopes (default) or always the full one. Takes effect
 * at once where ours is on top. */
void objarena_hook_set_thin_passthrough(bool enabled);

typedef struct objarena_hook_stats {
    bool installed;
    bool mem_installed;              /* the MEM-domain hook too */
    bool installed_over_tracemalloc; /* installed over a hook stacked on tracemalloc (repaired after its stop) */
    bool installed_under_tracemalloc; /* tracemalloc was on top at install: installed into its saved slot */
    bool hook_on_top;                /* PyMem_GetAllocator(OBJ) is the hook now (either face) */
    bool full_face;                  /* the OBJ face last installed is the full one */
    uint64_t chain_repairs;
    uint64_t moved_out;              /* arena blocks realloc'ed into the saved allocator */
} objarena_hook_stats_t;

void objarena_hook_get_stats(objarena_hook_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
