/* The allocator hooks for PYMEM_DOMAIN_OBJ and, for scopes that ask for it,
 * PYMEM_DOMAIN_MEM.
 *
 * Each is installed once (objarena_hook_install, objarena_hook_install_mem)
 * and never removed: arena blocks may
 * be freed at any later time, even during Py_Finalize, and a pointer from the
 * arena handed to pymalloc's or mimalloc's free aborts or corrupts memory.
 * Outside a scope the hook is a pass-through: malloc/calloc test one
 * thread-local pointer, free/realloc one ownership lookup
 * (arena_owns: a compare and a load), then call the saved allocator with its
 * own ctx. The hooks never call into Python and never allocate from a
 * Python domain (their own metadata comes from libc).
 *
 * Thread safety: the hook functions run on any thread of any interpreter.
 * The saved ("forward") allocator is an immutable struct published through
 * one atomic pointer, so a thread never sees half of a re-established chain.
 * Install, verify and the capture switch need the main interpreter's GIL.
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
    uint64_t alloc_failures;        /* allocations the arena refused (limit, OS) */
    bool capture_mem;               /* also capture PYMEM_DOMAIN_MEM */
    struct objarena_frame *parent;  /* next frame down this thread's stack */
    unsigned long thread_id;        /* PyThread_get_thread_ident() of the owner */
    int state;                      /* objarena_frame_state */
} objarena_frame_t;

enum objarena_frame_state { FRAME_NEW = 0, FRAME_ACTIVE = 1, FRAME_EXITED = 2 };

/* The frame the hook allocates from on this thread (NULL: pass-through) and
 * the top of this thread's stack (scope or pause). */
objarena_frame_t *objarena_thread_capture(void);
objarena_frame_t *objarena_thread_top(void);

/* Pushes/pops a frame on this thread's stack and recomputes capture.
 * unlink removes a frame from anywhere in this thread's stack. */
void objarena_thread_push(objarena_frame_t *frame);
void objarena_thread_unlink(objarena_frame_t *frame);

/* Saves the current OBJ allocator and installs the hook, once. 0 on success,
 * -1 with a Python exception set. Needs the GIL. */
int objarena_hook_install(void);
bool objarena_hook_installed(void);

/* The same for PYMEM_DOMAIN_MEM (scopes with capture_mem), once. */
int objarena_hook_install_mem(void);

/* Is the hook still in the OBJ domain's chain? If tracemalloc (started
 * before the hook) was stopped, it restored its own saved allocator over the
 * hook: then the hook is re-installed on top of what is there now and the
 * repair is counted. Returns 1 if it repaired, 0 otherwise. Needs the GIL. */
int objarena_hook_verify_chain(void);

typedef struct objarena_hook_stats {
    bool installed;
    bool mem_installed;              /* the MEM-domain hook too */
    bool installed_over_tracemalloc; /* tracemalloc was tracing at install */
    bool hook_on_top;                /* PyMem_GetAllocator(OBJ) is the hook now */
    uint64_t chain_repairs;
    uint64_t moved_out;              /* arena blocks realloc'ed into the saved allocator */
} objarena_hook_stats_t;

void objarena_hook_get_stats(objarena_hook_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
