"""Process pools whose every task runs in its own scope.

    from objarena.futures import ProcessPoolExecutor, ProcessPool

    with ProcessPoolExecutor(4, scope_options={"limit": 2**30}) as ex:   # drop-in for
        totals = list(ex.map(job, batches))                               # concurrent.futures'
    with ProcessPool(4, warm_pool=True) as pool:                          # drop-in for
        totals = pool.map(job, batches)                                   # multiprocessing.Pool

This is the alternative to recycling workers (`maxtasksperchild=`,
`max_tasks_per_child=`): a worker process keeps its imports, caches and
connections, and what a task allocated goes back to the OS when the task
ends, as with `objarena.run`: the result is copied out with pickle inside the
worker (it is pickled to go back to the parent anyway), so it pins nothing.

Every call a pool makes is wrapped: `submit`/`map` (per item, whatever the
chunksize) for the executor; `apply`, `map`, `starmap`, `imap`,
`imap_unordered` and their `_async` forms for the pool. Functions are pickled
as for the plain pools (by reference), wrapped in a `ScopedTask`.

`scope_options` are `objarena.scope()`'s keyword options (checked in the
parent, at construction). `warm_pool=True` (or a dict of `objarena.Pool()`
options) gives each worker process one `objarena.Pool`, and every task of
that process runs in a scope of it: chunks stay mapped and warm between tasks
(up to the pool's `max_warm_bytes`, 256 MiB by default) instead of being
unmapped and faulted in again. `worker_stats()`, called in a worker (for
example as a task: `ex.submit(objarena.futures.worker_stats)`), returns that
process's counters.
"""
import concurrent.futures
import concurrent.futures.process
import multiprocessing.pool
import threading

from objarena import _objarena

from ._wrap import Scoped

__all__ = ["ProcessPool", "ProcessPoolExecutor", "ScopedTask", "worker_stats"]


class ScopeTally:
    """Counters of the scopes one process ran (thread-safe)."""

    FIELDS = (
        "tasks",
        "tasks_failed",
        "bytes_released",
        "bytes_pages_released",
        "chunks_released",
        "chunks_retained",
        "bytes_retained",
        "blocks_escaped",
        "tasks_with_escapes",
        "results_kept",
    )

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, stats, failed=False):
        with self._lock:
            c = self._counts
            c["tasks"] += 1
            c["tasks_failed"] += bool(failed)
            for key in ("bytes_released", "bytes_pages_released", "chunks_released",
                        "chunks_retained", "bytes_retained"):
                c[key] += stats.get(key, 0)
            escaped = stats.get("live_blocks_at_exit", 0)
            c["blocks_escaped"] += escaped
            c["tasks_with_escapes"] += escaped > 0

    def count(self, key, n=1):
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def snapshot(self):
        with self._lock:
            return dict(self._counts)


_TALLY = ScopeTally()
_WARM = {}  # this process's objarena.Pool, made by the first warm task


def worker_stats():
    """This process's scoped-task counters, plus ``objarena.info()``'s retained figures."""
    out = _TALLY.snapshot()
    info = _objarena.info()
    for key in ("retained_chunks", "retained_bytes", "warm_bytes", "warm_retained_bytes", "arenas_live"):
        out[key] = info[key]
    pool = _WARM.get("pool")
    out["warm_pool"] = dict(pool.stats) if pool is not None else None
    return out


def _process_pool(pool_options):
    pool = _WARM.get("pool")
    if pool is None:
        pool = _WARM["pool"] = _objarena.Pool(**pool_options)
    return pool


