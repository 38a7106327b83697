"""Task engines with and without per-task scopes: Dask distributed and process pools.

    python bench/engines_bench.py                 # full run (minutes), writes bench/results/engines.md
    python bench/engines_bench.py --quick         # a tenth of the tasks, one repeat, prints only
    python bench/engines_bench.py --repeats 3 --only dask
    python bench/engines_bench.py --only dask --workload big_keep          # issue 21 (minutes)
    python bench/engines_bench.py --only dask --workload big_keep --quick  # 30 tasks, one round
    python bench/engines_bench.py --only dask --workload big_keep --explain  # where a task's time goes

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

`big_keep` (issue 21, `--workload big_keep`, Dask only): bench/big_keep.py's
task, the one `bench/worker_bench.py --big-tasks` runs: 120 tasks, each
building 100k record dicts, aggregating them and storing every 500th row in
a module-level dict of the worker. Variants `plain`, `scoped`
(ScopePlugin()), `pool_scoped` (ScopePlugin(warm_pool=True)) and `detach`
(ScopePlugin(), the task storing `objarena.detach(row)` under `paused()`),
a fresh cluster per run, variants alternating (forward, then backward) over
`--rounds` rounds (default 3; `--quick`: 30 tasks, 1 round). Printed: wall
time and worker RSS growth (summed over the 2 workers), min over rounds and
as ratios to plain's min; worker CPU; per-worker exit statistics (exit
collections by kind, chunks released / retained, retained and warm bytes);
and a checksum of the results and of the workers' merged caches, which must
be the same in every variant and round. Writes
bench/results/dask-big-keep-<python>.md (not with --quick). `--explain`:
instead, the per-task breakdown inside one worker (bench/big_keep.py's
explain(): task body, CPython's collections during it, the scope's exit and
its collection, exit kinds, chunks released and retained).

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


def worker_exit_info():
    """This worker's exit counters (objarena.info()), for client.run."""
    import objarena

    info = objarena.info()
    keys = ("exit_collections_young", "exit_collections_phase", "exit_collections_full",
            "exit_collections_deferred", "exit_collect_seconds", "retained_chunks", "retained_bytes",
            "warm_bytes", "warm_retained_bytes", "bytes_mapped", "chunks_live")
    return {k: info.get(k, 0) for k in keys}


BIG_KEEP_VARIANTS = ("plain", "scoped", "pool_scoped", "detach")


def run_dask_big_keep(variant, n):
    """One fresh LocalCluster running n big_keep tasks in `variant`; wall, CPU, RSS, digest, exit statistics."""
    import distributed

    import big_keep
    from objarena.dask import ScopePlugin, cluster_stats

    fn = big_keep.detach_task if variant == "detach" else big_keep.plain_task
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as lc, distributed.Client(lc) as client:
        if variant in ("scoped", "detach"):
            client.register_plugin(ScopePlugin())
        elif variant == "pool_scoped":
            client.register_plugin(ScopePlugin(warm_pool=True))
        # Every variant imports the task's module (and with it objarena) before the baseline.
        client.run(big_keep.ready)
        client.gather(client.map(noop_task, range(20)))  # connections and imports settled
        rss0, cpu0 = client.run(process_rss), client.run(cpu_time)
        t0 = time.perf_counter()
        results = client.gather(client.map(fn, range(1, n + 1)))  # tasks 1..n, as worker_bench's
        wall = time.perf_counter() - t0
        rss1, cpu1 = client.run(process_rss), client.run(cpu_time)
        caches = client.run(big_keep.cache_items)
        exits = client.run(worker_exit_info)
        tally = cluster_stats(client)
    items = [kv for per_worker in caches.values() for kv in per_worker]
    return {
        "wall_s": wall,
        "cpu_s": sum(cpu1[w] - cpu0[w] for w in cpu0),
        "rss_growth": sum(rss1[w] - rss0[w] for w in rss0) / 2**20,
        "rss_after": sum(rss1.values()) / 2**20,
        "digest": big_keep.digest(results, items),
        "kept": len(items),
        "kept_keys": len({k for k, _ in items}),
        "exits": {k: sum(e[k] for e in exits.values()) for k in next(iter(exits.values()))},
        "tally": {k: sum(t.get(k, 0) for t in tally.values())
                  for k in ("tasks", "chunks_released", "chunks_retained", "bytes_retained", "bytes_released",
                            "bytes_pages_released", "blocks_escaped", "tasks_with_escapes", "results_kept")},
    }


