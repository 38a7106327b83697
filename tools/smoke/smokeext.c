#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "tools/smoke/add.h"

static PyObject *smokeext_add(PyObject *self, PyObject *args) {
    (void)self;
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) {
        return NULL;
    }
    return PyLong_FromLong(smoke_add(a, b));
}

static PyMethodDef smokeext_methods[] = {
    {"add", smokeext_add, METH_VARARGS, "Add two integers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef smokeext_module = {
    PyModuleDef_HEAD_INIT, "smokeext", NULL, -1, smokeext_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_smokeext(void) { return PyModule_Create(&smokeext_module); }
