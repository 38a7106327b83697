/* The PYMEM_DOMAIN_OBJ hook: capture into the thread's arena inside a scope,
 * forward everything else to the saved allocator. */
#include "pyext/hook.h"

#include "pyext/charge.h"
#include "pyext/env.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define OBJARENA_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define OBJARENA_TLS _Thread_local
#endif

/* The thread's capturing frames (what the hooks read) and stack top. */
static OBJARENA_TLS objarena_frame_t *tls_capture;     /* OBJ domain */
static OBJARENA_TLS objarena_frame_t *tls_capture_mem; /* MEM domain */
static OBJARENA_TLS objarena_frame_t *tls_top;
static OBJARENA_TLS objarena_frame_t *tls_limit; /* the capturing frame, if it has a byte limit */

/* Per domain (0: OBJ, 1: MEM): the allocator the hook forwards to.
 * Immutable once published; replaced (never freed) when the chain is
 * re-established. */
enum { HOOK_OBJ = 0, HOOK_MEM = 1, HOOK_DOMAINS = 2 };
static const PyMemAllocatorDomain hook_domain_id[HOOK_DOMAINS] = {PYMEM_DOMAIN_OBJ, PYMEM_DOMAIN_MEM};
static _Atomic(PyMemAllocatorEx *) forward_allocator[HOOK_DOMAINS];
/* The forward allocator's ctx, malloc and free, on their own: the full
 * face's hooks call them with two loads instead of three. The full face
 * takes the ctx from here, not from its argument: a stale copy of our face
 * (saved by a hook stacked over it before a chain repair, then restored)
 * carries the old forward's ctx, and the debug hooks abort on a ctx that is
 * not theirs. Published with the allocator, before a face that reads them
 * is installed; read and written with the GIL held. */
typedef void *(*malloc_fn_t)(void *ctx, size_t size);
typedef void (*free_fn_t)(void *ctx, void *ptr);
static _Atomic(void *) forward_ctx[HOOK_DOMAINS];
static _Atomic(malloc_fn_t) forward_malloc[HOOK_DOMAINS];
static _Atomic(free_fn_t) forward_free[HOOK_DOMAINS];

static inline void *forward_ctx_of(int domain) {
    return atomic_load_explicit(&forward_ctx[domain], memory_order_relaxed);
}

static bool hook_installed[HOOK_DOMAINS];
static bool hook_over_tracemalloc[HOOK_DOMAINS];
/* Installed into tracemalloc's saved slot (tracemalloc_slot_on_top). */
static bool hook_under_tracemalloc_at_install[HOOK_DOMAINS];
static uint64_t hook_chain_repairs;
static uint64_t hook_moved_out;

/* MEM capture takes requests of up to pymalloc's small-block size; larger
 * ones (growing buffers: tokenizer lines, parser blocks, big list arrays)
 * go to the saved allocator, and a captured block reallocated past it moves
 * there. In the arena, a buffer that grows by moving leaves a dead block of
 * every size class it passed through, which only requests of the same class
 * reuse; malloc coalesces them. Measured (bench/run.py, 3.11, peak RSS vs
 * pymalloc): capturing every size put ast_compile at 1.26-1.27x, up to 512
 * bytes at 1.11-1.12x (OBJ only: 1.10x); keep_0_1pct's held RSS (before
 * the heap trim at scope exit, scope.h) was 0.12x and 0.15x (OBJ only 0.25x). */
#define OBJARENA_MEM_CAPTURE_MAX ((size_t)512)

static inline PyMemAllocatorEx *forward(int domain) {
    return atomic_load_explicit(&forward_allocator[domain], memory_order_acquire);
}

/* ---- which interpreter is running ----
 *
 * Scopes and pauses belong to the main interpreter (scope.c refuses to
 * enter one elsewhere), but the thread-local stack belongs to the OS thread:
 * a sub-interpreter run on a thread with an open scope (_interpreters.exec,
 * concurrent.interpreters, InterpreterPoolExecutor, a legacy
 * Py_NewInterpreter) sees the main scope's frame in tls_capture. An own-GIL
 * interpreter allocating into that arena races with the main interpreter's
 * threads freeing into it (issue 24: SIGSEGV or a hang); a legacy one would
 * leak its objects into the phase. So every capture and charge path first
 * asks whether the thread's current interpreter is the owner, and forwards
 * if not. The owner is recorded when the hook is installed, which happens
 * only on a scope entry, in the main interpreter. The question is a call
 * that reads CPython's current thread state (a thread-local on 3.12+) and a
 * load of its interp, preceded by a cheaper test (on_owner_interp below).
 * Budget, hit path of the in-scope malloc half (x86-64, GCC 12 -O2, 3.13.0
 * with a shared libpython), counted in the disassembly: 6 instructions
 * before the check; about 21 with it while the main interpreter is alone
 * (a stack frame, PyInterpreterState_Head through the PLT: 4, a compare);
 * about 36 once another interpreter exists (PyThreadState_GetUnchecked and
 * __tls_get_addr through the PLT: 19 more). hook_bench (3.11.7, min of 5
 * alternated runs under load 11 on 2 cores; the thread-state check alone)
 * put a scope's reuse pair at 27.61 ns against 26.87 before, a pool's at
 * 28.91 against 28.22. The pass-through paths outside scopes do not ask. */
