"""Task engines with and without per-task scopes: Dask distributed and process pools.

    python bench/engines_bench.py                 # full run (minutes), writes bench/results/engines.md
    python bench/engines_bench.py --quick         # a tenth of the tasks, one repeat, prints only
    python bench/engines_bench.py --repeats 3 --only dask

Workloads (both from the engines issue): `small`, 2,000 tasks of about 1 ms
(8,000 small tuples built and summed), and `big`, 200 tasks that each build
about 200k objects (50k dicts of a tuple and a float) and keep one tuple in a
module-level list, as a cache in a real worker would. `noop` runs as many
empty tasks: what the engine's own bookkeeping grows a worker by.

Engines and variants:
- Dask: a LocalCluster of 2 single-threaded worker processes (a fresh one per
  run): `plain`, `scoped` (objarena.dask.ScopePlugin()), `pool_scoped`
  (ScopePlugin(warm_pool=True)).
- Process pools of 2 workers (fork): `plain` (multiprocessing.Pool),
  `scoped` (objarena.futures.ProcessPool), `pool_scoped`
  (ProcessPool(warm_pool=True)), `recycle_10` (multiprocessing.Pool with
  maxtasksperchild=10, the usual recycling answer).

Per run: wall time per task, CPU time per task (the worker processes' CPU
time over the batch: Dask workers' process_time delta; pool children's
rusage, which for recycling includes starting the replacement processes),
and worker RSS after the batch and its growth over the batch (MiB, summed
over the 2 workers). Medians over repeats.
"""
import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time

KEPT = []


def small_task(i):
    return sum(t[1] for t in [(j, float(j)) for j in range(8000)]) + i


def big_task(i):
    rows = [{"id": j, "v": (j, float(j))} for j in range(50_000)]
    KEPT.append(rows[i % len(rows)]["v"])
    return len(rows)


def noop_task(i):
    return i


TASKS = {"small": (small_task, 2000), "big": (big_task, 200)}


def process_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pid_rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_time():
    return time.process_time()


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_dask(variant, fn, n):
    import distributed

    from objarena.dask import ScopePlugin

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as lc, distributed.Client(lc) as client:
        if variant == "scoped":
            client.register_plugin(ScopePlugin())
        elif variant == "pool_scoped":
            client.register_plugin(ScopePlugin(warm_pool=True))
        client.gather(client.map(noop_task, range(20)))  # connections and imports settled
        rss0, cpu0 = client.run(process_rss), client.run(cpu_time)
        t0 = time.perf_counter()
        client.gather(client.map(fn, range(n)))
        wall = time.perf_counter() - t0
        rss1, cpu1 = client.run(process_rss), client.run(cpu_time)
    return {
        "wall_ms": wall / n * 1e3,
        "cpu_ms": sum(cpu1[w] - cpu0[w] for w in cpu0) / n * 1e3,
        "rss_after": sum(rss1.values()) / 2**20,
        "rss_growth": sum(rss1[w] - rss0[w] for w in rss0) / 2**20,
    }


def run_pool(variant, fn, n):
    from objarena.futures import ProcessPool

    ctx = multiprocessing.get_context("fork")
    cpu0 = children_cpu()
    if variant == "plain":
        pool = ctx.Pool(2)
    elif variant == "recycle_10":
        pool = ctx.Pool(2, maxtasksperchild=10)
    else:
        pool = ProcessPool(2, context=ctx, warm_pool=(variant == "pool_scoped"))
    with pool:
        pool.map(noop_task, range(2), chunksize=1)
        rss0 = sum(pid_rss(p.pid) for p in pool._pool)
        t0 = time.perf_counter()
        pool.map(fn, range(n), chunksize=1)
        wall = time.perf_counter() - t0
        time.sleep(0.2)  # recycled workers: let the pool replace the last ones
        rss1 = sum(pid_rss(p.pid) for p in pool._pool if p.is_alive())
        pool.close()
        pool.join()
    return {
        "wall_ms": wall / n * 1e3,
        "cpu_ms": (children_cpu() - cpu0) / n * 1e3,
        "rss_after": rss1 / 2**20,
        "rss_growth": (rss1 - rss0) / 2**20,
    }


ENGINES = {
    "dask": (run_dask, ["plain", "scoped", "pool_scoped"]),
    "process_pool": (run_pool, ["plain", "scoped", "pool_scoped", "recycle_10"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the tasks, one repeat, no results file")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", choices=sorted(ENGINES), action="append")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "engines.md"))
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    repeats = 1 if args.quick else args.repeats
    rows = []
    # Process pools first: their workers fork from this process, which must
    # not hold distributed's imports yet.
    for engine in args.only or ["process_pool", "dask"]:
        runner, variants = ENGINES[engine]
        for workload, (fn, n) in TASKS.items():
            n //= scale
            for variant in ["noop"] + variants:
                task, name = (noop_task, "plain") if variant == "noop" else (fn, variant)
                samples = [runner(name, task, n) for _ in range(repeats)]
                med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                row = {"engine": engine, "workload": workload, "variant": variant, "tasks": n, **med}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
                      flush=True)
    table = markdown(rows, repeats)
    print(table)
    if not args.quick:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(f"# Task engines: plain vs per-task scopes\n\n`python bench/engines_bench.py "
                    f"--repeats {repeats}` on Python {sys.version.split()[0]}, "
                    f"{time.strftime('%Y-%m-%d')}; medians over {repeats} run(s).\n\n{table}\n")
        print("wrote", args.out)


def markdown(rows, repeats):
    lines = ["| engine | workload | variant | tasks | wall ms/task | CPU ms/task | CPU vs plain | "
             "worker RSS after (MiB, 2 workers) | RSS growth (MiB) | growth over no-op |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        plain = next(p for p in rows if p["engine"] == r["engine"] and p["workload"] == r["workload"]
                     and p["variant"] == "plain")
        noop = next(p for p in rows if p["engine"] == r["engine"] and p["workload"] == r["workload"]
                    and p["variant"] == "noop")
        ratio = "" if r["variant"] == "noop" else f"{r['cpu_ms'] / plain['cpu_ms']:.2f}x"
        over = "" if r["variant"] == "noop" else f"{r['rss_growth'] - noop['rss_growth']:+.1f}"
        lines.append(f"| {r['engine']} | {r['workload']} | {r['variant']} | {r['tasks']} | {r['wall_ms']:.2f} | "
                     f"{r['cpu_ms']:.2f} | {ratio} | {r['rss_after']:.1f} | {r['rss_growth']:+.1f} | {over} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
