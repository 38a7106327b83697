/* The holder names' search (holder_names.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/holder_names.h"

#include <stdint.h>
#include <string.h>

#include "pyext/module/ptr_set.h"
#include "pyext/module/sorted_ids.h"

enum { HOW_ROOT, HOW_ATTR, HOW_ITEM, HOW_SAME, HOW_LRU };
static const char *const how_names[] = {"", ".", "[]", "=", "lru"};
#define SEQUENCE_ITEMS_MAX 1000 /* items of a list or tuple looked at */

/* A visited object and the step that reached it. Strong references. */
typedef struct node {
    PyObject *obj;
    PyObject *key; /* a dict's key, or NULL */
    Py_ssize_t index; /* a sequence's index */
    Py_ssize_t parent; /* -1 for a root */
    PyObject *module; /* the root's module name (borrowed from the passes) */
    int how;
} node_t;

typedef struct search {
    node_t *nodes; /* raw allocation: the walk makes no gc object */
    Py_ssize_t n_nodes, cap_nodes;
    ptr_set_t seen;
    uint64_t *wanted; /* addresses, sorted */
    Py_ssize_t n_wanted, n_found;
    Py_ssize_t *found_node; /* per wanted: its node, or -1 */
    Py_ssize_t budget;
    int failed;
} search_t;

static Py_ssize_t wanted_index(const search_t *s, const void *p) {
    return sorted_ids_index(s->wanted, s->n_wanted, (uint64_t)(uintptr_t)p);
}

static Py_ssize_t push(search_t *s, PyObject *obj, Py_ssize_t parent, int how, PyObject *key, Py_ssize_t index,
                       PyObject *module) {
    if (s->n_nodes == s->cap_nodes) {
        Py_ssize_t cap = s->cap_nodes ? 2 * s->cap_nodes : 1024;
        node_t *grown = PyMem_RawRealloc(s->nodes, (size_t)cap * sizeof *grown);
        if (!grown) {
            s->failed = 1;
            return -1;
        }
        s->nodes = grown;
        s->cap_nodes = cap;
    }
    Py_INCREF(obj);
    Py_XINCREF(key);
    s->nodes[s->n_nodes] = (node_t){obj, key, index, parent, module, how};
    return s->n_nodes++;
}

static int done(const search_t *s) {
    return s->failed || s->budget <= 0 || (s->n_wanted && s->n_found == s->n_wanted);
}

/* One step from nodes[parent] to child: tracked objects only, each once. */
static void step(search_t *s, Py_ssize_t parent, PyObject *child, int how, PyObject *key, Py_ssize_t index) {
    if (s->failed || !child || !PyObject_IS_GC(child) || !PyObject_GC_IsTracked(child))
        return;
    int fresh = ptr_set_add(&s->seen, child);
    if (fresh <= 0) {
        s->failed = fresh < 0;
        return;
    }
    s->budget--;
    Py_ssize_t n = push(s, child, parent, how, key, index, s->nodes[parent].module);
    Py_ssize_t w = n < 0 ? -1 : wanted_index(s, child);
    if (w >= 0 && s->found_node[w] < 0) {
        s->found_node[w] = n;
        s->n_found++;
    }
}

typedef struct dict_visit {
    search_t *s;
    Py_ssize_t parent;
    int how;
} dict_visit_t;

/* tp_traverse visitor of a class or an lru_cache wrapper: its dicts. */
static int visit_dicts(PyObject *obj, void *arg) {
    dict_visit_t *dv = arg;
    if (obj && PyDict_CheckExact(obj))
        step(dv->s, dv->parent, obj, dv->how, NULL, 0);
    return 0;
}

static int is_lru_wrapper(PyObject *obj) {
    const char *name = Py_TYPE(obj)->tp_name;
    const char *dot = strrchr(name, '.');
    return strcmp(dot ? dot + 1 : name, "_lru_cache_wrapper") == 0;
}

/* The steps out of nodes[i] (holder_names.h lists them). */
static void expand(search_t *s, Py_ssize_t i, int at_root) {
    PyObject *obj = s->nodes[i].obj;
    if (PyDict_Check(obj)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (!s->failed && PyDict_Next(obj, &pos, &key, &value)) {
            int attr = at_root || (PyUnicode_CheckExact(key) && PyUnicode_IsIdentifier(key) == 1);
            step(s, i, value, attr ? HOW_ATTR : HOW_ITEM, key, 0);
        }
    } else if (PyList_Check(obj) || PyTuple_Check(obj)) {
        int list = PyList_Check(obj);
        for (Py_ssize_t k = 0; !s->failed && k < SEQUENCE_ITEMS_MAX; k++) {
            if (k >= (list ? PyList_GET_SIZE(obj) : PyTuple_GET_SIZE(obj)))
                break;
            step(s, i, list ? PyList_GET_ITEM(obj, k) : PyTuple_GET_ITEM(obj, k), HOW_ITEM, NULL, k);
        }
    } else if (PyType_Check(obj) || is_lru_wrapper(obj)) {
        traverseproc traverse = Py_TYPE(obj)->tp_traverse;
        dict_visit_t dv = {s, i, PyType_Check(obj) ? HOW_SAME : HOW_LRU};
        if (traverse)
            traverse(obj, visit_dicts, &dv);
    } else if (!PyModule_Check(obj)) {
        PyTypeObject *type = Py_TYPE(obj);
        if (type->tp_dictoffset == 0)
            return;
        /* May allocate (and so collect): every node is held strongly. */
        PyObject *dict = PyObject_GenericGetDict(obj, NULL);
        if (!dict) {
            PyErr_Clear();
            return;
        }
        if (PyDict_Check(dict))
            step(s, i, dict, HOW_SAME, NULL, 0);
        Py_DECREF(dict);
    }
}

