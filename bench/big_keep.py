"""Issue 21's big task that keeps a little: one definition for both benchmarks.

`bench/worker_bench.py --big-tasks` runs it in one process per mode and
`bench/engines_bench.py --only dask --workload big_keep` on Dask workers,
so both measure the same task. Each task builds `records` record dicts
(four fields, a one-element list of tags each: 2 tracked containers per
record), aggregates them into a dict of 7 floats, and stores every 500th
row in the module-level `CACHE` keyed by `(task, id)`, as a worker's memo
table or registry would; the result is a float.

`keep_plain` stores the row as it is (under a scope it pins the row's
arena pages); `keep_detached` stores `objarena.detach()` copies made under
`paused()`, so the cache holds no arena memory. The module lives in a
real file (not in a benchmark's `__main__`) so that Dask pickles the task
by reference and every task of a worker updates the same `CACHE`.
"""
import zlib

import objarena

RECORDS = 100_000
KEEP_EVERY = 500
CACHE = {}


def task(i, keep, records=RECORDS):
    rows = [{"id": j, "name": "rec%d" % j, "score": j * 0.5 + i, "tags": [j % 7]} for j in range(records)]
    totals = {}
    for r in rows:
        t = r["tags"][0]
        totals[t] = totals.get(t, 0.0) + r["score"]
    for r in rows[::KEEP_EVERY]:
        keep((i, r["id"]), r)
    return sum(totals.values())


def keep_plain(key, row):
    CACHE[key] = row


def keep_detached(key, row):
    with objarena.paused():
        CACHE[objarena.detach(key)] = objarena.detach(row)


def plain_task(i, records=RECORDS):
    """The task keeping its rows as they are (Dask variants plain, scoped, pool_scoped)."""
    return task(i, keep_plain, records)


def detach_task(i, records=RECORDS):
    """The task keeping detached copies (Dask variant detach; the plugin already copies the result out)."""
    return task(i, keep_detached, records)


def ready():
    """Nothing: calling it on a worker (client.run) imports this module and objarena before the baseline."""
    return True


def cache_items():
    """This process's cache as a list of (key, row): the Dask benchmark merges the workers' lists."""
    return list(CACHE.items())


def digest(results, items):
    """Checksum of the results (in task order) and of the cache's (key, row) pairs, whatever the order."""
    return zlib.crc32(repr((list(results), sorted(items))).encode())


def explain(rounds=4, records=RECORDS, first_key=1_000_000):
    """Where a task's time goes, in this process (a Dask worker: ``client.run(explain, workers=[one])``).

    Runs the task `rounds` times in each of plain, bare scope, pool scope and
    bare scope + detach, modes interleaved, and returns per mode the median
    process CPU seconds of the task body, of the scope's exit (CPU and wall;
    its exit collection's wall seconds, the rest is freelists, the
    retained-space sieve, chunk release), of CPython's own collections during the body (timed with a gc
    callback) by generation, the exit collection kinds, and the chunks the
    exits released and retained. Keys start at `first_key`, apart from the
    benchmark's tasks; the rows these runs keep stay in CACHE.
    """
    import gc
    import statistics
    import time

    pool = objarena.Pool()
    modes = ("plain", "scoped", "pool_scoped", "detach")
    samples = {m: [] for m in modes}
    state = {"t": 0.0, "gens": [0, 0, 0], "secs": [0.0, 0.0, 0.0], "on": False}

    def on_gc(phase, info):
        if not state["on"]:
            return
        if phase == "start":
            state["t"] = time.process_time()
        else:
            g = info["generation"]
            state["gens"][g] += 1
            state["secs"][g] += time.process_time() - state["t"]

    gc.callbacks.append(on_gc)
    try:
        heap = len(gc.get_objects())
        key = first_key
        for _ in range(rounds):
            for mode in modes:
                key += 1
                fn = detach_task if mode == "detach" else plain_task
                state.update(gens=[0, 0, 0], secs=[0.0, 0.0, 0.0], on=True)
                t0 = time.process_time()
                if mode == "plain":
                    fn(key, records)
                    t1 = t2 = time.process_time()
                    w1 = w2 = 0.0
                    stats = {}
                else:
                    scope = pool.scope() if mode == "pool_scoped" else objarena.scope()
                    with scope:
                        fn(key, records)
                        state["on"] = False
                        t1, w1 = time.process_time(), time.perf_counter()
                    t2, w2 = time.process_time(), time.perf_counter()
                    stats = scope.stats
                state["on"] = False
                samples[mode].append({
                    "body": t1 - t0, "exit": t2 - t1, "exit_wall": w2 - w1, "exit_collect": stats.get("exit_collect_seconds", 0.0),
                    "gc_secs": list(state["secs"]), "gc_count": list(state["gens"]),
                    "kind": stats.get("exit_collection"), "chunks_retained": stats.get("chunks_retained", 0),
                    "chunks_released": stats.get("chunks_released", 0),
                    "pages_released_mib": stats.get("bytes_pages_released", 0) / 2**20,
                    "escaped": stats.get("live_blocks_at_exit", 0)})
    finally:
        gc.callbacks.remove(on_gc)
        pool.close()
    out = {"tracked_objects": heap}
    for mode, runs in samples.items():
        med = {k: statistics.median(r[k] for r in runs) for k in
               ("body", "exit", "exit_wall", "exit_collect", "chunks_retained", "chunks_released", "pages_released_mib", "escaped")}
        med["gc_secs"] = [statistics.median(r["gc_secs"][g] for r in runs) for g in range(3)]
        med["gc_count"] = [statistics.median(r["gc_count"][g] for r in runs) for g in range(3)]
        med["kinds"] = sorted({str(r["kind"]) for r in runs})
        out[mode] = med
    return out
