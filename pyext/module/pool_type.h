/* objarena.Pool: the Python type over an arena pool (arena.h). */
#ifndef OBJARENA_MODULE_POOL_TYPE_H
#define OBJARENA_MODULE_POOL_TYPE_H

#include <Python.h>
#include <stdbool.h>

#include "arena/arena.h"

typedef struct {
    PyObject_HEAD
    arena_pool_t *pool; /* NULL once closed */
    size_t chunk_size;
    bool huge_pages;
} PoolObject;

extern PyTypeObject PoolType;

#endif