class ScopedTask(Scoped):
    """A task function run like ``objarena.run`` in a scope of ``scope_options``,
    drawn from this process's warm pool when ``pool_options`` is not None;
    counted in ``worker_stats()``."""

    def __init__(self, fn, scope_options=None, pool_options=None):
        super().__init__(fn, scope_options or {})
        if pool_options is not None:
            _objarena.Pool(**pool_options).close()  # checked here, in the parent
        self._pool_options = pool_options

    def make_scope(self, options=None):
        opts = self._options if options is None else options
        if self._pool_options is None:
            return _objarena.scope(**opts)
        return _process_pool(self._pool_options).scope(**opts)

    def __call__(self, *args, **kwargs):
        phase = self.make_scope()
        failed = True
        try:
            result = super().run_in_scope(phase, args, kwargs)
            failed = False
            return result
        finally:
            if phase.state == "exited":
                _TALLY.add(phase.stats, failed)

    def __reduce__(self):
        return (type(self), (self.__wrapped__, self._options, self._pool_options))


def _task_options(scope_options, warm_pool):
    scope_options = dict(scope_options or {})
    if "pool" in scope_options:
        raise TypeError("scope_options cannot hold pool= (a Pool belongs to one process); use warm_pool=True")
    _objarena.scope(**scope_options)  # checked here, not in the first worker
    if warm_pool is True:
        pool_options = {}
    elif not warm_pool:
        pool_options = None
    elif isinstance(warm_pool, dict):
        pool_options = dict(warm_pool)
    else:
        raise TypeError(f"warm_pool must be True, False or a dict of objarena.Pool options, not {warm_pool!r}")
    return scope_options, pool_options


def _wrap(fn, scope_options, pool_options):
    if isinstance(fn, ScopedTask):
        return fn
    return ScopedTask(fn, scope_options, pool_options)


class ProcessPoolExecutor(concurrent.futures.ProcessPoolExecutor):
    """``concurrent.futures.ProcessPoolExecutor`` whose every task runs in its own scope.

    Takes the base class's arguments, plus ``scope_options`` (a dict of
    ``objarena.scope()`` options) and ``warm_pool`` (True or a dict of
    ``objarena.Pool()`` options: tasks take scopes of one pool per worker).
    """

    def __init__(self, *args, scope_options=None, warm_pool=False, **kwargs):
        self._scope_options, self._pool_options = _task_options(scope_options, warm_pool)
        super().__init__(*args, **kwargs)

    def submit(self, fn, /, *args, **kwargs):
        # map() submits partial(_process_chunk, fn) with fn already wrapped:
        # wrapping the chunk again would put the whole chunk in one scope.
        chunk = getattr(fn, "func", None) is concurrent.futures.process._process_chunk
        if not chunk:
            fn = _wrap(fn, self._scope_options, self._pool_options)
        return super().submit(fn, *args, **kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        fn = _wrap(fn, self._scope_options, self._pool_options)
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)


class ProcessPool(multiprocessing.pool.Pool):
    """``multiprocessing.Pool`` whose every task (every item of a map) runs in its own scope.

    ``ProcessPool(processes, initializer, initargs, maxtasksperchild, context,
    scope_options=None, warm_pool=False)``; ``context`` is a multiprocessing
    context (``multiprocessing.get_context("spawn")``) or None for the default.
    """

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, scope_options=None, warm_pool=False):
        self._state = multiprocessing.pool.INIT  # what Pool.__del__ reads if the check below raises
        self._scope_options, self._pool_options = _task_options(scope_options, warm_pool)
        super().__init__(processes, initializer, initargs, maxtasksperchild, context)

    def _scoped(self, func):
        return _wrap(func, self._scope_options, self._pool_options)

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        return super().apply_async(self._scoped(func), args, kwds, callback, error_callback)

    # map, map_async, starmap and starmap_async all go through _map_async;
    # its mapper calls func once per item, so each item gets its own scope.
    def _map_async(self, func, iterable, mapper, chunksize=None, callback=None, error_callback=None):
        return super()._map_async(self._scoped(func), iterable, mapper, chunksize, callback, error_callback)

    def imap(self, func, iterable, chunksize=1):
        return super().imap(self._scoped(func), iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        return super().imap_unordered(self._scoped(func), iterable, chunksize)
