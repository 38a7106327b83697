/* Side-by-side microbenchmark of the arena against glibc malloc/free.
 *
 * Workload: phases of N small blocks (16-512 bytes, a CPython-like size mix:
 * most objects 16-64 bytes), each block written once; every block is freed;
 * the phase ends (arena: release). Two patterns:
 *   batch:   allocate all N, then free all N (a phase building then dropping data)
 *   churn:   allocate and free in a sliding window of 64 (temporaries)
 * Every variant runs in its own forked process (allocators' heaps and the
 * kernel's page cache of one must not tilt another), one warm-up phase, then
 * the median of REPS phases: ns per block (alloc + write + free, plus the
 * arena's release). Variants: glibc; arena with fresh chunks (every phase
 * maps and faults in new memory); arena with a pool (chunks stay warm across
 * phases, as glibc's heap does); each in bump and reuse mode.
 * Not a test: numbers, printed. ./bazelw run -c opt //bench:arena_bench
 *
 * --big-exit (issue 21): the exit of a big phase that keeps a little. Each
 * phase allocates N blocks of the same mix, keeps every 500th in a cache
 * that lives on (as a worker's memo table does) and frees the rest; the
 * next phases adopt the retained chunks' free lines. Times arena_release
 * alone (median over phases 3..P) and prints it per 100k blocks, per
 * survivor and per page the phase held, for N = 100k and 400k, with the
 * default pool (a bare scope: retained chunks' free pages handed back) and
 * a pool (they stay resident: the release is the sieve alone). If the
 * release is in proportion to pages, ns/page stays flat as N grows. Built
 * against two trees and run alternately, it gives before/after ratios:
 *   ./bazelw run -c opt //bench:arena_bench -- --big-exit */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena/arena.h"

enum { BLOCKS = 1 << 20, REPS = 7, WINDOW = 64 };

static size_t sizes[BLOCKS];
static void *ptrs[BLOCKS];

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void make_sizes(void) {
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < BLOCKS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned r = x % 100;
        size_t lo = r < 60 ? 16 : r < 90 ? 64 : 256;
        size_t hi = r < 60 ? 64 : r < 90 ? 256 : 512;
        sizes[i] = lo + (x >> 32) % (hi - lo + 1);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct variant {
    const char *name;
    int allocator; /* 0: glibc, 1: arena */
    bool reuse;
    bool pooled;
} variant_t;

static arena_pool_t *pool;

static void *v_alloc(const variant_t *v, arena_t *a, size_t size) {
    return v->allocator ? arena_alloc(a, size) : malloc(size);
}

static void v_free(const variant_t *v, void *p) {
    if (v->allocator)
        arena_free(p);
    else
        free(p);
}

/* One phase; returns ns per block. */
static double phase(const variant_t *v, bool churn) {
    double t0 = now_ns();
    arena_t *a = NULL;
    if (v->allocator) {
        arena_config_t config;
        arena_config_init(&config);
        config.reuse = v->reuse;
        config.pool = v->pooled ? pool : NULL;
        if (arena_create(&config, &a) != ARENA_OK)
            abort();
    }
    for (int i = 0; i < BLOCKS; i++) {
        if (churn && i >= WINDOW)
            v_free(v, ptrs[i - WINDOW]);
        ptrs[i] = v_alloc(v, a, sizes[i]);
        *(volatile char *)ptrs[i] = 1;
    }
    for (int i = churn ? BLOCKS - WINDOW : 0; i < BLOCKS; i++)
        v_free(v, ptrs[i]);
    if (a)
        arena_destroy(a);
    return (now_ns() - t0) / BLOCKS;
}

/* Runs the variant in a child process; returns the median ns per block. */
static double measure(const variant_t *v, bool churn) {
    int fds[2];
    if (pipe(fds) != 0)
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        if (v->pooled) {
            arena_pool_config_t pc = {0, (size_t)1 << 30, false};
            if (arena_pool_create(&pc, &pool) != ARENA_OK)
                _exit(1);
        }
        phase(v, churn); /* warm-up */
        double t[REPS];
        for (int r = 0; r < REPS; r++)
            t[r] = phase(v, churn);
        qsort(t, REPS, sizeof t[0], cmp_double);
        if (write(fds[1], &t[REPS / 2], sizeof t[0]) != sizeof t[0])
            _exit(1);
        _exit(0);
    }
    double median = -1;
    if (read(fds[0], &median, sizeof median) != sizeof median)
        median = -1;
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    return median;
}

/* One big-exit run in a child: median release ns and the per-phase shape. */
typedef struct big_result {
    double release_ns;       /* median arena_release */
    double blocks, survivors, pages; /* per phase (the median phase's) */
} big_result_t;

enum { BIG_PHASES = 15, KEEP_EVERY = 500 };

