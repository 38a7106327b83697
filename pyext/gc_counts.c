/* Collection counts from the interpreter's gc state (gc_counts.h). The same
 * field gc.get_stats() reads. A test compares the two on every interpreter
 * (objarena._objarena._gc_counts_check()).
 *   3.10-3.14  interp->gc.generation_stats[g].collections (an inline array)
 *   3.15       interp->gc.generation_stats points to a `struct gc_stats` of
 *              rings: young (gen 0) and old[0..1] (gens 1, 2); each ring's
 *              current entry, items[index], holds the cumulative counts.
 * On 3.14 the field exists in every release, but 3.14.0-3.14.4 (incremental
 * collector) lay the gc state out differently: layout_check.c decides at
 * import whether this build may read it (objarena_layout_gc_counts_ok). */
#define Py_BUILD_CORE 1
#include <Python.h>

#include "pyext/gc_counts.h"
#include "pyext/layout_check.h"

#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x03100000 && !defined(Py_GIL_DISABLED)
#include "internal/pycore_interp.h"

bool objarena_gc_read_collections(long out[3]) {
    if (!objarena_layout_gc_counts_ok())
        return false;
    PyInterpreterState *interp = PyInterpreterState_Main();
#if PY_VERSION_HEX >= 0x030F0000
    const struct gc_stats *s = interp->gc.generation_stats;
    if (!s || s->young.index < 0 || s->young.index >= GC_YOUNG_STATS_SIZE || s->old[0].index < 0 ||
        s->old[0].index >= GC_OLD_STATS_SIZE || s->old[1].index < 0 || s->old[1].index >= GC_OLD_STATS_SIZE)
        return false;
    out[0] = (long)s->young.items[s->young.index].collections;
    for (int g = 1; g < 3; g++)
        out[g] = (long)s->old[g - 1].items[s->old[g - 1].index].collections;
#else
    for (int g = 0; g < 3; g++)
        out[g] = (long)interp->gc.generation_stats[g].collections;
#endif
    return true;
}
#else
bool objarena_gc_read_collections(long out[3]) {
    (void)out;
    return false;
}
#endif
