#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "tools/smoke/add.h"
#include "tools/smoke/embed_helper.h"

long smoke_embed_eval(void) {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name,
                                              OBJARENA_PYTHON_EXECUTABLE);
    if (PyStatus_Exception(status)) {
        PyConfig_Clear(&config);
        return -1;
    }
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        return -2;
    }
    long result = -3;
    PyObject *globals = PyDict_New();
    PyObject *v = globals ? PyRun_String("40 + 2", Py_eval_input, globals, globals) : NULL;
    if (v != NULL) {
        result = smoke_add(PyLong_AsLong(v), 0);
        Py_DECREF(v);
    }
    Py_XDECREF(globals);
    if (Py_FinalizeEx() < 0) {
        return -4;
    }
    return result;
}
