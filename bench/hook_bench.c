/* The hook's hot path, side by side in one run: ns per PyObject_Malloc +
 * PyObject_Free pair (and per allocation alone) of small sizes, through
 *   pymalloc        before objarena's hook is installed
 *   pass-through    hook installed, no scope: the thin face (pymalloc's own
 *                   malloc, our free with its ownership test), and the
 *                   full face (OBJARENA_PASSTHROUGH=full)
 *   scope (bump)    inside a scope, reuse=False (fresh pages: faults)
 *   scope (reuse)   inside a scope, reuse=True
 *   pool (warm)     inside a scope of a pool whose chunks are warm
 * and the two halves of a scope's cost, to show what the hook API itself
 * costs:
 *   floor           a hook that does no work (malloc hands out one of 64
 *                   static slots, free does nothing): the price of reaching
 *                   any PyMem_SetAllocator hook, which no hook can go under
 *   arena alone     arena_alloc/arena_free called directly (reuse, warm)
 * Not a test: numbers, printed. ./bazelw run -c opt //bench:hook_bench */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pyext/scope.h"

enum { BATCH = 64 };
/* 2M pairs a pass; OBJARENA_HOOK_BENCH_PAIRS=N for a shorter run. */
static long PAIRS = 2000000;
static void *ptrs[BATCH];

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The clock's own cost per reading, subtracted from the split timings. */
static double clock_cost_ns;

static void measure_clock_cost(void) {
    double t0 = now_ns();
    for (int i = 0; i < 100000; i++)
        now_ns();
    clock_cost_ns = (now_ns() - t0) / 100001;
}

/* ns per malloc+free pair, and (split) per malloc and per free. */
typedef struct {
    double pair, malloc, free;
} timing_t;

typedef void *(*alloc_fn)(size_t);
typedef void (*free_fn)(void *);

/* Allocation-heavy pattern: a batch of 64 small blocks (16-128 B), then
 * freed. Pairs are timed over whole passes (best of 5); the split times
 * each half-batch (best of 5 passes, less the clock's cost per reading). */
static inline timing_t run_pattern(alloc_fn alloc, free_fn release) {
    timing_t best = {1e18, 1e18, 1e18};
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns();
        for (int i = 0; i < PAIRS / BATCH; i++) {
            for (int j = 0; j < BATCH; j++) {
                ptrs[j] = alloc(16 + (size_t)(j & 7) * 16);
                *(volatile char *)ptrs[j] = 1;
            }
            for (int j = 0; j < BATCH; j++)
                release(ptrs[j]);
        }
        double t = (now_ns() - t0) / PAIRS;
        if (t < best.pair)
            best.pair = t;
    }
    for (int rep = 0; rep < 5; rep++) {
        double in_malloc = 0, in_free = 0;
        for (int i = 0; i < PAIRS / BATCH; i++) {
            double t0 = now_ns();
            for (int j = 0; j < BATCH; j++) {
                ptrs[j] = alloc(16 + (size_t)(j & 7) * 16);
                *(volatile char *)ptrs[j] = 1;
            }
            double t1 = now_ns();
            for (int j = 0; j < BATCH; j++)
                release(ptrs[j]);
            double t2 = now_ns();
            in_malloc += t1 - t0 - clock_cost_ns;
            in_free += t2 - t1 - clock_cost_ns;
        }
        if (in_malloc / PAIRS < best.malloc)
            best.malloc = in_malloc / PAIRS;
        if (in_free / PAIRS < best.free)
            best.free = in_free / PAIRS;
    }
    return best;
}

static timing_t pairs(void) { return run_pattern(PyObject_Malloc, PyObject_Free); }

/* The do-nothing hook of the floor row. */
static char floor_slots[BATCH][128];
static unsigned floor_next;
static void *floor_malloc(void *ctx, size_t size) {
    (void)ctx, (void)size;
    return floor_slots[floor_next++ & (BATCH - 1)];
}
static void *floor_calloc(void *ctx, size_t n, size_t size) { return floor_malloc(ctx, n * size); }
static void *floor_realloc(void *ctx, void *p, size_t size) { return p ? p : floor_malloc(ctx, size); }
static void floor_free(void *ctx, void *p) { (void)ctx, (void)p; }

/* pairs() through the do-nothing hook; the saved allocator is back after
 * (nothing else allocates from the OBJ domain meanwhile: no Python runs). */
static timing_t floor_pairs(void) {
    PyMemAllocatorEx saved, nothing = {NULL, floor_malloc, floor_calloc, floor_realloc, floor_free};
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &saved);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &nothing);
    timing_t t = pairs();
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &saved);
    return t;
}

/* pairs()'s pattern on the arena directly, no hook: reuse mode, warm. */
static arena_t *direct_arena;
static void *direct_alloc(size_t size) { return arena_alloc(direct_arena, size); }

static timing_t arena_pairs(void) {
    arena_config_t config;
    arena_config_init(&config);
    config.reuse = true;
    timing_t t = {-1, -1, -1};
    if (arena_create(&config, &direct_arena) != ARENA_OK)
        return t;
    t = run_pattern(direct_alloc, arena_free);
    arena_destroy(direct_arena);
    return t;
}

static timing_t in_scope(objarena_scope_options_t *o) {
    timing_t t = {-1, -1, -1};
    objarena_scope_t *s = objarena_scope_new(o);
    if (!s || objarena_scope_enter(s) < 0)
        return t;
    t = pairs();
    objarena_scope_exit(s);
    objarena_scope_free(s);
    return t;
}

