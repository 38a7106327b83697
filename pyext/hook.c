/* The PYMEM_DOMAIN_OBJ hook: capture into the thread's arena inside a scope,
 * forward everything else to the saved allocator. */
#include "pyext/hook.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define OBJARENA_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define OBJARENA_TLS _Thread_local
#endif

/* The thread's capturing frame (what the hook reads) and stack top. */
static OBJARENA_TLS objarena_frame_t *tls_capture;
static OBJARENA_TLS objarena_frame_t *tls_top;

/* The allocator the hook forwards to. Immutable once published; replaced
 * (never freed) when the chain is re-established. */
static _Atomic(PyMemAllocatorEx *) forward_allocator;

static bool hook_installed;
static bool hook_over_tracemalloc;
static uint64_t hook_chain_repairs;
static uint64_t hook_moved_out;

static inline PyMemAllocatorEx *forward(void) {
    return atomic_load_explicit(&forward_allocator, memory_order_acquire);
}

/* ---- the hook: hot paths ---- */

static void *hook_malloc(void *ctx, size_t size) {
    (void)ctx;
    objarena_frame_t *f = tls_capture;
    if (f) {
        void *p = arena_alloc(f->arena, size);
        if (__builtin_expect(p == NULL, 0))
            f->alloc_failures++;
        return p;
    }
    PyMemAllocatorEx *fw = forward();
    return fw->malloc(fw->ctx, size);
}

static void *hook_calloc(void *ctx, size_t count, size_t size) {
    (void)ctx;
    objarena_frame_t *f = tls_capture;
    if (f) {
        void *p = arena_calloc(f->arena, count, size);
        if (__builtin_expect(p == NULL, 0))
            f->alloc_failures++;
        return p;
    }
    PyMemAllocatorEx *fw = forward();
    return fw->calloc(fw->ctx, count, size);
}

static void hook_free(void *ctx, void *ptr) {
    (void)ctx;
    if (arena_owns(ptr)) {
        arena_free(ptr);
        return;
    }
    objarena_frame_t *f = tls_capture;
    if (f)
        f->frees_forwarded++;
    PyMemAllocatorEx *fw = forward();
    fw->free(fw->ctx, ptr);
}

/* An arena block reallocated outside any scope moves to the saved
 * allocator: its arena may be gone, and the new size belongs to whoever
 * owns the object now. */
static void *move_out(PyMemAllocatorEx *fw, void *ptr, size_t size) {
    size_t readable = arena_block_readable_size(ptr);
    void *q = fw->malloc(fw->ctx, size);
    if (!q)
        return NULL;
    memcpy(q, ptr, readable < size ? readable : size);
    arena_free(ptr);
    hook_moved_out++;
    return q;
}

static void *hook_realloc(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    objarena_frame_t *f = tls_capture;
    if (arena_owns(ptr)) {
        if (f) {
            void *q = arena_realloc(f->arena, ptr, size);
            if (!q)
                f->alloc_failures++;
            return q;
        }
        return move_out(forward(), ptr, size);
    }
    if (f && ptr == NULL) {
        void *p = arena_alloc(f->arena, size);
        if (!p)
            f->alloc_failures++;
        return p;
    }
    PyMemAllocatorEx *fw = forward();
    return fw->realloc(fw->ctx, ptr, size);
}

/* ---- the per-thread stack ---- */

objarena_frame_t *objarena_thread_capture(void) { return tls_capture; }
objarena_frame_t *objarena_thread_top(void) { return tls_top; }

static void recompute_capture(void) {
    tls_capture = (tls_top && tls_top->arena) ? tls_top : NULL;
}

void objarena_thread_push(objarena_frame_t *frame) {
    frame->parent = tls_top;
    frame->thread_id = PyThread_get_thread_ident();
    frame->state = FRAME_ACTIVE;
    tls_top = frame;
    recompute_capture();
}

void objarena_thread_unlink(objarena_frame_t *frame) {
    objarena_frame_t **link = &tls_top;
    while (*link && *link != frame)
        link = &(*link)->parent;
    if (*link)
        *link = frame->parent;
    frame->parent = NULL;
    frame->state = FRAME_EXITED;
    recompute_capture();
}

/* ---- install and chain maintenance ---- */

/* Whether tracemalloc is tracing, asked without calling Python:
 * PyTraceMalloc_Track answers -2 when tracemalloc is disabled. */
static bool tracemalloc_is_tracing(void) {
    const unsigned int probe_domain = 0x6f626a61u; /* "obja" */
    static char probe_byte;
    if (PyTraceMalloc_Track(probe_domain, (uintptr_t)&probe_byte, 1) == -2)
        return false;
    PyTraceMalloc_Untrack(probe_domain, (uintptr_t)&probe_byte);
    return true;
}

static int publish_forward(const PyMemAllocatorEx *saved) {
    /* libc malloc, not the OBJ domain: the hook may read it at any time and
     * it is never freed (a racing reader may still hold the old one). */
    PyMemAllocatorEx *copy = malloc(sizeof *copy);
    if (!copy) {
        PyErr_NoMemory();
        return -1;
    }
    *copy = *saved;
    atomic_store_explicit(&forward_allocator, copy, memory_order_release);
    return 0;
}

static PyMemAllocatorEx hook_allocator = {NULL, hook_malloc, hook_calloc, hook_realloc, hook_free};

int objarena_hook_install(void) {
    if (hook_installed)
        return 0;
    PyMemAllocatorEx saved;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &saved);
    if (publish_forward(&saved) < 0)
        return -1;
    hook_over_tracemalloc = tracemalloc_is_tracing();
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &hook_allocator);
    hook_installed = true;
    return 0;
}

bool objarena_hook_installed(void) { return hook_installed; }

int objarena_hook_verify_chain(void) {
    if (!hook_installed)
        return 0;
    PyMemAllocatorEx current;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &current);
    if (current.malloc == hook_malloc)
        return 0;
    /* Something else is on top. If it is a hook stacked over ours (a
     * profiler, tracemalloc started later) it forwards to us: leave it. The
     * one case where we are out of the chain: tracemalloc was tracing when we
     * installed (we forward to it), is no longer tracing, and what is
     * installed now is not tracemalloc's hook -- tracemalloc.stop() restored
     * the allocator it had saved, over ours. */
    PyMemAllocatorEx *fw = forward();
    if (!hook_over_tracemalloc || tracemalloc_is_tracing() || current.malloc == fw->malloc)
        return 0;
    if (publish_forward(&current) < 0) {
        PyErr_Clear(); /* keep forwarding to the stale chain rather than fail */
        return 0;
    }
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &hook_allocator);
    hook_over_tracemalloc = false;
    hook_chain_repairs++;
    return 1;
}

void objarena_hook_get_stats(objarena_hook_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->installed = hook_installed;
    out->installed_over_tracemalloc = hook_over_tracemalloc;
    out->chain_repairs = hook_chain_repairs;
    out->moved_out = hook_moved_out;
    if (hook_installed) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &current);
        out->hook_on_top = current.malloc == hook_malloc;
    }
}