static PyInterpreterState *owner_interp;

static inline PyThreadState *current_tstate(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

/* First the common case, without reading the thread state: the interpreter
 * list's head is the newest interpreter and the main one is created first,
 * so head == main means no other interpreter exists, and none can be running
 * on this thread (entering one needs it listed first, which this thread then
 * sees). PyInterpreterState_Head is a call that loads one global; reading the
 * current thread state is a thread-local that a shared libpython reaches
 * through __tls_get_addr (3.12+: two calls). */
static inline bool on_owner_interp(void) {
    if (PyInterpreterState_Head() == owner_interp)
        return true;
    PyThreadState *ts = current_tstate();
    return ts != NULL && ts->interp == owner_interp;
}

/* ---- the hooks: hot paths, one set per domain ---- */

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

/* Past the limit every allocation of the scope would fail, including the
 * ones CPython needs to unwind the MemoryError and call the scope's __exit__
 * (traceback entries, frame objects), and the ones a handler inside the
 * phase needs to report it. A phase stays at its limit after a refusal even
 * when the unwinding frees its objects: the arena's chunks stay mapped (and
 * counted) until exit, and their freed blocks serve only requests of the same
 * size class. Dask's worker, for one, pickles the exception and its traceback
 * inside the task's scope (about 110 kB, mostly pickler buffers over 512
 * bytes, which are charged); refused, it sent the traceback's text instead,
 * which its client's clean_exception asserted on, and the future never
 * resolved. So each refusal opens a grace window: the next requests past the
 * limit, up to limit_grace_window() bytes in all, come from the saved
 * allocator (charged blocks are still charged), and the request after the
 * window is refused again and opens a new one: at most one window past the
 * limit per MemoryError raised. */
static size_t limit_grace_window(const objarena_frame_t *f) {
    const size_t lo = (size_t)128 << 10, hi = (size_t)1 << 20;
    size_t quarter = f->limit / 4;
    return quarter < lo ? lo : quarter > hi ? hi : quarter;
}

/* A request of `total` bytes the limit does not cover: true if the grace
 * window serves it (counted apart), false if it is refused (counted, and a
 * new window opens for the unwinding). */
static bool past_limit(objarena_frame_t *f, size_t total) {
    if (total <= f->limit_grace_left) {
        f->limit_grace_left -= total;
        f->limit_grace_allocs++;
        f->limit_grace_bytes += total;
        return true;
    }
    f->alloc_failures++;
    f->limit_hits++;
    f->limit_refused_bytes = total;
    f->limit_grace_left = limit_grace_window(f);
    return false;
}

/* The arena refused a block (out of line: never on the fast path). A
 * scope's `limit` is the caller's own cap, and an overflowing calloc is bad
 * input: the NULL stands and CPython raises MemoryError. Running out of the
 * region's address space or of OS memory for a chunk is objarena's
 * shortfall, not the program's: the saved allocator serves the block, as if
 * no scope were active (so it is not given back with the phase), and the
 * scope counts it. old != NULL: a realloc of arena block old, which moves. */
static __attribute__((noinline)) void *alloc_refused(objarena_frame_t *f, int domain, void *old, size_t count,
                                                     size_t size, bool zero) {
    arena_error_t err = arena_last_error(f->arena);
    /* (an overflowing calloc is EINVAL, so count * size fits here) */
    if (err == ARENA_ELIMIT && !past_limit(f, (size_t)count * size))
        return NULL;
    if (err != ARENA_ELIMIT)
        f->alloc_failures++;
    if (err != ARENA_ENOMEM && err != ARENA_ELIMIT)
        return NULL;
    PyMemAllocatorEx *fw = forward(domain);
    void *p;
    if (old)
        p = move_out(fw, old, size);
    else
        p = zero ? fw->calloc(fw->ctx, count, size) : fw->malloc(fw->ctx, size);
    if (p && err == ARENA_ENOMEM)
        f->alloc_fallbacks++;
    return p;
}

/* A request from another interpreter on a thread with an open scope: the
 * saved allocator serves it, uncharged (out of line). */
static __attribute__((noinline)) void *foreign_alloc(int domain, size_t count, size_t size, bool zero) {
    PyMemAllocatorEx *fw = forward(domain);
    return zero ? fw->calloc(fw->ctx, count, size) : fw->malloc(fw->ctx, size);
}

/* ---- limit charges for blocks from the saved allocator (charge.h) ---- */

/* The arena may map what the limit leaves after the charges. */
static void charge_rebudget(objarena_frame_t *f) {
    arena_set_byte_limit(f->arena, f->limit > f->charged ? f->limit - f->charged : 1);
}

static bool charge_fits(objarena_frame_t *f, size_t size) {
    uint64_t held = arena_bytes_mapped(f->arena) + f->charged;
    if (size <= f->limit && held <= f->limit - size)
        return true;
    return past_limit(f, size);
}

static void charge_to(objarena_frame_t *f, void *p, size_t size) {
    if (!objarena_charge_add(f, p, size))
        return; /* no table memory: uncounted rather than refused */
    f->charged += size;
    if (f->charged > f->charged_peak)
        f->charged_peak = f->charged;
    charge_rebudget(f);
}

/* The charge table is the main interpreter's (changed under its GIL): a
 * free from another interpreter is never of a charged block, and must not
 * read the table while main-interpreter threads change it. */
static void uncharge(void *p) {
    if (!on_owner_interp())
        return;
    objarena_frame_t *f = NULL;
    size_t size = objarena_charge_remove(p, &f);
    if (size) {
        f->charged -= size;
        charge_rebudget(f);
    }
}

/* A MEM request the arena does not serve, in a scope with a limit. */
static __attribute__((noinline)) void *charged_alloc(size_t count, size_t size, bool zero) {
    if (!on_owner_interp())
        return foreign_alloc(HOOK_MEM, count, size, zero);
    objarena_frame_t *f = tls_limit;
    size_t total;
    if (__builtin_mul_overflow(count, size, &total) || !charge_fits(f, total))
        return NULL;
    PyMemAllocatorEx *fw = forward(HOOK_MEM);
    void *p = zero ? fw->calloc(fw->ctx, count, size) : fw->malloc(fw->ctx, size);
    if (p)
        charge_to(f, p, total);
    return p;
}

/* The charge of a block belongs to the scope that owns the block, from its
 * allocation until its free: a realloc keeps it there, whichever scope or
 * pause is current (an inner scope's exit would otherwise drop it, and a
 * pause would let it grow unchecked: issue 24). So a phase's list that grows
 * inside a nested scope or under paused() hits the phase's limit where it
 * would without them. The growth is refused past the owner's limit on the
 * owner's own thread; a realloc on another thread keeps the charge (with the
 * new size) but is never refused for a scope that thread is not in. */
static bool on_frame_thread(const objarena_frame_t *f) { return f->thread_id == PyThread_get_thread_ident(); }

/* realloc of a saved-allocator block while charges exist or a limit applies:
 * a charged block's charge stays with its owner at its new size; an
 * uncharged block that grows past the MEM capture size in a limited scope is
 * charged to that scope (its old size unknown: all of it). On failure the
 * old block and its charge are as they were. */
static __attribute__((noinline)) void *charged_realloc(void *ptr, size_t size) {
    if (!on_owner_interp()) {
        PyMemAllocatorEx *fw = forward(HOOK_MEM);
        return fw->realloc(fw->ctx, ptr, size);
    }
    objarena_frame_t *owner = NULL;
    size_t old = objarena_charge_remove(ptr, &owner);
    objarena_frame_t *f = old ? owner : tls_limit;
    if (old) {
        owner->charged -= old;
        charge_rebudget(owner);
    }
    bool charge = f && (old || size > OBJARENA_MEM_CAPTURE_MAX);
    /* (A charged block that shrinks or keeps its size is never refused: only
     * growth is checked against the limit.) */
    bool check = charge && (!old || (size > old && on_frame_thread(owner)));
    void *q = NULL;
    if (!check || charge_fits(f, size)) {
        PyMemAllocatorEx *fw = forward(HOOK_MEM);
        q = fw->realloc(fw->ctx, ptr, size);
    }
    if (!q) {
        if (old)
            charge_to(owner, ptr, old);
        return NULL;
    }
    if (charge)
        charge_to(f, q, size);
    return q;
}

/* The frame of this thread's stack whose arena holds arena block ptr, or
 * NULL (a survivor of an exited scope, another thread's block). */
static objarena_frame_t *frame_of_block(const void *ptr) {
    uint64_t id = arena_block_arena_id(ptr);
    for (objarena_frame_t *f = tls_top; f && id; f = f->parent)
        if (f->arena && arena_id(f->arena) == id)
            return f;
    return NULL;
}

/* A captured MEM block reallocated past the capture size (a list array
 * growing from 512 bytes to 80 MB in one `*=`) moves to the saved allocator.
 * It is charged there like a fresh request, to the scope whose arena held
 * it if that scope is on this thread's stack (the block is that phase's,
 * even inside a nested scope or a pause), else to the current limited
 * scope; a block whose owning scope has no limit is not charged. */
static __attribute__((noinline)) void *charged_move_out(void *ptr, size_t size) {
    if (!on_owner_interp())
        return move_out(forward(HOOK_MEM), ptr, size);
    objarena_frame_t *owner = frame_of_block(ptr);
    objarena_frame_t *f = owner ? (owner->limit ? owner : NULL) : tls_limit;
    if (f && !charge_fits(f, size))
        return NULL;
    void *q = move_out(forward(HOOK_MEM), ptr, size);
    if (q && f)
        charge_to(f, q, size);
    return q;
}

/* Per domain: the hooks, plus their in-scope halves out of line. The split
 * keeps each hook free of a stack frame (both of its paths end in a tail
 * call), so forwarding outside a scope costs what it did before failures
 * fell back; the in-scope half keeps only the size live across the arena
 * call (the frame is re-read from the thread-local on the rare failure). */
#define DEFINE_HOOKS(prefix, TLS, DOMAIN, MAX, CHARGE)                                 \
    static __attribute__((noinline)) void *prefix##_scope_malloc(arena_t *a, size_t size) { \
        if (__builtin_expect(!on_owner_interp(), 0))                                   \
            return foreign_alloc(DOMAIN, 1, size, false);                              \
        void *p = arena_alloc(a, size);                                                \
        if (__builtin_expect(p != NULL, 1))                                            \
            return p;                                                                  \
        return alloc_refused(TLS, DOMAIN, NULL, 1, size, false);                       \
    }                                                                                  \
    static __attribute__((noinline)) void *prefix##_scope_calloc(arena_t *a, size_t count, size_t size) { \
        if (__builtin_expect(!on_owner_interp(), 0))                                   \
            return foreign_alloc(DOMAIN, count, size, true);                           \
        void *p = arena_calloc(a, count, size);                                        \
        if (__builtin_expect(p != NULL, 1))                                            \
            return p;                                                                  \
        return alloc_refused(TLS, DOMAIN, NULL, count, size, true);                    \
    }                                                                                  \
    static __attribute__((noinline)) void *prefix##_scope_realloc(arena_t *a, void *ptr, size_t size) { \
        if (__builtin_expect(!on_owner_interp(), 0))                                   \
            return move_out(forward(DOMAIN), ptr, size);                               \
        void *q = arena_realloc(a, ptr, size);                                         \
        if (__builtin_expect(q != NULL, 1))                                            \
            return q;                                                                  \
        return alloc_refused(TLS, DOMAIN, ptr, 1, size, false);                        \
    }                                                                                  \
    static void *prefix##_malloc(void *ctx, size_t size) {                             \
        (void)ctx;                                                                     \
        objarena_frame_t *f = TLS;                                                     \
        if (f && size <= (MAX))                                                        \
            return prefix##_scope_malloc(f->arena, size);                              \
        if ((CHARGE) && tls_limit && size > OBJARENA_MEM_CAPTURE_MAX)                  \
            return charged_alloc(1, size, false);                                      \
        malloc_fn_t forward_fn = atomic_load_explicit(&forward_malloc[DOMAIN], memory_order_relaxed); \
        return forward_fn(forward_ctx_of(DOMAIN), size);                               \
    }                                                                                  \
    static void *prefix##_calloc(void *ctx, size_t count, size_t size) {               \
        (void)ctx;                                                                     \
        objarena_frame_t *f = TLS;                                                     \
        if (f && ((MAX) == SIZE_MAX || size == 0 || count <= (MAX) / size))           \
            return prefix##_scope_calloc(f->arena, count, size);                       \
        if ((CHARGE) && tls_limit && (size != 0 && count > OBJARENA_MEM_CAPTURE_MAX / size)) \
            return charged_alloc(count, size, true);                                   \
        PyMemAllocatorEx *fw = forward(DOMAIN);                                        \
        return fw->calloc(fw->ctx, count, size);                                       \
    }                                                                                  \
    static void prefix##_free(void *ctx, void *ptr) {                                  \
        (void)ctx;                                                                     \
        void *owner = arena_owner_of(ptr);                                             \
        if (owner) {                                                                   \
            arena_free_owned(owner, ptr);                                              \
            return;                                                                    \
        }                                                                              \
        objarena_frame_t *f = TLS;                                                     \
        if (f)                                                                         \
            f->frees_forwarded++;                                                      \
        if ((CHARGE) && objarena_charged_blocks)                                       \
            uncharge(ptr);                                                             \
        free_fn_t forward_fn = atomic_load_explicit(&forward_free[DOMAIN], memory_order_relaxed); \
        forward_fn(forward_ctx_of(DOMAIN), ptr);                                       \
    }                                                                                  \
    static void *prefix##_realloc(void *ctx, void *ptr, size_t size) {                 \
        (void)ctx;                                                                     \
        objarena_frame_t *f = TLS;                                                     \
        if (arena_owns(ptr)) {                                                         \
            if (f && size <= (MAX))                                                    \
                return prefix##_scope_realloc(f->arena, ptr, size);                    \
            if ((CHARGE) && tls_top && size > OBJARENA_MEM_CAPTURE_MAX)                \
                return charged_move_out(ptr, size);                                    \
            return move_out(forward(DOMAIN), ptr, size);                               \
        }                                                                              \
        if (f && ptr == NULL && size <= (MAX))                                         \
            return prefix##_scope_malloc(f->arena, size);                              \
        if ((CHARGE) && (tls_limit || objarena_charged_blocks))                        \
            return charged_realloc(ptr, size);                                         \
        PyMemAllocatorEx *fw = forward(DOMAIN);                                        \
        return fw->realloc(fw->ctx, ptr, size);                                        \
    }