/* One pass: its roots, then `depth` levels. */
static int run_pass(search_t *s, PyObject *pass) {
    PyObject *roots;
    Py_ssize_t depth;
    if (!PyTuple_Check(pass)) {
        PyErr_SetString(PyExc_TypeError, "_holder_paths: a pass is a (roots, depth) tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(pass, "O!n:_holder_paths pass", &PyList_Type, &roots, &depth))
        return -1;
    Py_ssize_t lo = s->n_nodes;
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(roots); r++) {
        PyObject *root = PyList_GET_ITEM(roots, r), *dict, *module;
        if (!PyTuple_Check(root)) {
            PyErr_SetString(PyExc_TypeError, "_holder_paths: a root is a (dict, module name) tuple");
            return -1;
        }
        if (!PyArg_ParseTuple(root, "O!U:_holder_paths root", &PyDict_Type, &dict, &module))
            return -1;
        Py_ssize_t n = push(s, dict, -1, HOW_ROOT, NULL, 0, module);
        Py_ssize_t w = n < 0 ? -1 : wanted_index(s, dict);
        if (w >= 0 && s->found_node[w] < 0) {
            s->found_node[w] = n;
            s->n_found++;
        }
    }
    for (Py_ssize_t d = 0; d < depth && !done(s); d++) {
        Py_ssize_t hi = s->n_nodes;
        for (Py_ssize_t i = lo; i < hi && !done(s); i++)
            expand(s, i, d == 0);
        lo = hi;
    }
    return s->failed ? (PyErr_NoMemory(), -1) : 0;
}

/* (kind, module, [(how, key), ...]) for the node n. */
static PyObject *path_of(const search_t *s, Py_ssize_t n) {
    const node_t *node = &s->nodes[n];
    if (node->parent < 0)
        return Py_BuildValue("(sO[])", "module", node->module);
    PyObject *steps = PyList_New(0);
    const node_t *at = node;
    while (steps && at->parent >= 0) {
        PyObject *key = at->key ? (Py_INCREF(at->key), at->key)
                                : (at->how == HOW_ITEM ? PyLong_FromSsize_t(at->index) : (Py_INCREF(Py_None), Py_None));
        PyObject *item = key ? Py_BuildValue("(sN)", how_names[at->how], key) : NULL;
        if (!item || PyList_Insert(steps, 0, item) < 0)
            Py_CLEAR(steps);
        Py_XDECREF(item);
        at = &s->nodes[at->parent];
    }
    if (!steps)
        return NULL;
    const node_t *parent = &s->nodes[node->parent];
    const char *kind = PyType_Check(parent->obj) && PyDict_Check(node->obj) ? "attrs" : "value";
    return Py_BuildValue("(sON)", kind, at->module, steps);
}

PyObject *objarena_holder_paths(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *passes, *wanted_set;
    Py_ssize_t budget;
    if (!PyArg_ParseTuple(args, "O!On:_holder_paths", &PyList_Type, &passes, &wanted_set, &budget))
        return NULL;
    PyObject *wanted_seq = PySequence_List(wanted_set);
    if (!wanted_seq)
        return NULL;
    search_t s = {0};
    s.budget = budget;
    s.n_wanted = PyList_GET_SIZE(wanted_seq);
    s.wanted = PyMem_RawMalloc((size_t)(s.n_wanted + 1) * sizeof *s.wanted);
    s.found_node = PyMem_RawMalloc((size_t)(s.n_wanted + 1) * sizeof *s.found_node);
    PyObject *out = NULL;
    if (!s.wanted || !s.found_node) {
        PyErr_NoMemory();
        goto finally;
    }
    for (Py_ssize_t i = 0; i < s.n_wanted; i++) {
        s.wanted[i] = (uint64_t)(uintptr_t)PyLong_AsVoidPtr(PyList_GET_ITEM(wanted_seq, i));
        s.found_node[i] = -1;
        if (PyErr_Occurred())
            goto finally;
    }
    sorted_ids_sort(s.wanted, s.n_wanted);
    Py_INCREF(passes); /* holds the roots and module names the nodes borrow */
    for (Py_ssize_t p = 0; p < PyList_GET_SIZE(passes) && !done(&s); p++) {
        if (run_pass(&s, PyList_GET_ITEM(passes, p)) < 0) {
            Py_DECREF(passes);
            goto finally;
        }
    }
    out = PyDict_New();
    for (Py_ssize_t w = 0; out && w < s.n_wanted; w++) {
        if (s.found_node[w] < 0)
            continue;
        PyObject *key = PyLong_FromVoidPtr((void *)(uintptr_t)s.wanted[w]);
        PyObject *path = key ? path_of(&s, s.found_node[w]) : NULL;
        if (!path || PyDict_SetItem(out, key, path) < 0)
            Py_CLEAR(out);
        Py_XDECREF(key);
        Py_XDECREF(path);
    }
    Py_DECREF(passes);
finally:
    for (Py_ssize_t i = 0; i < s.n_nodes; i++) {
        Py_DECREF(s.nodes[i].obj);
        Py_XDECREF(s.nodes[i].key);
    }
    PyMem_RawFree(s.nodes);
    ptr_set_free(&s.seen);
    PyMem_RawFree(s.wanted);
    PyMem_RawFree(s.found_node);
    Py_DECREF(wanted_seq);
    return out;
}
