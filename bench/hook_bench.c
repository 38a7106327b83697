/* The hook's hot path, side by side in one run: ns per PyObject_Malloc +
 * PyObject_Free pair (and per allocation alone) of small sizes, through
 *   pymalloc        before objarena's hook is installed
 *   pass-through    hook installed, no scope: the thin face (pymalloc's own
 *                   malloc, our free with its ownership test), and the
 *                   full face (OBJARENA_PASSTHROUGH=full)
 *   scope (bump)    inside a scope, reuse=False (fresh pages: faults)
 *   scope (reuse)   inside a scope, reuse=True
 *   pool (warm)     inside a scope of a pool whose chunks are warm
 * Not a test: numbers, printed. ./bazelw run -c opt //bench:hook_bench */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <time.h>

#include "pyext/scope.h"

enum { PAIRS = 2000000, BATCH = 64 };
static void *ptrs[BATCH];

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Allocation-heavy pattern: a batch of 64 small blocks (16-128 B), then
 * freed: ns per malloc+free pair. */
static double pairs(void) {
    double best = 1e18;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns();
        for (int i = 0; i < PAIRS / BATCH; i++) {
            for (int j = 0; j < BATCH; j++) {
                ptrs[j] = PyObject_Malloc(16 + (size_t)(j & 7) * 16);
                *(volatile char *)ptrs[j] = 1;
            }
            for (int j = 0; j < BATCH; j++)
                PyObject_Free(ptrs[j]);
        }
        double t = (now_ns() - t0) / PAIRS;
        if (t < best)
            best = t;
    }
    return best;
}

static double in_scope(objarena_scope_options_t *o) {
    objarena_scope_t *s = objarena_scope_new(o);
    if (!s || objarena_scope_enter(s) < 0)
        return -1;
    double t = pairs();
    objarena_scope_exit(s);
    objarena_scope_free(s);
    return t;
}

int main(void) {
    Py_Initialize();
    double base = pairs();
    objarena_scope_options_t o;
    objarena_scope_options_init(&o);
    o.collect = false;
    objarena_scope_t *s = objarena_scope_new(&o); /* installs the hook */
    objarena_scope_enter(s);
    objarena_scope_exit(s);
    objarena_scope_free(s);
    double pass = pairs();
    objarena_hook_set_thin_passthrough(false);
    double pass_full = pairs();
    objarena_hook_set_thin_passthrough(true);
    o.reuse = false;
    double bump = in_scope(&o);
    o.reuse = true;
    double reuse = in_scope(&o);
    arena_pool_t *pool;
    arena_pool_create(NULL, &pool);
    o.pool = pool;
    o.reuse = false;
    in_scope(&o); /* warm the pool */
    double warm_bump = in_scope(&o);
    o.reuse = true;
    double warm_reuse = in_scope(&o);
    printf("objarena hook_bench (Python %s): ns per PyObject_Malloc+PyObject_Free pair, 16-128 B, batches of %d\n\n",
           PY_VERSION, BATCH);
    printf("| path | ns/pair | vs pymalloc |\n|---|---|---|\n");
    printf("| pymalloc (no hook) | %.2f | 1.00x |\n", base);
    printf("| hook installed, outside scopes (thin face) | %.2f | %.2fx |\n", pass, pass / base);
    printf("| hook installed, outside scopes (full face) | %.2f | %.2fx |\n", pass_full, pass_full / base);
    printf("| scope, bump (fresh pages) | %.2f | %.2fx |\n", bump, bump / base);
    printf("| scope, reuse | %.2f | %.2fx |\n", reuse, reuse / base);
    printf("| pool scope, bump, warm chunks | %.2f | %.2fx |\n", warm_bump, warm_bump / base);
    printf("| pool scope, reuse, warm chunks | %.2f | %.2fx |\n", warm_reuse, warm_reuse / base);
    return 0;
}
