/* A set of pointers for the heap searches (survey_walk.c, holder_names.c):
 * open addressing in raw memory (PyMem_RawCalloc), so adding to it never
 * makes a Python object, never runs a collection and never runs Python
 * code while a container is being walked. Not thread-safe (the searches
 * hold the GIL). */
#ifndef OBJARENA_MODULE_PTR_SET_H
#define OBJARENA_MODULE_PTR_SET_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ptr_set {
    uintptr_t *slots; /* 0 = empty; capacity a power of 2, at most half full */
    size_t used, cap;
} ptr_set_t;

static inline size_t ptr_set_slot(uintptr_t p, size_t cap) {
    return (size_t)(((uint64_t)(p >> 4) * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

/* 1 if p was not in the set (it is now), 0 if it was, -1 out of memory
 * (the set is unchanged). p must not be NULL. */
static inline int ptr_set_add(ptr_set_t *s, const void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    if (2 * (s->used + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        uintptr_t *grown = PyMem_RawCalloc(cap, sizeof *grown);
        if (!grown)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slots[i]) {
                size_t j = ptr_set_slot(s->slots[i], cap);
                while (grown[j])
                    j = (j + 1) & (cap - 1);
                grown[j] = s->slots[i];
            }
        }
        PyMem_RawFree(s->slots);
        s->slots = grown;
        s->cap = cap;
    }
    size_t j = ptr_set_slot(p, s->cap);
    while (s->slots[j]) {
        if (s->slots[j] == p)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = p;
    s->used++;
    return 1;
}

static inline void ptr_set_free(ptr_set_t *s) {
    PyMem_RawFree(s->slots);
    s->slots = NULL;
    s->used = s->cap = 0;
}

#endif
