"""Dask workers that give each task's memory back: objarena.dask.ScopePlugin.

    python examples/dask_worker_memory.py [--tasks 60] [--threads 1]

Starts its own LocalCluster (2 worker processes), runs the same batch of
tasks twice on fresh clusters, plain and with every task in its own scope
(one line: client.register_plugin(ScopePlugin())), and prints what the
workers hold afterwards (the "unmanaged memory" Dask warns about) and the
plugin's per-worker counters. Each task parses ~40k CSV-like records into
dicts and keeps a small summary in a module-level cache, as real workers do.
"""
import argparse
import os

import distributed

from objarena.dask import ScopePlugin, cluster_stats

SUMMARIES = {}  # a per-worker cache: survives the task, as memo tables and registries do


def parse_batch(seed):
    lines = [f"{seed},{i},name-{i % 97},{i * 0.5},{'x' * (i % 13)}" for i in range(40_000)]
    records = [dict(zip(("batch", "id", "name", "value", "pad"), line.split(","))) for line in lines]
    by_name = {}
    for r in records:
        by_name[r["name"]] = by_name.get(r["name"], 0.0) + float(r["value"])
    SUMMARIES[seed] = max(by_name.items(), key=lambda kv: kv[1])
    return len(records), SUMMARIES[seed][0]


def worker_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(tasks, threads, scoped):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=threads, processes=True,
                                  dashboard_address=":0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        client.gather(client.map(parse_batch, range(-4, 0)))  # warm up: imports, first tasks (not counted)
        if scoped:
            client.register_plugin(ScopePlugin())  # the one line: every task (after the warm-up) in its own scope
        before = client.run(worker_rss_mib)
        results = client.gather(client.map(parse_batch, range(tasks)))
        after = client.run(worker_rss_mib)
        assert all(n == 40_000 for n, _ in results)
        label = "scoped" if scoped else "plain "
        for addr in sorted(before):
            print(f"{label} worker {addr}: RSS {before[addr]:.1f} -> {after[addr]:.1f} MiB "
                  f"({after[addr] - before[addr]:+.1f})")
        if scoped:
            for addr, s in sorted(cluster_stats(client).items()):
                print(f"       {addr}: {s['tasks']} tasks in scopes, "
                      f"{(s['bytes_released'] + s['bytes_pages_released']) / 2**20:.0f} MiB released, "
                      f"{s['blocks_escaped']} blocks escaped, {s['retained_bytes'] / 2**20:.1f} MiB retained now")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1, help="threads per worker")
    args = ap.parse_args()
    run(args.tasks, args.threads, scoped=False)
    run(args.tasks, args.threads, scoped=True)