def big_keep_table(quick, rounds):
    n = 30 if quick else 120
    rounds = 1 if quick else rounds
    runs = {v: [] for v in BIG_KEEP_VARIANTS}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        for variant in (BIG_KEEP_VARIANTS if r % 2 == 0 else BIG_KEEP_VARIANTS[::-1]):
            out = run_dask_big_keep(variant, n)
            runs[variant].append(out)
            loads.append(os.getloadavg()[0])
            print(json.dumps({"round": r + 1, "variant": variant, "load": round(loads[-1], 1),
                              **{k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}}),
                  flush=True)
    digests = {v: sorted({x["digest"] for x in runs[v]}) for v in BIG_KEEP_VARIANTS}
    same = len({d for ds in digests.values() for d in ds}) == 1
    complete = all(x["kept"] == x["kept_keys"] == n * ((big_keep_records() - 1) // 500 + 1)
                   for v in runs for x in runs[v])

    def best(v, key):
        return min(x[key] for x in runs[v])

    pw, pg = best("plain", "wall_s"), max(best("plain", "rss_growth"), 0.1)
    lines = ["| variant | wall s (min) | wall / plain | wall s (all rounds) | worker CPU s (min) | "
             "RSS growth MiB (min, 2 workers) | growth / plain | growth (all rounds) |",
             "|---|---:|---:|---|---:|---:|---:|---|"]
    for v in BIG_KEEP_VARIANTS:
        lines.append(f"| {v} | {best(v, 'wall_s'):.2f} | {best(v, 'wall_s') / pw:.2f}x | "
                     + ", ".join(f"{x['wall_s']:.2f}" for x in runs[v]) + f" | {best(v, 'cpu_s'):.2f} | "
                     f"{best(v, 'rss_growth'):+.1f} | {best(v, 'rss_growth') / pg:.2f}x | "
                     + ", ".join(f"{x['rss_growth']:+.1f}" for x in runs[v]) + " |")
    lines += ["", "| variant (last round, both workers) | exits young / phase / full / deferred | exit collect s | "
              "chunks released | chunks retained at exits | retained chunks at end | retained MiB | warm MiB | "
              "blocks escaped |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v in BIG_KEEP_VARIANTS[1:]:
        e, t = runs[v][-1]["exits"], runs[v][-1]["tally"]
        lines.append(f"| {v} | {e['exit_collections_young']} / {e['exit_collections_phase']} / "
                     f"{e['exit_collections_full']} / {e['exit_collections_deferred']} | "
                     f"{e['exit_collect_seconds']:.2f} | {t['chunks_released']} | {t['chunks_retained']} | "
                     f"{e['retained_chunks']} | {e['retained_bytes'] / 2**20:.1f} | {e['warm_bytes'] / 2**20:.1f} | "
                     f"{t['blocks_escaped']} |")
    verdict = (f"yes (checksum {runs['plain'][0]['digest']}, worker_bench.py --big-tasks' for {n} tasks too)"
               if same else "NO: " + repr(digests))
    lines += ["", f"Results and the workers' caches identical in every variant and round: "
              f"{verdict}; rows kept {runs['plain'][-1]['kept']} "
              f"({'all tasks, once each' if complete else 'INCOMPLETE or duplicated'}). {n} tasks, min of {rounds} "
              f"run(s) per variant, load average {min(loads):.1f}-{max(loads):.1f}."]
    return runs, "\n".join(lines), same and complete


def big_keep_explain(rounds):
    """Where a big_keep task's CPU goes inside one Dask worker (bench/big_keep.py's explain())."""
    import distributed

    import big_keep

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as lc, distributed.Client(lc) as client:
        client.run(big_keep.ready)
        client.gather(client.map(noop_task, range(20)))
        (out,) = client.run(big_keep.explain, rounds).values()
    print(json.dumps(out), flush=True)
    lines = [f"One Dask worker ({out['tracked_objects']:,} tracked objects before), each mode run {rounds} times "
             f"interleaved on the worker's own thread (client.run), medians, process CPU ms:", "",
             "| mode | task body | CPython gc in the body (gen 0 / 1 / 2 ms; count of gen 2) | scope exit | "
             "exit wall ms | of which exit collection (wall) | exit kinds | chunks released / retained at exit | pages released MiB | "
             "blocks live at exit |", "|---|---:|---|---:|---:|---:|---|---|---:|---:|"]
    for mode in ("plain", "scoped", "pool_scoped", "detach"):
        m = out[mode]
        gs = " / ".join(f"{x * 1e3:.0f}" for x in m["gc_secs"])
        lines.append(f"| {mode} | {m['body'] * 1e3:.0f} | {gs}; {m['gc_count'][2]:.0f} | {m['exit'] * 1e3:.0f} | "
                     f"{m['exit_wall'] * 1e3:.0f} | {m['exit_collect'] * 1e3:.0f} | {', '.join(m['kinds'])} | {m['chunks_released']:.0f} / "
                     f"{m['chunks_retained']:.0f} | {m['pages_released_mib']:.1f} | {m['escaped']:.0f} |")
    return "\n".join(lines)


def big_keep_records():
    import big_keep

    return big_keep.RECORDS


ENGINES = {
    "dask": (run_dask, ["plain", "scoped", "pool_scoped"]),
    "process_pool": (run_pool, ["plain", "scoped", "pool_scoped", "recycle_10"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the tasks, one repeat, no results file")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", choices=sorted(ENGINES), action="append")
    ap.add_argument("--workload", choices=["small", "big", "big_keep"], action="append",
                    help="default: small and big; big_keep (issue 21) is Dask only and runs on its own")
    ap.add_argument("--rounds", type=int, default=3, help="big_keep: rounds of alternating variants (min of)")
    ap.add_argument("--explain", action="store_true",
                    help="big_keep: only the per-task breakdown inside one worker (body, gc, exit; --rounds times)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "engines.md"))
    args = ap.parse_args()
    if args.workload and "big_keep" in args.workload:
        if args.workload != ["big_keep"] or (args.only or ["dask"]) != ["dask"]:
            ap.error("--workload big_keep runs alone, on Dask: --only dask --workload big_keep")
        # The workers import bench/big_keep.py (the task pickles by reference): spawned
        # processes get this process's sys.path, and PYTHONPATH covers other start methods.
        here = os.path.dirname(os.path.abspath(__file__))
        os.environ["PYTHONPATH"] = os.pathsep.join([here] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        if args.explain:
            print(f"CPython {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}\n")
            print(big_keep_explain(args.rounds))
            return
        runs, table, ok = big_keep_table(args.quick, args.rounds)
        md = (f"Dask big tasks that keep a little (issue 21), {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
              f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores{' (quick)' if args.quick else ''}; "
              f"LocalCluster of 2 single-threaded worker processes.\n\n{table}")
        print(md)
        if not args.quick:
            ver = ".".join(map(str, sys.version_info[:2]))
            path = os.path.join(os.path.dirname(args.out), f"dask-big-keep-{ver}.md")
            with open(path, "w") as f:
                f.write(md + "\n")
            print("wrote", path)
        sys.exit(0 if ok else 1)
    scale = 10 if args.quick else 1
    repeats = 1 if args.quick else args.repeats
    rows = []
    # Process pools first: their workers fork from this process, which must
    # not hold distributed's imports yet.
    for engine in args.only or ["process_pool", "dask"]:
        runner, variants = ENGINES[engine]
        for workload, (fn, n) in TASKS.items():
            if args.workload and workload not in args.workload:
                continue
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