/* The thin face's free and realloc (no scope active anywhere): no
 * thread-local test, and ctx is already the saved allocator's. */
#define DEFINE_THIN_HOOKS(prefix, DOMAIN)                                              \
    static __attribute__((noinline)) void prefix##_free_in_region(void *ctx, void *ptr) { \
        void *owner = arena_owner_of(ptr);                                             \
        if (owner) {                                                                   \
            arena_free_owned(owner, ptr);                                              \
            return;                                                                    \
        }                                                                              \
        atomic_load_explicit(&forward_free[DOMAIN], memory_order_relaxed)(ctx, ptr);   \
    }                                                                                  \
    static void prefix##_free(void *ctx, void *ptr) {                                  \
        if (__builtin_expect(arena_in_region(ptr), 0)) { /* rare without a scope */   \
            prefix##_free_in_region(ctx, ptr);                                         \
            return;                                                                    \
        }                                                                              \
        atomic_load_explicit(&forward_free[DOMAIN], memory_order_relaxed)(ctx, ptr);   \
    }                                                                                  \
    static void *prefix##_realloc(void *ctx, void *ptr, size_t size) {                 \
        if (arena_owns(ptr))                                                           \
            return move_out(forward(DOMAIN), ptr, size);                               \
        return forward(DOMAIN)->realloc(ctx, ptr, size);                               \
    }

