/* The pytest plugin's holder names, its search in C: the shortest path
 * from a module's globals to each wanted object, through the containers a
 * reader can name (issue 25: the same search in Python cost ~30 ms on a
 * 37,000-object pytest process, run once per session; this one is a few
 * ms). Needs the GIL; run outside any scope's capture (it allocates). */
#ifndef OBJARENA_MODULE_HOLDER_NAMES_H
#define OBJARENA_MODULE_HOLDER_NAMES_H

#include <Python.h>

/* _holder_paths(passes, wanted, budget) -> {id: (kind, module, steps)}
 *
 * passes: a list of (roots, depth), roots a list of (module dict, module
 * name); wanted: a set of ids (ints) of gc-tracked objects; budget: the
 * number of objects visited at most, over all passes.
 *
 * Each pass is a breadth-first search from its roots, `depth` steps deep,
 * sharing what earlier passes saw (so a name found from the first pass's
 * roots, given deeper, wins). A step goes from an object to:
 *   a dict (any dict subclass): each value;      how "." (key a str that is an
 *                                               identifier, or any key of a
 *                                               root) or "[]" (other keys)
 *   a list or tuple: its first 1,000 items;      how "[]", key the index
 *   a class: its dict (tp_traverse's dicts);     how "="
 *   a functools.lru_cache wrapper: its cache;    how "lru"
 *   a module object: nowhere;
 *   any other object: its __dict__, if its type has one (taken with
 *     PyObject_GenericGetDict: no __getattr__ or descriptor runs; on
 *     3.11+ this makes the dict of an instance that had inline values, as
 *     object.__getattribute__ would); how "=".
 * Only gc-tracked objects are visited (holders are tracked; untracked
 * objects lead nowhere). A wanted root dict is found as kind "module" with
 * no steps; others as kind "attrs" (a class's dict) or "value", with steps
 * [(how, key), ...] from the module's dict. The search stops when every
 * wanted object is found or the budget is spent.
 *
 * While a level is walked no Python code runs (raw allocation only);
 * what the walk keeps (visited objects, keys) it holds strong references
 * to, so a collection that runs while a __dict__ is made cannot free them.
 * TypeError on malformed arguments; MemoryError. */
PyObject *objarena_holder_paths(PyObject *module, PyObject *args);

#endif
