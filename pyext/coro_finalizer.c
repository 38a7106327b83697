/* A wrapped coroutine's own finalizer, held back while its wrapper lives
 * (coro_finalizer.h). The finalized bit is the collector's: the low bit of
 * PyGC_Head._gc_prev on GIL builds of 3.10-3.15 (free-threaded builds are
 * refused at import). */
#define Py_BUILD_CORE 1
#include <Python.h>

#include "pyext/coro_finalizer.h"

#include "internal/pycore_gc.h"

bool objarena_coro_hold_finalizer(PyObject *coro) {
    if (!(PyCoro_CheckExact(coro) || PyGen_CheckExact(coro)) || !PyObject_IS_GC(coro) ||
        PyObject_GC_IsFinalized(coro))
        return false;
    _PyGC_SET_FINALIZED(coro);
    return true;
}

void objarena_coro_give_back_finalizer(PyObject *coro) {
#if PY_VERSION_HEX >= 0x030D0000
    _PyGC_CLEAR_FINALIZED(coro);
#else
    _Py_AS_GC(coro)->_gc_prev &= ~(uintptr_t)_PyGC_PREV_MASK_FINALIZED;
#endif
}
