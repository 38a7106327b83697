/* A sorted array of 64-bit ids (arena ids, object addresses) for the heap
 * searches (survey_walk.c, holder_names.c): sorted once, then looked up by
 * binary search in the walk's inner loop, with no allocation. */
#ifndef OBJARENA_MODULE_SORTED_IDS_H
#define OBJARENA_MODULE_SORTED_IDS_H

#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

static int sorted_ids_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static inline void sorted_ids_sort(uint64_t *ids, Py_ssize_t n) { qsort(ids, (size_t)n, sizeof *ids, sorted_ids_cmp); }

/* The index of key in ids[0..n) (sorted; the first if repeated), or -1. */
static inline Py_ssize_t sorted_ids_index(const uint64_t *ids, Py_ssize_t n, uint64_t key) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == key ? lo : -1;
}

#endif
