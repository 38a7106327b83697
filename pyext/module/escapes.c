/* What escaped a scope: the search for its surviving objects, and strict
 * mode's EscapeError (escapes.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/escapes.h"

PyObject *objarena_EscapeError;

int objarena_escape_error_ready(void) {
    if (objarena_EscapeError)
        return 0;
    objarena_EscapeError = PyErr_NewExceptionWithDoc(
        "objarena.EscapeError",
        "Raised by a strict scope whose blocks outlived it. Attributes: blocks (live blocks\n"
        "at exit), bytes_retained (bytes of the chunks they pin), types ({type: count} of\n"
        "gc-tracked survivors). The memory is safe either way: survivors stay valid.",
        PyExc_RuntimeError, NULL);
    return objarena_EscapeError ? 0 : -1;
}

/* escaped_objects' search: adds obj to result[type(obj)] once. */
typedef struct escape_search {
    uint64_t id;
    PyObject *result; /* {type: [objects]} */
    PyObject *seen;   /* ids of the untracked objects already added */
    int failed;
} escape_search_t;

static int add_escaped(escape_search_t *es, PyObject *obj) {
    PyObject *type = (PyObject *)Py_TYPE(obj);
    PyObject *bucket = PyDict_GetItemWithError(es->result, type);
    if (!bucket) {
        if (PyErr_Occurred() || !(bucket = PyList_New(0)) || PyDict_SetItem(es->result, type, bucket) < 0) {
            Py_XDECREF(bucket);
            return -1;
        }
        Py_DECREF(bucket); /* the dict holds it */
    }
    return PyList_Append(bucket, obj);
}

/* A list or dict that is not itself in the arena but whose storage is: a
 * container CPython served from its freelist (or one made before the scope)
 * whose item array, keys table or values array the scope allocated. It pins
 * the arena's chunk as surely as an object inside it (issue 23: `totals =
 * {...}` from the dict freelist was missing from escaped()). O(1) per
 * object, in the loop that already visits every gc object. */
static int holds_arena_storage(PyObject *obj, uint64_t id) {
    if (PyList_Check(obj)) {
        PyObject **items = ((PyListObject *)obj)->ob_item;
        return items && arena_block_arena_id(items) == id;
    }
    if (PyDict_Check(obj)) {
        PyDictObject *d = (PyDictObject *)obj;
        return (d->ma_keys && arena_block_arena_id(d->ma_keys) == id) ||
               (d->ma_values && arena_block_arena_id(d->ma_values) == id);
    }
    return 0;
}

/* tp_traverse visitor: an arena object the gc does not track (str, int,
 * float, an untracked dict or tuple...), or an untracked dict outside the
 * arena whose table is inside, is found through a tracked object that
 * refers to it. */
static int visit_untracked(PyObject *obj, void *arg) {
    escape_search_t *es = arg;
    if (es->failed || !obj || (arena_block_arena_id(obj) != es->id && !holds_arena_storage(obj, es->id)))
        return 0;
    if (PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj))
        return 0; /* found as itself */
    PyObject *key = PyLong_FromVoidPtr(obj);
    int known = key ? PySet_Contains(es->seen, key) : -1;
    if (known == 0 && (PySet_Add(es->seen, key) < 0 || add_escaped(es, obj) < 0))
        known = -1;
    Py_XDECREF(key);
    if (known < 0)
        es->failed = 1;
    return 0;
}

/* {type: [objects]} of the objects that hold memory of this scope's arena
 * and can be found safely: gc-tracked objects inside its chunks, untracked
 * ones referred to by a tracked object (one level: what a tracked container
 * holds), and lists and dicts outside it whose item array or table is inside
 * (holds_arena_storage). Blocks held only by C code, or only by other
 * untracked objects, are not found. */
PyObject *objarena_escaped_objects(uint64_t id) {
    PyObject *gc = PyImport_ImportModule("gc");
    if (!gc)
        return NULL;
    PyObject *objects = PyObject_CallMethod(gc, "get_objects", NULL);
    Py_DECREF(gc);
    if (!objects)
        return NULL;
    escape_search_t es = {id, PyDict_New(), PySet_New(NULL), 0};
    for (Py_ssize_t i = 0; es.result && es.seen && !es.failed && i < PyList_GET_SIZE(objects); i++) {
        PyObject *obj = PyList_GET_ITEM(objects, i);
        if ((arena_block_arena_id(obj) == id || holds_arena_storage(obj, id)) && add_escaped(&es, obj) < 0)
            es.failed = 1;
        traverseproc traverse = Py_TYPE(obj)->tp_traverse;
        if (traverse && !es.failed)
            traverse(obj, visit_untracked, &es);
    }
    Py_DECREF(objects);
    Py_XDECREF(es.seen);
    if (es.failed || !es.seen)
        Py_CLEAR(es.result);
    return es.result;
}

PyObject *objarena_raise_escape_error(const objarena_scope_t *scope) {
    const arena_stats_t *st = &scope->exit_stats;
    PyObject *escaped = objarena_escaped_objects(scope->arena_id);
    if (!escaped)
        return NULL;
    PyObject *parts = PyList_New(0);
    PyObject *key, *value;
    Py_ssize_t pos = 0, found = 0;
    while (parts && PyDict_Next(escaped, &pos, &key, &value)) {
        found += PyList_GET_SIZE(value);
        PyObject *part = PyUnicode_FromFormat("%s: %zd", ((PyTypeObject *)key)->tp_name, PyList_GET_SIZE(value));
        if (!part || PyList_Append(parts, part) < 0)
            Py_CLEAR(parts);
        Py_XDECREF(part);
    }
    PyObject *sep = parts ? PyUnicode_FromString(", ") : NULL;
    PyObject *types = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    Py_XDECREF(parts);
    if (types) {
        PyObject *exc = PyObject_CallFunction(
            objarena_EscapeError, "N",
            PyUnicode_FromFormat("%llu block(s) escaped the scope, retaining %llu chunk(s) (%llu bytes); "
                                 "survivors found by type: {%U}%s",
                                 (unsigned long long)st->live_blocks_at_release,
                                 (unsigned long long)st->chunks_retained, (unsigned long long)st->bytes_retained,
                                 types,
                                 (uint64_t)found < st->live_blocks_at_release
                                     ? "; the other blocks are not reachable from the gc's objects (buffers, "
                                       "objects held by C code or by other untracked objects)"
                                     : ""));
        if (exc) {
            PyObject *counts = PyDict_New();
            pos = 0;
            while (counts && PyDict_Next(escaped, &pos, &key, &value)) {
                PyObject *n = PyLong_FromSsize_t(PyList_GET_SIZE(value));
                if (!n || PyDict_SetItem(counts, key, n) < 0)
                    Py_CLEAR(counts);
                Py_XDECREF(n);
            }
            PyObject *blocks = PyLong_FromUnsignedLongLong(st->live_blocks_at_release);
            PyObject *bytes = PyLong_FromUnsignedLongLong(st->bytes_retained);
            if (counts && blocks && bytes && PyObject_SetAttrString(exc, "blocks", blocks) == 0 &&
                PyObject_SetAttrString(exc, "bytes_retained", bytes) == 0 &&
                PyObject_SetAttrString(exc, "types", counts) == 0)
                PyErr_SetObject(objarena_EscapeError, exc);
            Py_XDECREF(counts);
            Py_XDECREF(blocks);
            Py_XDECREF(bytes);
            Py_DECREF(exc);
        }
        Py_DECREF(types);
    }
    Py_DECREF(escaped);
    return NULL;
}