DEFINE_HOOKS(hook_obj, tls_capture, HOOK_OBJ, SIZE_MAX, false)
DEFINE_HOOKS(hook_mem, tls_capture_mem, HOOK_MEM, OBJARENA_MEM_CAPTURE_MAX, true)
DEFINE_THIN_HOOKS(thin_obj, HOOK_OBJ)
DEFINE_THIN_HOOKS(thin_mem, HOOK_MEM)

/* The functions of the two faces (see hook.h); ctx is filled in from the
 * forward allocator when a face is installed. */
static const PyMemAllocatorEx full_face[HOOK_DOMAINS] = {
    {NULL, hook_obj_malloc, hook_obj_calloc, hook_obj_realloc, hook_obj_free},
    {NULL, hook_mem_malloc, hook_mem_calloc, hook_mem_realloc, hook_mem_free},
};
static const PyMemAllocatorEx thin_face[HOOK_DOMAINS] = {
    {NULL, NULL, NULL, thin_obj_realloc, thin_obj_free},
    {NULL, NULL, NULL, thin_mem_realloc, thin_mem_free},
};

/* ---- faces ---- */

/* Scope frames pushed and not yet unlinked, on all threads, per domain
 * (MEM: those that capture MEM too or have a limit). Changed with the GIL held. */
