"""Dask distributed: every task of a worker runs in its own scope.

    from objarena.dask import ScopePlugin, cluster_stats

    client.register_plugin(ScopePlugin(limit=2**30))      # once per cluster, any time
    ...
    cluster_stats(client)    # {worker address: {"tasks": ..., "bytes_released": ..., ...}}

The plugin swaps each worker's default executor (a thread pool, one thread
per `threads_per_worker`) for `ScopedThreadPoolExecutor`: the same pool whose
threads run each task inside a scope made with the plugin's options
(`limit`, `chunk_size`, `reuse`, `domains`, `collect`, ...;
`warm_pool=True` or a dict of `objarena.Pool()` options: scopes of one warm
pool per worker). Workers that join later get it too. Tasks that name
another executor (`dask.annotate(executor=...)`) are not scoped.

What the scope holds: the task's own allocations and distributed's
bookkeeping around the call on that thread (timings, the result message).
The result message is copied out with pickle before the scope exits, as
`objarena.run` does (`copy_results=True`), so the result Dask keeps in the
worker's memory pins nothing of the arena. A result pickle cannot copy is
kept as it is, its blocks retained until Dask drops it (counted in
`results_kept`, with a `RuntimeWarning` once per worker); `copy_results=False`
keeps every result that way and saves the copy (which for results that hold
big buffers is a copy of the buffers; their data is `malloc` memory, not
arena memory, so what they pin is their small object headers). A failed
task's exception and traceback stay in the arena until Dask drops them.

Threads (`threads_per_worker > 1`): scopes are per thread, so concurrent
tasks get separate arenas. CPython's freelists (floats, tuples, lists, dicts,
...) are shared by all threads, so a block one task freed can be handed to a
task on another thread, or to the worker's event-loop thread, and outlive the
task that allocated it: that pins a page of the first task's arena until it
is freed (counted in `blocks_escaped`), never memory in use. So `limit=`
bounds each task's own arena and big buffers, and is charged only for blocks the task's
thread allocated: objects a task takes from another's freelist are not
charged to it (at most the freelists' few hundred blocks per type). It does
not bound the worker: use Dask's `memory_limit` for that.

`strict=True` is refused: every task leaves distributed's bookkeeping for the
call (its contextvars context, 2 blocks) live at the scope's exit, freed a
moment later. Even nested in a task (`objarena.scoped(fn, strict=True)`) it
fails tasks on single-threaded workers (40 of 340 measured), for blocks
the worker's other threads took from the task's freelists or kept. Watch
`blocks_escaped` instead, and check for leaks in tests.

Per-worker statistics: `cluster_stats(client)` (or
`client.run(objarena.dask.worker_stats)`) returns, per worker, the tasks run,
tasks failed, bytes released (whole chunks, and pages of retained chunks),
chunks and bytes retained at exit, blocks escaped, results kept, plus
`objarena.info()`'s retained figures for the process.
"""
import concurrent.futures
import pickle
import warnings

from objarena import _objarena
from distributed import WorkerPlugin
from distributed.threadpoolexecutor import ThreadPoolExecutor

from .futures import ScopeTally, _task_options

__all__ = ["PLUGIN_NAME", "ScopePlugin", "ScopedThreadPoolExecutor", "cluster_stats", "worker_stats"]

PLUGIN_NAME = "objarena-scopes"


