/* Argument parsing shared by the module's types (args.h). */
#include "pyext/module/args.h"

#include "pyext/collect.h"

int parse_size(PyObject *value, const char *name, size_t *out) {
    if (value == NULL || value == Py_None) {
        *out = 0;
        return 0;
    }
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int (bytes) or None, not %.100s", name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow > 0 || (overflow == 0 && (unsigned long long)v > SIZE_MAX)) {
        PyErr_Format(PyExc_ValueError, "%s is too large: %R", name, value);
        return -1;
    }
    if (overflow < 0 || v <= 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a positive number of bytes, got %R", name, value);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* domains: an iterable of "obj" / "mem"; "obj" is required. */
int parse_domains(PyObject *value, bool *capture_mem) {
    if (value == NULL || value == Py_None)
        return 0;
    /* A plain string names one domain: domains="obj" means ("obj",). */
    PyObject *seq = PyUnicode_Check(value) ? PyTuple_Pack(1, value)
                                           : PySequence_Fast(value, "domains must be a tuple of names, e.g. (\"obj\", \"mem\")");
    if (!seq)
        return -1;
    bool obj = false, mem = false;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "domain names are str, not %.100s", Py_TYPE(item)->tp_name);
            Py_DECREF(seq);
            return -1;
        }
        bool is_obj = PyUnicode_CompareWithASCIIString(item, "obj") == 0;
        bool is_mem = !is_obj && PyUnicode_CompareWithASCIIString(item, "mem") == 0;
        if ((is_obj && obj) || (is_mem && mem)) {
            PyErr_Format(PyExc_ValueError, "domain %R is named twice", item);
            Py_DECREF(seq);
            return -1;
        }
        if (is_obj)
            obj = true;
        else if (is_mem)
            mem = true;
        else {
            PyErr_Format(PyExc_ValueError, "unknown domain %R: use \"obj\" and optionally \"mem\"", item);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    if (!obj) {
        PyErr_SetString(PyExc_ValueError, "domains must include \"obj\"");
        return -1;
    }
    *capture_mem = mem;
    return 0;
}

int parse_flag(PyObject *value, const char *name, bool *out) {
    if (value == NULL)
        return 0; /* keep default */
    if (!PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be True or False, not %.100s", name, Py_TYPE(value)->tp_name);
        return -1;
    }
    *out = value == Py_True;
    return 0;
}

/* collect=: True ("auto", the default), False (none), "auto", "young", "full". */
const char *const collect_mode_names[] = {"none", "auto", "young", "full"};

int parse_collect(PyObject *value, int *out) {
    if (value == NULL)
        return 0; /* keep default */
    if (PyBool_Check(value)) {
        *out = value == Py_True ? OBJARENA_COLLECT_AUTO : OBJARENA_COLLECT_NONE;
        return 0;
    }
    if (PyUnicode_Check(value)) {
        for (int m = OBJARENA_COLLECT_AUTO; m <= OBJARENA_COLLECT_FULL; m++) {
            if (PyUnicode_CompareWithASCIIString(value, collect_mode_names[m]) == 0) {
                *out = m;
                return 0;
            }
        }
        PyErr_Format(PyExc_ValueError, "collect must be True, False, 'auto', 'young' or 'full', not %R", value);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "collect must be True, False, 'auto', 'young' or 'full', not %.100s",
                 Py_TYPE(value)->tp_name);
    return -1;
}