static unsigned long capturing_frames[HOOK_DOMAINS];
/* The face last installed per domain (what a hook stacked on ours wraps). */
static bool full_face_installed[HOOK_DOMAINS];
/* OBJARENA_PASSTHROUGH=full, or objarena_hook_set_thin_passthrough(false). */
static bool thin_passthrough_enabled = true;

static bool is_ours(int domain, const PyMemAllocatorEx *a) {
    return a->free == full_face[domain].free || a->free == thin_face[domain].free;
}

static bool hook_is_on_top(int domain) {
    PyMemAllocatorEx current;
    PyMem_GetAllocator(hook_domain_id[domain], &current);
    return is_ours(domain, &current);
}

/* ---- tracemalloc, recognised without its symbols ----
 *
 * tracemalloc.start() saves the RAW, MEM and OBJ allocators in one struct
 * {mem, raw, obj} and installs, per domain, its hook with ctx = &saved slot;
 * the hook forwards with slot->malloc(slot->ctx, ...), and stop() puts each
 * slot back with PyMem_SetAllocator, then drops its traces (freeing the
 * filename strings it cached). That shape is the same on 3.6-3.13 (with and
 * without the debug hooks): all three domains share tracemalloc's free, MEM
 * and OBJ share its malloc, RAW has its own, and the ctxs are three
 * consecutive PyMemAllocatorEx. 3.15 (gh-155725) installs one hook set for
 * all three domains, RAW's malloc included; the ctxs are unchanged. When
 * tracemalloc is on top of the chain,
 * objarena installs itself INTO the slot: tracemalloc forwards to objarena,
 * and stop() restores objarena rather than an allocator that does not know
 * arena blocks. A hook that does not fit the shape is never written to.
 *
 * Returns tracemalloc's saved slot for `domain` if tracemalloc's own hook is
 * on top of the chain, else NULL. GIL held. */
