/* Phase collection (phase_collect.h). Reads and relinks CPython's gc
 * generation lists directly: the layout (struct _gc_runtime_state in
 * interp->gc: generations[3].head, permanent_generation, collecting,
 * long_lived_pending; PyGC_Head with flag bits in the low two bits of
 * _gc_prev) is the same in 3.10-3.15 default builds: 3.14.5 reverted the
 * incremental collector of 3.14.0-3.14.4 (young/old spaces), and 3.14.10's
 * and 3.15.2's headers have generations[3] again. On 3.14+ the import-time
 * layout check (layout_check.h) must have found the gc state where this
 * build reads it, else the exit takes the paced path instead (counted with
 * the layout's mismatches, reported by version_support()). */
#define Py_BUILD_CORE 1
#include <Python.h>

#include "pyext/phase_collect.h"

#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x03100000 && !defined(Py_GIL_DISABLED)
#include "internal/pycore_gc.h"
#include "internal/pycore_interp.h"

#include "pyext/layout_check.h"

#define NEXT(g) ((PyGC_Head *)(g)->_gc_next)
#define PREV(g) ((PyGC_Head *)((g)->_gc_prev & _PyGC_PREV_MASK))

static struct _gc_runtime_state *gc_state(void) { return &PyInterpreterState_Main()->gc; }

bool objarena_phase_collect_supported(void) {
#if PY_VERSION_HEX >= 0x030E0000
    return objarena_layout_young_collections_ok();
#else
    return true;
#endif
}

/* A list head, not an object: one of the generations or the permanent one. */
static bool is_head(struct _gc_runtime_state *gc, PyGC_Head *g) {
    for (int i = 0; i < NUM_GENERATIONS; i++)
        if (g == &gc->generations[i].head)
            return true;
    return g == &gc->permanent_generation.head;
}

/* gcmodule.c's gc_list_remove / gc_list_append: the node's own flag bits
 * in _gc_prev are kept (_PyGCHead_SET_PREV); heads carry none. */
static void unlink_node(PyGC_Head *node) {
    PyGC_Head *prev = PREV(node), *next = NEXT(node);
    _PyGCHead_SET_NEXT(prev, next);
    _PyGCHead_SET_PREV(next, prev);
}

static void append_node(PyGC_Head *node, PyGC_Head *list) {
    PyGC_Head *last = (PyGC_Head *)list->_gc_prev;
    _PyGCHead_SET_PREV(node, last);
    _PyGCHead_SET_NEXT(last, node);
    _PyGCHead_SET_NEXT(node, list);
    list->_gc_prev = (uintptr_t)node;
}

PyObject *objarena_phase_mark(void) {
    if (!objarena_phase_collect_supported())
        return NULL;
    struct _gc_runtime_state *gc = gc_state();
    if (gc->collecting)
        return NULL; /* a finalizer's scope: the collector owns the lists now */
    /* An empty set: always tracked (in generation 0 now), and sets have no
     * freelist, so it is never a dead arena block reused (a list could be
     * one from an earlier scope's retained chunk). */
    PyObject *sentinel = PySet_New(NULL);
    if (!sentinel) {
        PyErr_Clear();
        return NULL;
    }
    PyGC_Head *g = _Py_AS_GC(sentinel);
    unlink_node(g);
    append_node(g, &gc->generations[NUM_GENERATIONS - 1].head);
    return sentinel;
}

void objarena_phase_unmark(PyObject *sentinel) {
    Py_XDECREF(sentinel); /* its dealloc untracks it from wherever it is */
}

Py_ssize_t objarena_phase_collect(PyObject *sentinel, PyObject *gc_collect) {
    if (!sentinel || !gc_collect)
        return -1;
    struct _gc_runtime_state *gc = gc_state();
    if (gc->collecting || !_PyObject_GC_IS_TRACKED(sentinel))
        return -1;
    PyGC_Head *s = _Py_AS_GC(sentinel);
    PyGC_Head *old = &gc->generations[NUM_GENERATIONS - 1].head;
    /* Walk to the end of the sentinel's list: the objects the phase got
     * promoted (and must be in generation 2, not frozen meanwhile). */
    Py_ssize_t n = 0;
    PyGC_Head *p = NEXT(s);
    while (!is_head(gc, p)) {
        n++;
        p = NEXT(p);
    }
    if (p != old)
        return -1; /* gc.freeze() moved it to the permanent generation */
    if (n == 0)
        return 0;
    /* Cut [first, last] off generation 2 and append it to generation 1. */
    PyGC_Head *first = NEXT(s), *last = PREV(old);
    _PyGCHead_SET_NEXT(s, old);
    old->_gc_prev = (uintptr_t)s;
    PyGC_Head *young = &gc->generations[1].head;
    PyGC_Head *young_last = (PyGC_Head *)young->_gc_prev;
    _PyGCHead_SET_NEXT(young_last, first);
    _PyGCHead_SET_PREV(first, young_last);
    _PyGCHead_SET_NEXT(last, young);
    young->_gc_prev = (uintptr_t)last;
    /* A generation-1 collection adds its survivors to long_lived_pending
     * (which paces CPython's full collections); the moved ones were counted
     * when first promoted: count them once. */
    Py_ssize_t pending = gc->long_lived_pending;
    PyObject *r = PyObject_CallFunction(gc_collect, "i", 1);
    if (r)
        Py_DECREF(r);
    else
        PyErr_WriteUnraisable(gc_collect);
    Py_ssize_t after = gc->long_lived_pending - n;
    gc->long_lived_pending = after > pending ? after : pending;
    return n;
}

#else

bool objarena_phase_collect_supported(void) { return false; }
PyObject *objarena_phase_mark(void) { return NULL; }
void objarena_phase_unmark(PyObject *sentinel) { Py_XDECREF(sentinel); }
Py_ssize_t objarena_phase_collect(PyObject *sentinel, PyObject *gc_collect) {
    (void)sentinel;
    (void)gc_collect;
    return -1;
}

#endif
