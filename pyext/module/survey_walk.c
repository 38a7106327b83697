/* The survey's heap walk (survey_walk.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/survey_walk.h"

#include <stdint.h>

#include "arena/arena.h"
#include "pyext/module/ptr_set.h"
#include "pyext/module/sorted_ids.h"

typedef struct edge {
    PyObject *obj; /* strong */
    uint64_t obj_arena;
    PyObject *holder; /* strong, or NULL */
    uint64_t holder_arena;
} edge_t;

typedef struct walk {
    const uint64_t *ids; /* sorted */
    Py_ssize_t n_ids;
    Py_ssize_t *found; /* per arena: distinct objects recorded */
    Py_ssize_t cap;    /* per arena: no edge into it once it has this many */
    ptr_set_t objects; /* the distinct objects recorded */
    edge_t *edges; /* PyMem_RawMalloc'd: the raw domain, never a gc object */
    Py_ssize_t n_edges, cap_edges;
    PyObject *holder; /* the gc object being traversed */
    uint64_t holder_arena;
    int depth; /* 1 inside an untracked referent's traverse */
    int failed;
} walk_t;

/* The index in ids of ptr's arena if it is one of the wanted ones, else -1. */
static Py_ssize_t wanted_arena(const walk_t *w, const void *ptr) {
    uint64_t id = arena_block_arena_id(ptr);
    return id == 0 ? -1 : sorted_ids_index(w->ids, w->n_ids, id);
}

/* An edge into arena ids[a], unless that arena has `cap` distinct objects
 * already (then nothing: its description is a sample, as the caller says). */
static void record(walk_t *w, PyObject *obj, Py_ssize_t a, PyObject *holder, uint64_t holder_arena) {
    if (w->found[a] >= w->cap)
        return;
    if (w->n_edges == w->cap_edges) {
        Py_ssize_t cap = w->cap_edges ? 2 * w->cap_edges : 256;
        edge_t *grown = PyMem_RawRealloc(w->edges, (size_t)cap * sizeof *grown);
        if (!grown) {
            w->failed = 1;
            return;
        }
        w->edges = grown;
        w->cap_edges = cap;
    }
    int fresh = ptr_set_add(&w->objects, obj);
    if (fresh < 0) {
        w->failed = 1;
        return;
    }
    w->found[a] += fresh;
    Py_INCREF(obj);
    Py_XINCREF(holder);
    w->edges[w->n_edges++] = (edge_t){obj, w->ids[a], holder, holder_arena};
}

static int visit(PyObject *ref, void *arg) {
    walk_t *w = arg;
    if (!ref || w->failed)
        return 0;
    Py_ssize_t a = wanted_arena(w, ref);
    if (a >= 0) {
        record(w, ref, a, w->holder, w->holder_arena);
    } else if (w->depth == 0 && !(PyObject_IS_GC(ref) && PyObject_GC_IsTracked(ref))) {
        traverseproc traverse = Py_TYPE(ref)->tp_traverse;
        if (traverse && PyObject_IS_GC(ref)) {
            w->depth = 1;
            traverse(ref, visit, w);
            w->depth = 0;
        }
    }
    return 0;
}

PyObject *objarena_survey_edges(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *objects, *ids_arg;
    Py_ssize_t cap;
    if (!PyArg_ParseTuple(args, "O!On:_survey_edges", &PyList_Type, &objects, &ids_arg, &cap))
        return NULL;
    if (cap < 0) {
        PyErr_SetString(PyExc_ValueError, "_survey_edges: cap must be >= 0");
        return NULL;
    }
    PyObject *ids_seq = PySequence_Fast(ids_arg, "_survey_edges: arena_ids must be iterable");
    if (!ids_seq)
        return NULL;
    Py_ssize_t n_ids = PySequence_Fast_GET_SIZE(ids_seq);
    uint64_t *ids = PyMem_RawMalloc((size_t)(n_ids ? n_ids : 1) * sizeof *ids);
    Py_ssize_t *found = PyMem_RawCalloc((size_t)(n_ids ? n_ids : 1), sizeof *found);
    if (!ids || !found) {
        PyMem_RawFree(ids);
        PyMem_RawFree(found);
        Py_DECREF(ids_seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n_ids; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(ids_seq, i);
        if (!PyLong_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "_survey_edges: arena ids must be ints");
            ids[i] = 0;
        } else {
            ids[i] = PyLong_AsUnsignedLongLong(item);
        }
        if (PyErr_Occurred()) {
            PyMem_RawFree(ids);
            PyMem_RawFree(found);
            Py_DECREF(ids_seq);
            return NULL;
        }
    }
    Py_DECREF(ids_seq);
    sorted_ids_sort(ids, n_ids);

    /* The list is held for the walk: its items stay alive, and nothing in
     * the walk runs code that could change it (no allocation but raw). */
    Py_INCREF(objects);
    walk_t w = {ids, n_ids, found, cap, {NULL, 0, 0}, NULL, 0, 0, NULL, 0, 0, 0};
    for (Py_ssize_t i = 0; !w.failed && i < PyList_GET_SIZE(objects); i++) {
        PyObject *obj = PyList_GET_ITEM(objects, i);
        Py_ssize_t a = wanted_arena(&w, obj);
        if (a >= 0)
            record(&w, obj, a, NULL, 0);
        traverseproc traverse = Py_TYPE(obj)->tp_traverse;
        if (traverse && PyObject_IS_GC(obj) && !w.failed) {
            w.holder = obj;
            w.holder_arena = arena_block_arena_id(obj);
            traverse(obj, visit, &w);
        }
    }
    Py_DECREF(objects);
    PyMem_RawFree(ids);
    PyMem_RawFree(found);
    ptr_set_free(&w.objects);

    PyObject *out = w.failed ? NULL : PyList_New(w.n_edges);
    for (Py_ssize_t i = 0; out && i < w.n_edges; i++) {
        edge_t *e = &w.edges[i];
        PyObject *t = Py_BuildValue("(OKOK)", e->obj, (unsigned long long)e->obj_arena,
                                    e->holder ? e->holder : Py_None, (unsigned long long)e->holder_arena);
        if (!t) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, t);
    }
    for (Py_ssize_t i = 0; i < w.n_edges; i++) {
        Py_DECREF(w.edges[i].obj);
        Py_XDECREF(w.edges[i].holder);
    }
    PyMem_RawFree(w.edges);
    if (w.failed && !PyErr_Occurred())
        PyErr_NoMemory();
    return out;
}