class ScopedThreadPoolExecutor(ThreadPoolExecutor):
    """distributed's worker thread pool, running each submitted call in a scope.

    (Its name keeps "ThreadPoolExecutor": the worker passes task context,
    which `get_worker()` and `worker_client()` need, only to executors whose
    type name says so.)
    """

    def __init__(self, max_workers, *, scope_options, pool_options=None, copy_results=True,
                 tally=None, thread_name_prefix="Dask-Default-Threads"):
        super().__init__(max_workers, thread_name_prefix=thread_name_prefix)
        self._scope_options = dict(scope_options)
        self._pool = _objarena.Pool(**pool_options) if pool_options is not None else None
        self._copy_results = copy_results
        self.tally = tally if tally is not None else ScopeTally()
        self._warned = False

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(self._run_in_scope, fn, args, kwargs)

    def _make_scope(self):
        if self._pool is None:
            return _objarena.scope(**self._scope_options)
        return self._pool.scope(**self._scope_options)

    def _run_in_scope(self, fn, args, kwargs):
        phase = self._make_scope()
        blob = None
        failed = True
        try:
            with phase:
                msg = fn(*args, **kwargs)
                failed = isinstance(msg, dict) and msg.get("op") == "task-erred"
                if self._copy_results and isinstance(msg, dict) and msg.get("op") == "task-finished":
                    blob = self._copy_out(msg)
                    if blob is not None:
                        del msg
        finally:
            if phase.state == "exited":
                self.tally.add(phase.stats, failed)
        return pickle.loads(blob) if blob is not None else msg

    def _copy_out(self, msg):
        with _objarena.paused():
            try:
                return pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                self.tally.count("results_kept")
                if not self._warned:
                    self._warned = True
                    warnings.warn(
                        f"objarena.dask: a task result of type {type(msg.get('result')).__name__} cannot be "
                        f"pickled ({exc}); such results stay in their task's arena until Dask drops them "
                        f"(counted in results_kept)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                return None

    def shutdown(self, wait=True, timeout=None):
        super().shutdown(wait=wait, timeout=timeout)
        if self._pool is not None and wait:
            # Scopes still running on threads not waited for keep the pool open.
            try:
                self._pool.close()
            except RuntimeError:
                pass


class ScopePlugin(WorkerPlugin):
    """Worker plugin: each task of each worker runs in its own scope.

    ``ScopePlugin(limit=..., strict=..., chunk_size=..., ..., warm_pool=False,
    copy_results=True)``; the scope options are ``objarena.scope()``'s, checked
    here. Register once: ``client.register_plugin(ScopePlugin(...))``.
    """

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, *, warm_pool=False, copy_results=True, **scope_options):
        if scope_options.get("strict"):
            raise ValueError(
                "objarena.dask.ScopePlugin(strict=True) would fail every task: distributed's own "
                "bookkeeping for the call (the task's contextvars context, its metrics) is allocated in "
                "the task's scope and outlives it for a moment, and other worker threads take blocks from "
                "a task's freelists. Under Dask, watch blocks_escaped in objarena.dask.cluster_stats(client); "
                "check a task function for leaks outside Dask, in its own tests (objarena.scope(strict=True) "
                "around a call, or the objarena pytest plugin's strict marker)"
            )
        self.scope_options, self.pool_options = _task_options(scope_options, warm_pool)
        self.copy_results = bool(copy_results)
        self.tally = None
        self._replaced = None

    def setup(self, worker):
        nthreads = worker.state.nthreads
        current = worker.executors["default"]
        if isinstance(current, ScopedThreadPoolExecutor):
            self.tally = current.tally  # re-registered: keep counting where the last one did
        elif not isinstance(current, (ThreadPoolExecutor, concurrent.futures.ThreadPoolExecutor)):
            raise TypeError(
                f"objarena.dask.ScopePlugin wraps the worker's default thread pool; this worker's default "
                f"executor is {type(current).__name__}"
            )
        self.tally = self.tally or ScopeTally()
        worker.executors["default"] = ScopedThreadPoolExecutor(
            nthreads,
            scope_options=self.scope_options,
            pool_options=self.pool_options,
            copy_results=self.copy_results,
            tally=self.tally,
            thread_name_prefix=getattr(current, "_thread_name_prefix", "Dask-Default-Threads"),
        )
        self._replaced = current
        # Tasks already running on the old pool finish there.
        current.shutdown(wait=False)

    def teardown(self, worker):
        scoped = worker.executors.get("default")
        if isinstance(scoped, ScopedThreadPoolExecutor) and worker.status.name not in ("closing", "closed"):
            worker.executors["default"] = ThreadPoolExecutor(
                worker.state.nthreads, thread_name_prefix=scoped._thread_name_prefix
            )
            scoped.shutdown(wait=False)

    def stats(self):
        out = self.tally.snapshot() if self.tally is not None else {}
        info = _objarena.info()
        for key in ("retained_chunks", "retained_bytes", "warm_bytes", "warm_retained_bytes", "arenas_live"):
            out[key] = info[key]
        return out


def worker_stats(dask_worker):
    """This worker's counters (for ``client.run(worker_stats)``), with ``"registered": True``; without the
    plugin (never registered, or unregistered) ``{"registered": False}``: its counters went with it."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is None:
        return {"registered": False}
    return {"registered": True, **plugin.stats()}


def cluster_stats(client):
    """``{worker address: worker_stats}`` for every worker of ``client``'s cluster (``{"registered": False}``
    for a worker without the plugin)."""
    return client.run(worker_stats)