static big_result_t big_exit(bool pooled, int blocks) {
    big_result_t res = {-1, 0, 0, 0};
    int fds[2];
    if (pipe(fds) != 0)
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        arena_pool_t *own_pool = NULL;
        if (pooled) {
            arena_pool_config_t pc = {0, (size_t)1 << 30, false};
            if (arena_pool_create(&pc, &own_pool) != ARENA_OK)
                _exit(1);
        }
        static void *cache[BIG_PHASES * (BLOCKS / KEEP_EVERY + 1)];
        size_t cached = 0;
        double t[BIG_PHASES];
        big_result_t shape[BIG_PHASES];
        for (int p = 0; p < BIG_PHASES; p++) {
            arena_config_t config;
            arena_config_init(&config);
            config.pool = own_pool;
            arena_t *a = NULL;
            if (arena_create(&config, &a) != ARENA_OK)
                _exit(1);
            size_t kept = 0;
            for (int i = 0; i < blocks; i++) {
                ptrs[i] = arena_alloc(a, sizes[i]);
                memset(ptrs[i], (int)i, sizes[i] < 32 ? sizes[i] : 32);
            }
            for (int i = 0; i < blocks; i++) {
                if (i % KEEP_EVERY == p % KEEP_EVERY)
                    cache[cached++] = ptrs[i], kept++;
                else
                    arena_free(ptrs[i]);
            }
            arena_stats_t st;
            arena_get_stats(a, &st);
            double t0 = now_ns();
            arena_release(a);
            t[p] = now_ns() - t0;
            shape[p] = (big_result_t){t[p], blocks, (double)kept, (double)(st.peak_mapped >> 12)};
            arena_destroy(a);
        }
        for (size_t i = 0; i < cached; i++)
            arena_free(cache[i]); /* (every survivor is still a live block) */
        /* The median of the phases after the first two (which map fresh). */
        double sorted[BIG_PHASES - 2];
        memcpy(sorted, t + 2, sizeof sorted);
        qsort(sorted, BIG_PHASES - 2, sizeof sorted[0], cmp_double);
        big_result_t out = shape[2];
        for (int p = 2; p < BIG_PHASES; p++)
            if (t[p] == sorted[(BIG_PHASES - 2) / 2])
                out = shape[p];
        if (write(fds[1], &out, sizeof out) != sizeof out)
            _exit(1);
        _exit(0);
    }
    if (read(fds[0], &res, sizeof res) != sizeof res)
        res.release_ns = -1;
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    return res;
}

static int big_exit_main(void) {
    printf("objarena arena_bench --big-exit: phases of N blocks of 16-512 B keeping every %dth in a cache\n"
           "that lives on; arena_release alone, median of phases 3-%d, each row in its own process\n\n",
           KEEP_EVERY, BIG_PHASES);
    printf("| variant | N blocks | survivors | pages held | release ms | ms per 100k blocks | us per survivor | ns per page |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (int pooled = 0; pooled < 2; pooled++) {
        for (int n = 100000; n <= 400000; n *= 4) {
            big_result_t r = big_exit(pooled, n);
            printf("| %s | %d | %.0f | %.0f | %.3f | %.3f | %.2f | %.1f |\n",
                   pooled ? "pool (pages stay resident)" : "default pool (pages handed back)", n, r.survivors,
                   r.pages, r.release_ns / 1e6, r.release_ns / 1e6 / (n / 1e5), r.release_ns / 1e3 / r.survivors,
                   r.release_ns / r.pages);
            fflush(stdout);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    make_sizes();
    if (argc > 1 && strcmp(argv[1], "--big-exit") == 0)
        return big_exit_main();
    static const variant_t variants[] = {
        {"glibc malloc+free", 0, false, false},
        {"arena, bump, fresh chunks", 1, false, false},
        {"arena, reuse, fresh chunks", 1, true, false},
        {"arena, bump, pool (warm chunks)", 1, false, true},
        {"arena, reuse, pool (warm chunks)", 1, true, true},
    };
    printf("objarena arena_bench: %d blocks of 16-512 B per phase; median of %d phases after a warm-up,\n"
           "each variant in its own process; ns per block (alloc + write + free, + release for the arena)\n\n",
           BLOCKS, REPS);
    printf("| variant | batch ns/block | glibc/variant | churn ns/block | glibc/variant |\n|---|---|---|---|---|\n");
    double glibc_batch = 0, glibc_churn = 0;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        double b = measure(&variants[i], false), c = measure(&variants[i], true);
        if (i == 0)
            glibc_batch = b, glibc_churn = c;
        printf("| %s | %.1f | %.2fx | %.1f | %.2fx |\n", variants[i].name, b, glibc_batch / b, c, glibc_churn / c);
        fflush(stdout);
    }
    return 0;
}