/* Instruction counts (OBJARENA_HOOK_BENCH_COUNT=1 under callgrind): each
 * count_* function runs the pattern once, untimed, through one path, so
 * its inclusive cost / pairs is the path's instructions per malloc+free
 * pair, which load does not move (docs/benchmarks.md, "The allocation
 * path"):
 *   OBJARENA_HOOK_BENCH_COUNT=1 OBJARENA_HOOK_BENCH_PAIRS=640000 \
 *     valgrind --tool=callgrind --callgrind-out-file=cg bazel-bin/bench/hook_bench
 *   callgrind_annotate --inclusive=yes cg | grep count_ */
static __attribute__((noinline)) void count_loop(alloc_fn alloc, free_fn release) {
    for (long i = 0; i < PAIRS / BATCH; i++) {
        for (int j = 0; j < BATCH; j++)
            ptrs[j] = alloc(16 + (size_t)(j & 7) * 16);
        for (int j = 0; j < BATCH; j++)
            release(ptrs[j]);
    }
}
/* (Each stores its own tag, so the compiler cannot fold them into one.) */
static volatile int count_tag;
static __attribute__((noinline)) void count_pymalloc(void) { count_tag = 1; count_loop(PyObject_Malloc, PyObject_Free); }
static __attribute__((noinline)) void count_scope_reuse(void) { count_tag = 2; count_loop(PyObject_Malloc, PyObject_Free); }
static __attribute__((noinline)) void count_pool_scope_reuse(void) { count_tag = 3; count_loop(PyObject_Malloc, PyObject_Free); }
static __attribute__((noinline)) void count_arena_alone(void) { count_tag = 4; count_loop(direct_alloc, arena_free); }

static void in_scope_count(objarena_scope_options_t *o, void (*count)(void)) {
    objarena_scope_t *s = objarena_scope_new(o);
    if (!s || objarena_scope_enter(s) < 0)
        return;
    count_loop(PyObject_Malloc, PyObject_Free); /* (the first pass maps and bump-allocates) */
    count();
    objarena_scope_exit(s);
    objarena_scope_free(s);
}

static int count_paths(void) {
    count_pymalloc();
    arena_config_t config;
    arena_config_init(&config);
    config.reuse = true;
    if (arena_create(&config, &direct_arena) != ARENA_OK)
        return 1;
    count_loop(direct_alloc, arena_free);
    count_arena_alone();
    arena_destroy(direct_arena);
    objarena_scope_options_t o;
    objarena_scope_options_init(&o);
    o.collect = false;
    o.reuse = true;
    in_scope_count(&o, count_scope_reuse);
    arena_pool_t *pool;
    if (arena_pool_create(NULL, &pool) != ARENA_OK)
        return 1;
    o.pool = pool;
    in_scope_count(&o, count_pool_scope_reuse); /* (warms the pool) */
    in_scope_count(&o, count_pool_scope_reuse);
    printf("counted %ld pairs a path (the pool's twice): read count_* in callgrind's inclusive costs\n", PAIRS);
    return 0;
}

static void row(const char *path, timing_t t, timing_t base) {
    printf("| %s | %.2f | %.2fx | %.2f | %.2f |\n", path, t.pair, t.pair / base.pair, t.malloc, t.free);
}

/* A pure-bump pool scope's split passes run past the pool's warm chunks into
 * fresh pages (bump mode never reuses), so only its pair figure is warm. */
static void row_pair_only(const char *path, timing_t t, timing_t base) {
    printf("| %s | %.2f | %.2fx | (fresh pages) | |\n", path, t.pair, t.pair / base.pair);
}

int main(void) {
    const char *pairs_env = getenv("OBJARENA_HOOK_BENCH_PAIRS");
    if (pairs_env && atol(pairs_env) >= BATCH)
        PAIRS = atol(pairs_env) / BATCH * BATCH;
    Py_Initialize();
    if (getenv("OBJARENA_HOOK_BENCH_COUNT"))
        return count_paths();
    measure_clock_cost();
    timing_t base = pairs();
    timing_t no_work = floor_pairs();
    timing_t arena_only = arena_pairs();
    objarena_scope_options_t o;
    objarena_scope_options_init(&o);
    o.collect = false;
    objarena_scope_t *s = objarena_scope_new(&o); /* installs the hook */
    objarena_scope_enter(s);
    objarena_scope_exit(s);
    objarena_scope_free(s);
    timing_t pass = pairs();
    objarena_hook_set_thin_passthrough(false);
    timing_t pass_full = pairs();
    objarena_hook_set_thin_passthrough(true);
    o.reuse = false;
    timing_t bump = in_scope(&o);
    o.reuse = true;
    timing_t reuse = in_scope(&o);
    arena_pool_t *pool;
    arena_pool_create(NULL, &pool);
    o.pool = pool;
    o.reuse = false;
    in_scope(&o); /* warm the pool */
    timing_t warm_bump = in_scope(&o);
    o.reuse = true;
    timing_t warm_reuse = in_scope(&o);
    printf("objarena hook_bench (Python %s): ns per PyObject_Malloc+PyObject_Free pair, 16-128 B, batches of %d;\n"
           "malloc and free timed apart per half-batch (clock reading: %.1f ns, subtracted)\n\n",
           PY_VERSION, BATCH, clock_cost_ns);
    printf("| path | ns/pair | vs pymalloc | ns/malloc | ns/free |\n|---|---|---|---|---|\n");
    row("pymalloc (no hook)", base, base);
    row("hook installed, outside scopes (thin face)", pass, base);
    row("hook installed, outside scopes (full face)", pass_full, base);
    row("scope, bump (fresh pages)", bump, base);
    row("scope, reuse", reuse, base);
    row_pair_only("pool scope, bump, warm chunks", warm_bump, base);
    row("pool scope, reuse, warm chunks", warm_reuse, base);
    row("floor: a hook doing no work", no_work, base);
    row("arena alone (arena_alloc/free, reuse, warm; no hook)", arena_only, base);
    return 0;
}
