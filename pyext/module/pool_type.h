/* objarena.Pool: the Python type over an arena pool (arena.h). */
#ifndef OBJARENA_MODULE_POOL_TYPE_H
#define OBJARENA_MODULE_POOL_TYPE_H

#include <Python.h>
#include <stdbool.h>

#include "arena/arena.h"

typedef struct {
    PyObject_HEAD
    arena_pool_t *pool; /* NULL once closed */
    /* The pool's statistics as close() left them (after its last trim: no
     * warm chunk, trimmed_bytes counting them): Pool.stats reads these once
     * the pool is gone, so a job can report them after `with Pool() as p:`. */
    arena_pool_stats_t closed_stats;
    size_t chunk_size;
    bool huge_pages;
} PoolObject;

extern PyTypeObject PoolType;

#endif