static bool tracemalloc_is_tracing(void);
#define TRACEMALLOC_ONE_HOOK_SET (PY_VERSION_HEX >= 0x030F0000)

static PyMemAllocatorEx *tracemalloc_slot_on_top(int domain) {
    PyMemAllocatorEx raw, mem, obj;
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    char *base = mem.ctx;
    bool shape = raw.free == mem.free && mem.free == obj.free && mem.malloc == obj.malloc &&
                 mem.realloc == obj.realloc && (TRACEMALLOC_ONE_HOOK_SET || raw.malloc != mem.malloc) &&
                 base != NULL &&
                 (char *)raw.ctx == base + sizeof(PyMemAllocatorEx) &&
                 (char *)obj.ctx == base + 2 * sizeof(PyMemAllocatorEx);
    if (!shape || !tracemalloc_is_tracing())
        return NULL;
    return domain == HOOK_OBJ ? (PyMemAllocatorEx *)obj.ctx : (PyMemAllocatorEx *)mem.ctx;
}

/* Where our face is. ON_TOP: PyMem_GetAllocator returns it. UNDER_TRACEMALLOC:
 * tracemalloc's hook is on top and its saved slot holds our face. ELSEWHERE:
 * another hook (a profiler, the debug hooks) sits above us, or we are out of
 * the chain (see verify_domain). */
enum face_place { FACE_ELSEWHERE = 0, FACE_ON_TOP, FACE_UNDER_TRACEMALLOC };

static enum face_place face_place(int domain) {
    if (hook_is_on_top(domain))
        return FACE_ON_TOP;
    PyMemAllocatorEx *slot = tracemalloc_slot_on_top(domain);
    if (slot && is_ours(domain, slot))
        return FACE_UNDER_TRACEMALLOC;
    return FACE_ELSEWHERE;
}

static bool wants_full_face(int domain) {
    return capturing_frames[domain] > 0 || !thin_passthrough_enabled;
}

/* Installs a face on top of the domain's chain. Both faces carry the forward
 * allocator's ctx (the full hooks ignore it and read forward_ctx), so a
 * reader that mixed the fields of the two faces would still call valid
 * pairs. Only called when ours is on top, or to put it on top: a hook
 * stacked on ours keeps the face it wraps. */
static PyMemAllocatorEx face_for(int domain, bool full) {
    PyMemAllocatorEx *fw = forward(domain);
    PyMemAllocatorEx face = full ? full_face[domain] : thin_face[domain];
    face.ctx = fw->ctx;
    if (!full) {
        face.malloc = fw->malloc;
        face.calloc = fw->calloc;
    }
    return face;
}

static void install_face(int domain, bool full) {
    PyMemAllocatorEx face = face_for(domain, full);
    PyMem_SetAllocator(hook_domain_id[domain], &face);
    full_face_installed[domain] = full;
}

/* Writes a face into tracemalloc's saved slot (tracemalloc_slot_on_top).
 * The OBJ and MEM domains are only called with the GIL held, as this is, so
 * no hook reads the slot while it is written. */
