/* Small setters for the statistics dicts the module returns. 0 or -1 with
 * an exception set. */
#ifndef OBJARENA_MODULE_DICT_SET_H
#define OBJARENA_MODULE_DICT_SET_H

#include <Python.h>
#include <stdint.h>

static inline int set_u64(PyObject *d, const char *key, uint64_t value) {
    PyObject *v = PyLong_FromUnsignedLongLong(value);
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

static inline int set_str(PyObject *d, const char *key, const char *value) {
    PyObject *v = PyUnicode_FromString(value);
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

#endif
