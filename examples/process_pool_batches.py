"""A process pool whose workers give each task's memory back, instead of being
recycled: objarena.futures.ProcessPoolExecutor.

    python examples/process_pool_batches.py [--tasks 40]

Runs the same batches through concurrent.futures.ProcessPoolExecutor, the
objarena drop-in (every task in its own scope), and the drop-in with a warm
pool per worker, and prints each worker's RSS growth over the batches and the
objarena counters of one worker. Each task builds ~150k objects and keeps one
small tuple in a module-level cache.
"""
import argparse
import concurrent.futures
import multiprocessing
import os

import objarena.futures

CACHE = []


def batch(seed):
    rows = [{"id": i, "key": (seed, i), "score": i * 0.25} for i in range(50_000)]
    CACHE.append(rows[seed % len(rows)]["key"])
    return sum(r["score"] for r in rows)


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(label, make, tasks):
    ctx = multiprocessing.get_context("spawn")
    with make(max_workers=1, mp_context=ctx) as ex:
        ex.submit(batch, 0).result()
        before = ex.submit(rss_mib).result()
        total = sum(ex.map(batch, range(tasks)))
        after = ex.submit(rss_mib).result()
        stats = ex.submit(objarena.futures.worker_stats).result() if label != "plain" else None
    print(f"{label:12s} worker RSS {before:.1f} -> {after:.1f} MiB ({after - before:+.1f}); checksum {total:.0f}")
    if stats:
        print(f"{'':12s} {stats['tasks']} tasks in scopes, "
              f"{(stats['bytes_released'] + stats['bytes_pages_released']) / 2**20:.0f} MiB released, "
              f"{stats['blocks_escaped']} blocks escaped")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=40)
    args = ap.parse_args()
    run("plain", concurrent.futures.ProcessPoolExecutor, args.tasks)
    run("scoped", objarena.futures.ProcessPoolExecutor, args.tasks)
    run("warm pool", lambda **kw: objarena.futures.ProcessPoolExecutor(warm_pool=True, **kw), args.tasks)