static void install_face_under_tracemalloc(int domain, PyMemAllocatorEx *slot, bool full) {
    *slot = face_for(domain, full);
    full_face_installed[domain] = full;
}

/* Puts `face` where ours is now: on top, or in tracemalloc's slot. Returns
 * false if ours is elsewhere (a foreign hook above it keeps what it wraps). */
static bool replace_face(int domain, bool full) {
    switch (face_place(domain)) {
    case FACE_ON_TOP:
        install_face(domain, full);
        return true;
    case FACE_UNDER_TRACEMALLOC:
        install_face_under_tracemalloc(domain, tracemalloc_slot_on_top(domain), full);
        return true;
    default:
        return false;
    }
}

/* The face the domain needs now, where ours can be reached. */
static void settle_face(int domain) {
    bool full = wants_full_face(domain);
    if (hook_installed[domain] && full != full_face_installed[domain])
        replace_face(domain, full);
}

/* A scope is about to capture `domain`: the full face must be in the chain. */
static int capture_begin(int domain) {
    capturing_frames[domain]++;
    if (!hook_installed[domain] || full_face_installed[domain])
        return 0;
    if (replace_face(domain, true))
        return 0;
    capturing_frames[domain]--;
    PyErr_SetString(PyExc_RuntimeError,
                    "objarena: another allocator hook was installed over objarena's pass-through "
                    "allocator while no scope was active, so scopes cannot capture under it (hooks "
                    "installed inside a scope, and tracemalloc.start(), are fine). Remove that hook, "
                    "or set OBJARENA_PASSTHROUGH=full before the first scope");
    return -1;
}

static void capture_end(int domain) {
    if (capturing_frames[domain] > 0)
        capturing_frames[domain]--;
    settle_face(domain);
}

void objarena_hook_set_thin_passthrough(bool enabled) {
    thin_passthrough_enabled = enabled;
    for (int d = 0; d < HOOK_DOMAINS; d++)
        settle_face(d);
}

void objarena_hook_prepare_for_wrapper(void) {
    for (int d = 0; d < HOOK_DOMAINS; d++)
        if (hook_installed[d] && !full_face_installed[d])
            replace_face(d, true);
}

/* ---- the per-thread stack ---- */

objarena_frame_t *objarena_thread_capture(void) { return tls_capture; }
objarena_frame_t *objarena_thread_top(void) { return tls_top; }

static void recompute_capture(void) {
    tls_capture = (tls_top && tls_top->arena) ? tls_top : NULL;
    tls_capture_mem = (tls_capture && tls_capture->capture_mem) ? tls_capture : NULL;
    tls_limit = (tls_capture && tls_capture->limit) ? tls_capture : NULL;
}

/* A scope frame needs the MEM hook's full face to capture MEM requests, or
 * to charge the big ones to its limit. */
static bool needs_mem_face(const objarena_frame_t *frame) { return frame->capture_mem || frame->limit; }

int objarena_thread_push(objarena_frame_t *frame) {
    if (frame->arena) {
        if (capture_begin(HOOK_OBJ) < 0)
            return -1;
        if (needs_mem_face(frame) && capture_begin(HOOK_MEM) < 0) {
            capture_end(HOOK_OBJ);
            return -1;
        }
    }
    frame->parent = tls_top;
    frame->thread_id = PyThread_get_thread_ident();
    frame->state = FRAME_ACTIVE;
    tls_top = frame;
    recompute_capture();
    return 0;
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
    if (frame->arena) {
        objarena_charge_drop_frame(frame);
        capture_end(HOOK_OBJ);
        if (needs_mem_face(frame))
            capture_end(HOOK_MEM);
    }
}

objarena_frame_t *objarena_thread_detach_above(objarena_frame_t *base, objarena_frame_t **bottom) {
    objarena_frame_t *top = tls_top;
    *bottom = NULL;
    if (top == base)
        return NULL;
    objarena_frame_t *f = top;
    while (f && f->parent != base)
        f = f->parent;
    if (!f)
        return top; /* base is gone: leave the stack alone */
    for (objarena_frame_t *g = top; g != base; g = g->parent)
        g->state = FRAME_PARKED;
    f->parent = NULL;
    *bottom = f;
    tls_top = base;
    recompute_capture();
    return top;
}

