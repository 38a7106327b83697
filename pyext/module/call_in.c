/* _objarena._call_in: a call inside a scope, with no frame of its own (call_in.h). */
#include "pyext/module/call_in.h"

#include "pyext/module/scope_type.h"

PyObject *objarena_call_in(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargsf,
                           PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "_call_in(scope, fn, /, *args, **kwargs) needs a scope and a callable");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &ScopeType)) {
        PyErr_Format(PyExc_TypeError, "_call_in: the first argument must be an objarena.scope, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    ScopeObject *scope = (ScopeObject *)args[0];
    PyObject *fn = args[1];
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "_call_in: %.100s object is not callable", Py_TYPE(fn)->tp_name);
        return NULL;
    }
    Py_INCREF(scope); /* the call may drop the caller's references */
    Py_INCREF(fn);
    PyObject *entered = Scope_enter(scope, NULL);
    if (!entered) {
        Py_DECREF(fn);
        Py_DECREF(scope);
        return NULL;
    }
    Py_DECREF(entered);
    /* args + 2 is the callee's argument array; kwnames' values follow the
     * positional ones in it, as vectorcall lays them out. */
    PyObject *result = PyObject_Vectorcall(fn, args + 2, (size_t)(nargs - 2), kwnames);
    PyObject *exit_result;
    if (result) {
        PyObject *none3[3] = {Py_None, Py_None, Py_None};
        exit_result = Scope_exit(scope, none3, 3);
        if (!exit_result)
            Py_CLEAR(result);
    } else {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value && tb)
            PyException_SetTraceback(value, tb);
        PyObject *exc[3] = {type ? type : Py_None, value ? value : Py_None, tb ? tb : Py_None};
        /* As under a with statement, fn's exception is the one being
         * handled while the exit runs: what sys.exc_info() says to a
         * finalizer that the exit's collection runs, and what CPython
         * chains an error the exit raises to (its __context__). */
        PyObject *handled_type, *handled_value, *handled_tb;
        PyErr_GetExcInfo(&handled_type, &handled_value, &handled_tb);
        Py_XINCREF(type);
        Py_XINCREF(value);
        Py_XINCREF(tb);
        PyErr_SetExcInfo(type, value, tb); /* steals the three new references */
        exit_result = Scope_exit(scope, exc, 3);
        PyErr_SetExcInfo(handled_type, handled_value, handled_tb); /* steals */
        if (exit_result) {
            PyErr_Restore(type, value, tb); /* the scope's exit never suppresses */
        } else { /* the exit's error, already chained to fn's, replaces it */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        }
    }
    Py_XDECREF(exit_result);
    Py_DECREF(fn);
    Py_DECREF(scope);
    return result;
}
