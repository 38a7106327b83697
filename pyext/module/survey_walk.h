/* The pytest plugin's end-of-session survey, its heap walk in C: which of
 * the gc's objects, and which objects they refer to, live in a given set of
 * arenas. The Python walk it replaces (a get_referents() call per object)
 * cost ~40 ms on a 37,000-object pytest process, most of a small suite's
 * survey (issue 25); this one is a tp_traverse per object. Needs the GIL;
 * run outside any scope's capture (it allocates). */
#ifndef OBJARENA_MODULE_SURVEY_WALK_H
#define OBJARENA_MODULE_SURVEY_WALK_H

#include <Python.h>

/* _survey_edges(objects, arena_ids, cap) -> [(obj, obj_arena, holder, holder_arena)]
 *
 * objects: a list (gc.get_objects()); arena_ids: an iterable of ints. For
 * each object, in order: (obj, its arena, None, 0) if it lives in one of
 * the arenas; then, for each object it refers to (tp_traverse) that lives
 * in one of them, (ref, ref's arena, obj, obj's arena); and for a referent
 * outside them that the gc does not track (a tuple of strings the gc
 * stopped tracking), the same for what that referent refers to, with obj
 * as holder. Every edge is listed (the caller counts holders), except that
 * once `cap` distinct objects of an arena are listed, no further edge into
 * that arena is (a sample describes a test that left more; the list stays
 * bounded by cap times the arenas, plus their holders' edges).
 * The walk runs no Python code and allocates no gc object: what it finds
 * is recorded with a strong reference in raw memory first, and the tuples
 * are made after. TypeError for a non-list or a non-int id, ValueError for
 * a negative cap; MemoryError. */
PyObject *objarena_survey_edges(PyObject *module, PyObject *args);

#endif
