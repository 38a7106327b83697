/* A wrapped coroutine's own finalizer, held back while its wrapper lives.
 *
 * A task scope's wrapper (ScopedCoroutine) closes a task that never finished
 * inside the task's scopes when it is dropped, so the coroutine's finally
 * blocks run there (docs/reference.md, task scopes). When the wrapper, its
 * coroutine and the task die together in a cycle, the collector calls their
 * finalizers in the order it found them, and the coroutine's own finalizer
 * (which closes it, outside any scope) often came first: in a loop closed
 * with 20 suspended tasks, 0-4 of them ran their finally blocks inside their
 * scopes (3.10-3.14, fa6a533). So the wrapper marks the coroutine as
 * finalized while it holds it, as CPython marks an object whose finalizer
 * ran; the wrapper's finalizer then closes it inside its scopes, or gives
 * the finalizer back (a coroutine never started, or one it could not close)
 * so the coroutine finalizes itself as before ("never awaited" warning and
 * all).
 *
 * Only CPython's own coroutines and generators (exact types) are held: their
 * finalizer is the one that closes them. Reads and writes the collector's
 * per-object finalized bit (internal/pycore_gc.h): set outside any
 * collection, cleared from the wrapper's finalizer (possibly inside one,
 * where CPython itself reads and sets the bit). Meanwhile gc.is_finalized()
 * reads True for the held coroutine. GIL held. */
#ifndef OBJARENA_CORO_FINALIZER_H
#define OBJARENA_CORO_FINALIZER_H

#include <Python.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks coro finalized if it is a coroutine or generator whose finalizer
 * has not run. Returns whether it did (the caller must give it back). */
bool objarena_coro_hold_finalizer(PyObject *coro);

/* Undoes objarena_coro_hold_finalizer: the coroutine's finalizer runs again
 * when it dies (or in the collection under way, if it comes later). */
void objarena_coro_give_back_finalizer(PyObject *coro);

#ifdef __cplusplus
}
#endif

#endif
