/* Side-by-side microbenchmark of the arena against glibc malloc/free.
 *
 * Workload: phases of N small blocks (16-512 bytes, a CPython-like size mix:
 * most objects 16-64 bytes), each block written once; every block is freed;
 * the phase ends (arena: release). Two patterns:
 *   batch:   allocate all N, then free all N (a phase building then dropping data)
 *   churn:   allocate and free in a sliding window of 64 (temporaries)
 * Reported: ns per block (alloc + write + free, plus release for the arena),
 * median of the repetitions, and the ratio glibc/arena; bytes mapped per byte
 * requested. Not a test: numbers, printed. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

static double glibc_batch(void) {
    double t0 = now_ns();
    for (int i = 0; i < BLOCKS; i++) {
        ptrs[i] = malloc(sizes[i]);
        *(volatile char *)ptrs[i] = 1;
    }
    for (int i = 0; i < BLOCKS; i++)
        free(ptrs[i]);
    return (now_ns() - t0) / BLOCKS;
}

static double arena_batch(uint64_t *mapped_peak, uint64_t *requested) {
    double t0 = now_ns();
    arena_t *a;
    if (arena_create(NULL, &a) != ARENA_OK)
        abort();
    for (int i = 0; i < BLOCKS; i++) {
        ptrs[i] = arena_alloc(a, sizes[i]);
        *(volatile char *)ptrs[i] = 1;
    }
    for (int i = 0; i < BLOCKS; i++)
        arena_free(ptrs[i]);
    arena_stats_t st;
    arena_get_stats(a, &st);
    arena_destroy(a);
    double t = (now_ns() - t0) / BLOCKS;
    *mapped_peak = st.peak_mapped;
    *requested = st.bytes_requested;
    return t;
}

static double glibc_churn(void) {
    double t0 = now_ns();
    for (int i = 0; i < BLOCKS; i++) {
        if (i >= WINDOW)
            free(ptrs[i - WINDOW]);
        ptrs[i] = malloc(sizes[i]);
        *(volatile char *)ptrs[i] = 1;
    }
    for (int i = BLOCKS - WINDOW; i < BLOCKS; i++)
        free(ptrs[i]);
    return (now_ns() - t0) / BLOCKS;
}

static double arena_churn(void) {
    double t0 = now_ns();
    arena_t *a;
    if (arena_create(NULL, &a) != ARENA_OK)
        abort();
    for (int i = 0; i < BLOCKS; i++) {
        if (i >= WINDOW)
            arena_free(ptrs[i - WINDOW]);
        ptrs[i] = arena_alloc(a, sizes[i]);
        *(volatile char *)ptrs[i] = 1;
    }
    for (int i = BLOCKS - WINDOW; i < BLOCKS; i++)
        arena_free(ptrs[i]);
    arena_destroy(a);
    return (now_ns() - t0) / BLOCKS;
}

int main(void) {
    make_sizes();
    double gb[REPS], ab[REPS], gc[REPS], ac[REPS];
    uint64_t peak = 0, requested = 0;
    glibc_batch(); /* first touch of glibc's heap: do not count it */
    for (int r = 0; r < REPS; r++) {
        gb[r] = glibc_batch();
        ab[r] = arena_batch(&peak, &requested);
        gc[r] = glibc_churn();
        ac[r] = arena_churn();
    }
    double g1 = median(gb, REPS), a1 = median(ab, REPS), g2 = median(gc, REPS), a2 = median(ac, REPS);
    printf("objarena arena_bench: %d blocks of 16-512 B per phase, median of %d phases\n\n", BLOCKS, REPS);
    printf("| pattern | glibc malloc+free ns/block | arena alloc+free(+release) ns/block | glibc/arena |\n");
    printf("|---|---|---|---|\n");
    printf("| batch (alloc all, free all) | %.1f | %.1f | %.2fx |\n", g1, a1, g1 / a1);
    printf("| churn (window of %d) | %.1f | %.1f | %.2fx |\n", WINDOW, g2, a2, g2 / a2);
    printf("\nbytes mapped per byte requested (batch, peak): %.3f\n", (double)peak / (double)requested);
    return 0;
}
