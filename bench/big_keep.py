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
