/* Collection counts from the interpreter's gc state (gc_counts.h). The same
 * field gc.get_stats() reads: interp->gc.generation_stats[g].collections,
 * present with this name and meaning in 3.10-3.13. A test compares the two
 * on every interpreter (objarena._objarena._gc_counts_check()). */
#define Py_BUILD_CORE 1
#include <Python.h>

#include "pyext/gc_counts.h"

#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#include "internal/pycore_interp.h"

bool objarena_gc_read_collections(long out[3]) {
    PyInterpreterState *interp = PyInterpreterState_Main();
    for (int g = 0; g < 3; g++)
        out[g] = (long)interp->gc.generation_stats[g].collections;
    return true;
}
#else
bool objarena_gc_read_collections(long out[3]) {
    (void)out;
    return false;
}
#endif
