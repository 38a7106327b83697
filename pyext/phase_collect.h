/* Phase collection: at scope exit, collect the objects the phase made that
 * a collection during the phase promoted to the oldest generation, without
 * walking the rest of that generation.
 *
 * At entry a marker (a tracked empty list held by the scope, the
 * "sentinel") is moved to the tail of generation 2. CPython only appends to
 * generation 2 (a generation-1 collection merges its survivors at the tail)
 * until a full collection reorders it, so the objects after the sentinel at
 * exit are exactly those promoted during the phase. The exit moves them into
 * generation 1 and runs gc.collect(1) (callbacks, gc.garbage, finalizers as
 * in any collection): cost in proportion to the phase's promoted objects,
 * not to the heap.
 *
 * Why it is exact: a collection of any subset of the tracked objects frees
 * only objects unreachable from outside the subset (references from outside
 * keep gc_refs above zero), so it never frees what the rest of the heap
 * references; what it cannot prove dead (a cycle through an older object)
 * stays for the paced full collection (collect.c), as before.
 *
 * Not applicable (the caller falls back to the young/full path of
 * collect.c): a full collection ran during the phase, gc.freeze() moved the
 * sentinel into the permanent generation, a collection is running, or this
 * CPython's gc layout is not one verified here (3.10-3.13 default builds).
 * All functions need the GIL.
 */
#ifndef OBJARENA_PHASE_COLLECT_H
#define OBJARENA_PHASE_COLLECT_H

#include <Python.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Does this build know the gc layout (false: phase collection never runs)? */
bool objarena_phase_collect_supported(void);

/* The marker at scope entry: a new tracked object moved to the tail of
 * generation 2, or NULL (unsupported, collecting, out of memory: no
 * exception is left set). Owned by the caller: objarena_phase_unmark. */
PyObject *objarena_phase_mark(void);

/* Drops the marker (NULL: nothing). */
void objarena_phase_unmark(PyObject *sentinel);

/* The phase collection: moves the objects after `sentinel` in generation 2
 * into generation 1 and runs gc.collect(1) through `gc_collect` (Python's
 * gc.collect). Returns the number of objects moved (0: none were promoted,
 * nothing collected), or -1 when not applicable (see above; nothing moved,
 * nothing collected, no exception set). Errors of the collection itself are
 * reported as unraisable. The long-lived counter that paces CPython's own
 * full collections counts the moved survivors once, not twice. */
Py_ssize_t objarena_phase_collect(PyObject *sentinel, PyObject *gc_collect);

#ifdef __cplusplus
}
#endif
#endif