void objarena_thread_attach(objarena_frame_t *top, objarena_frame_t *bottom) {
    if (!top)
        return;
    for (objarena_frame_t *g = top; g; g = g->parent)
        g->state = FRAME_ACTIVE;
    bottom->parent = tls_top;
    tls_top = top;
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

static int publish_forward(int domain, const PyMemAllocatorEx *saved) {
    /* libc malloc, not a Python domain: the hook may read it at any time and
     * it is never freed (a racing reader may still hold the old one). */
    PyMemAllocatorEx *copy = malloc(sizeof *copy);
    if (!copy) {
        PyErr_NoMemory();
        return -1;
    }
    *copy = *saved;
    atomic_store_explicit(&forward_ctx[domain], saved->ctx, memory_order_release);
    atomic_store_explicit(&forward_malloc[domain], saved->malloc, memory_order_release);
    atomic_store_explicit(&forward_free[domain], saved->free, memory_order_release);
    atomic_store_explicit(&forward_allocator[domain], copy, memory_order_release);
    return 0;
}

static bool env_thin_passthrough(void) { return !objarena_env_passthrough_full(); } /* (validated at scope entry: env.h) */

static int install_domain(int domain) {
    if (hook_installed[domain])
        return 0;
    owner_interp = PyInterpreterState_Main(); /* before any face reads it */
    if (!hook_installed[HOOK_OBJ] && !hook_installed[HOOK_MEM])
        thin_passthrough_enabled = thin_passthrough_enabled && env_thin_passthrough();
    PyMemAllocatorEx *slot = tracemalloc_slot_on_top(domain);
    if (slot) {
        /* Under tracemalloc: forward to what it saved, and let its stop()
         * restore us. The full face, since tracemalloc wraps it (as when
         * tracemalloc.start() is guarded, objarena_hook_prepare_for_wrapper). */
        PyMemAllocatorEx saved_by_tracemalloc = *slot;
        if (publish_forward(domain, &saved_by_tracemalloc) < 0)
            return -1;
        install_face_under_tracemalloc(domain, slot, true);
        hook_under_tracemalloc_at_install[domain] = true;
        hook_installed[domain] = true;
        return 0;
    }
    PyMemAllocatorEx saved;
    PyMem_GetAllocator(hook_domain_id[domain], &saved);
    if (publish_forward(domain, &saved) < 0)
        return -1;
    hook_over_tracemalloc[domain] = tracemalloc_is_tracing();
    install_face(domain, wants_full_face(domain));
    hook_installed[domain] = true;
    return 0;
}

int objarena_hook_install(void) { return install_domain(HOOK_OBJ); }

int objarena_hook_install_mem(void) { return install_domain(HOOK_MEM); }

bool objarena_hook_installed(void) { return hook_installed[HOOK_OBJ]; }

static int verify_domain(int domain) {
    if (!hook_installed[domain])
        return 0;
    PyMemAllocatorEx current;
    PyMem_GetAllocator(hook_domain_id[domain], &current);
    if (is_ours(domain, &current) || face_place(domain) == FACE_UNDER_TRACEMALLOC) {
        settle_face(domain);
        return 0;
    }
    /* Something else is on top. If it is a hook stacked over ours (a
     * profiler, tracemalloc started later) it forwards to us: leave it. The
     * one case where we are out of the chain: tracemalloc was tracing when we
     * installed (we forward to it), is no longer tracing, and what is
     * installed now is not tracemalloc's hook -- tracemalloc.stop() restored
     * the allocator it had saved, over ours. */
    PyMemAllocatorEx *fw = forward(domain);
    if (!hook_over_tracemalloc[domain] || tracemalloc_is_tracing() || current.malloc == fw->malloc)
        return 0;
    if (publish_forward(domain, &current) < 0) {
        PyErr_Clear(); /* keep forwarding to the stale chain rather than fail */
        return 0;
    }
    install_face(domain, wants_full_face(domain));
    hook_over_tracemalloc[domain] = false;
    hook_chain_repairs++;
    return 1;
}

int objarena_hook_verify_chain(void) {
    int repaired = verify_domain(HOOK_OBJ);
    return verify_domain(HOOK_MEM) | repaired;
}

void objarena_hook_get_stats(objarena_hook_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->installed = hook_installed[HOOK_OBJ];
    out->mem_installed = hook_installed[HOOK_MEM];
    out->installed_over_tracemalloc = hook_over_tracemalloc[HOOK_OBJ] || hook_over_tracemalloc[HOOK_MEM];
    out->installed_under_tracemalloc =
        hook_under_tracemalloc_at_install[HOOK_OBJ] || hook_under_tracemalloc_at_install[HOOK_MEM];
    out->chain_repairs = hook_chain_repairs;
    out->moved_out = hook_moved_out;
    out->full_face = full_face_installed[HOOK_OBJ];
    if (hook_installed[HOOK_OBJ])
        out->hook_on_top = hook_is_on_top(HOOK_OBJ);
}
