/* What allocating in gapped runs costs a later walk (adoption, arena/retained.c,
 * fills the holes around earlier phases' survivors): walks a
 * linked list of 600k 64-byte nodes in allocation order (a write pass and a
 * read-modify-write pass, like the GC's passes over a generation) when the
 * nodes were bump-allocated contiguously, and when one page in every `gap`
 * was skipped (a survivor's page between two spans). Prints the best of 5
 * walks for each gap and the ratio to the contiguous layout.
 *   ./bazelw run -c opt //bench:span_layout_bench */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

typedef struct node {
    struct node *next;
    long refs, value;
    char payload[40];
} node_t;

enum { NODES = 600000, PAGE = 4096, WALKS = 5 };

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Builds the list in `memory`, skipping one page after every `gap` pages
 * (gap 0: contiguous); returns the best walk in ms. */
static double walk(char *memory, size_t gap) {
    node_t *first = NULL, *last = NULL;
    char *p = memory;
    size_t pages = 0;
    for (size_t i = 0; i < NODES; i++) {
        if ((uintptr_t)p % PAGE == 0 && gap && ++pages % gap == 0)
            p += PAGE;
        node_t *n = (node_t *)p;
        p += sizeof *n;
        n->value = (long)i;
        n->next = NULL;
        if (last)
            last->next = n;
        else
            first = n;
        last = n;
    }
    double best = 1e30;
    volatile long sink = 0;
    for (int w = 0; w < WALKS; w++) {
        double t = now_ms();
        long sum = 0;
        for (node_t *n = first; n; n = n->next)
            n->refs = n->value;
        for (node_t *n = first; n; n = n->next)
            sum += --n->refs;
        double d = now_ms() - t;
        sink += sum;
        if (d < best)
            best = d;
    }
    (void)sink;
    return best;
}

int main(void) {
    const size_t gaps[] = {0, 4, 10, 32, 64, 128, 256};
    size_t bytes = (size_t)NODES * sizeof(node_t) * 2 + ((size_t)8 << 20);
    double base = 0;
    printf("%-28s %10s %8s\n", "layout", "walk ms", "ratio");
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        char *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        double ms = walk(memory, gaps[g]);
        munmap(memory, bytes);
        if (g == 0)
            base = ms;
        char label[64];
        if (gaps[g])
            snprintf(label, sizeof label, "a page skipped every %zu", gaps[g]);
        else
            snprintf(label, sizeof label, "contiguous");
        printf("%-28s %10.2f %7.2fx\n", label, ms, ms / base);
    }
    return 0;
}
