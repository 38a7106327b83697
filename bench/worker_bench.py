"""The long-lived worker benchmark: a scope per task, thousands of tasks.

    python bench/worker_bench.py            # ~2-3 minutes on the 2-core VM
    python bench/worker_bench.py --quick    # smaller counts, for a smoke run

Three parts, each in fresh child processes (objarena installed, e.g. by
./tools/run_bench's venv or `pip install .`):

1. Cost per task of a ~50 us job while the process holds 0, 100k, 1M and 3M
   long-lived tracked objects: the job alone, in a bare scope, in a pool
   scope, and in scope(collect="full") (today's exit before issue 12).
   Variants are interleaved round by round; medians over rounds.
2. RSS growth after 50/100/200/400/1000 tasks that each build 40k small
   records and keep every 1000th in a module-level cache: plain, bare
   scopes, pool scopes; chunks retained and region address space mapped.
3. 1,000 tasks that each make a reference cycle, then objarena.collect():
   RSS against before the tasks.

    python bench/worker_bench.py --big-tasks   # only the big-task scenario (issue 21)

4. Big tasks that keep a little: 120 tasks, each building 100k record dicts,
   aggregating them and storing every 500th row in a module-level dict.
   Modes plain, bare scope, pool scope, and bare scope storing
   objarena.detach(row) under paused(); each mode in its own process, modes
   alternating over two rounds, min of the two; CPU seconds and RSS growth
   after 30/60/120 tasks as ratios to plain, and a checksum of results and
   cache that must be the same in every mode.

Prints Markdown tables with ratios measured in the same run and writes
bench/results/worker.md and bench/results/worker.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

COMMON = r"""
import gc, json, os, sys, time
import objarena

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
"""

COST_CHILD = COMMON + r"""
import statistics
heap_objects, rounds, tasks, full_tasks = (int(a) for a in sys.argv[1:5])
# Long-lived tracked state: small lists (tracked containers), as a service holds.
state = [[i] for i in range(heap_objects)]
gc.collect()

def job():
    # ~50 us (3.11, this VM): 400 small dicts and one reference cycle
    recs = [{"id": i, "v": i * 2} for i in range(400)]
    a = [recs]; a.append(a)
    return sum(r["v"] for r in recs)

pool = objarena.Pool()
def plain(n):
    for _ in range(n):
        job()
def bare(n):
    for _ in range(n):
        with objarena.scope():
            job()
def pooled(n):
    for _ in range(n):
        with pool.scope():
            job()
def full(n):
    for _ in range(n):
        with objarena.scope(collect="full"):
            job()
variants = {"job alone": (plain, tasks), "bare scope": (bare, tasks), "pool scope": (pooled, tasks),
            'collect="full"': (full, full_tasks)}
for fn, n in variants.values():
    fn(min(n, 20))  # warm up
samples = {name: [] for name in variants}
for _ in range(rounds):
    for name, (fn, n) in variants.items():
        t = time.perf_counter()
        fn(n)
        samples[name].append((time.perf_counter() - t) / n * 1e6)
info = objarena.info()
print(json.dumps({"us_per_task": {k: statistics.median(v) for k, v in samples.items()},
                  "exit_collections": {k: info[k] for k in ("exit_collections_young", "exit_collections_full",
                                                            "exit_collections_deferred")},
                  "retained_chunks": info["retained_chunks"]}))
"""

GROWTH_CHILD = COMMON + r"""
variant, records, marks = sys.argv[1], int(sys.argv[2]), [int(m) for m in sys.argv[3].split(",")]
CACHE = []

def task(i):
    rows = [{"id": j, "name": "rec%d" % j, "score": j * 0.5} for j in range(records)]
    CACHE.extend(rows[::1000])     # keeps 0.1% of what it builds
    return len(rows)

pool = objarena.Pool() if variant == "pool" else None
gc.collect()
base = rss_mib()
out = []
t0 = time.perf_counter()
for i in range(1, marks[-1] + 1):
    if variant == "plain":
        task(i)
    elif variant == "bare":
        with objarena.scope():
            task(i)
    else:
        with pool.scope():
            task(i)
    if i in marks:
        info = objarena.info()
        out.append({"tasks": i, "rss_growth_mib": rss_mib() - base, "retained_chunks": info["retained_chunks"],
                    "mapped_mib": info["bytes_mapped"] / 2**20, "fallbacks": info.get("alloc_fallbacks", 0)})
print(json.dumps({"marks": out, "seconds": time.perf_counter() - t0, "kept": len(CACHE)}))
"""

CYCLE_CHILD = COMMON + r"""
n = int(sys.argv[1])
gc.collect(); objarena.collect()
with objarena.scope():
    pass
objarena.collect()
before = rss_mib()
for i in range(n):
    with objarena.scope():
        a = {"i": i, "payload": [str(j) for j in range(200)]}
        b = {"a": a}
        a["b"] = b
        del a, b
after_tasks = rss_mib()
objarena.collect()
after_collect = rss_mib()
info = objarena.info()
print(json.dumps({"before": before, "after_tasks": after_tasks, "after_collect": after_collect,
                  "retained_chunks": info["retained_chunks"], "deferred": info["exit_collections_deferred"]}))
"""


# The task itself is bench/big_keep.py's, shared with the Dask benchmark
# (bench/engines_bench.py --only dask --workload big_keep).
BIG_CHILD = COMMON + f"sys.path.insert(0, {HERE!r})\n" + r"""
from big_keep import CACHE, digest, keep_detached, keep_plain, task
mode, records, marks = sys.argv[1], int(sys.argv[2]), [int(m) for m in sys.argv[3].split(",")]

pool = objarena.Pool() if mode == "pool" else None
gc.collect()
base_rss, base_cpu = rss_mib(), time.process_time()
out, results = [], []
for i in range(1, marks[-1] + 1):
    if mode == "plain":
        results.append(task(i, keep_plain, records))
    elif mode == "pool":
        with pool.scope():
            results.append(task(i, keep_plain, records))
    elif mode == "bare":
        with objarena.scope():
            results.append(task(i, keep_plain, records))
    else:  # the result is kept too: detached as well
        with objarena.scope():
            result = task(i, keep_detached, records)
            with objarena.paused():
                results.append(objarena.detach(result))
            del result
    if i in marks:
        out.append({"tasks": i, "cpu": time.process_time() - base_cpu, "rss_growth_mib": rss_mib() - base_rss})
digest = digest(results, CACHE.items())
info = objarena.info()
print(json.dumps({"marks": out, "digest": digest, "kept": len(CACHE), "retained_chunks": info["retained_chunks"],
                  "exit_collections_phase": info.get("exit_collections_phase", 0),
                  "exit_collections_full": info["exit_collections_full"]}))
"""

BIG_MODES = ("plain", "bare", "pool", "detach")


def big_table(quick):
    marks = [10, 20, 30] if quick else [30, 60, 120]
    records = 100_000
    rounds = 1 if quick else 2
    runs = {m: [] for m in BIG_MODES}
    for r in range(rounds):
        for mode in (BIG_MODES if r % 2 == 0 else BIG_MODES[::-1]):
            print(f"  big tasks: {mode} (round {r + 1}) ...", file=sys.stderr, flush=True)
            runs[mode].append(run_child(BIG_CHILD, mode, records, ",".join(map(str, marks))))
    digests = {m: {x["digest"] for x in runs[m]} for m in BIG_MODES}
    same = len(set().union(*digests.values())) == 1

    def best(mode, i, key):
        return min(x["marks"][i][key] for x in runs[mode])

    names = {"plain": "plain", "bare": "bare scope", "pool": "pool scope", "detach": "bare scope + detach"}
    lines = ["| tasks | " + " | ".join(f"{names[m]} CPU s" for m in BIG_MODES) + " | CPU bare / plain | CPU pool / plain"
             " | CPU detach / plain |",
             "|---|" + "---|" * (len(BIG_MODES) + 3)]
    for i, m in enumerate(marks):
        p = best("plain", i, "cpu")
        lines.append(f"| {m} | " + " | ".join(f"{best(x, i, 'cpu'):.2f}" for x in BIG_MODES) + " | " +
                     " | ".join(f"{best(x, i, 'cpu') / p:.2f}x" for x in ("bare", "pool", "detach")) + " |")
    lines += ["", "| tasks | " + " | ".join(f"{names[m]} RSS growth" for m in BIG_MODES) +
              " | bare / plain | pool / plain | detach / plain |",
              "|---|" + "---|" * (len(BIG_MODES) + 3)]
    for i, m in enumerate(marks):
        p = max(best("plain", i, "rss_growth_mib"), 0.1)
        lines.append(f"| {m} | " + " | ".join(f"+{best(x, i, 'rss_growth_mib'):.1f} MiB" for x in BIG_MODES) +
                     " | " + " | ".join(f"{best(x, i, 'rss_growth_mib') / p:.2f}x" for x in ("bare", "pool", "detach"))
                     + " |")
    last = {m: runs[m][-1] for m in BIG_MODES}
    lines += ["", f"Results and cache identical in every mode: {'yes (checksum %d)' % runs['plain'][0]['digest'] if same else 'NO: ' + repr(digests)}; rows kept "
              f"{last['plain']['kept']}; retained chunks at the end (bare, pool, detach): "
              f"{last['bare']['retained_chunks']}, {last['pool']['retained_chunks']}, {last['detach']['retained_chunks']}; "
              f"exits with a phase collection (bare): {last['bare']['exit_collections_phase']}, with a full one: "
              f"{last['bare']['exit_collections_full']}. Min of {rounds} run(s) per mode, load "
              f"{os.getloadavg()[0]:.1f}."]
    return runs, "\n".join(lines)


def run_child(code, *args):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


FULL = 'collect="full"'


def cost_table(quick):
    heaps = [0, 100_000, 1_000_000] if quick else [0, 100_000, 1_000_000, 3_000_000]
    rounds, tasks = (5, 100) if quick else (15, 200)
    rows = []
    for heap in heaps:
        full_tasks = max(2, min(tasks, int(2e5 / max(heap, 1)) + 2))
        print(f"  cost: heap {heap:,} tracked objects ...", file=sys.stderr, flush=True)
        r = run_child(COST_CHILD, heap, rounds, tasks, full_tasks)
        rows.append({"heap_objects": heap, **r})
    lines = ["| process holds | job alone | bare scope | pool scope | `collect=\"full\"` | bare / alone | pool / alone |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        u = r["us_per_task"]
        a = u["job alone"]
        lines.append(f"| {r['heap_objects']:,} tracked | {a:.0f} us | {u['bare scope']:.0f} us | "
                     f"{u['pool scope']:.0f} us | {u[FULL]:.0f} us | "
                     f"{u['bare scope'] / a:.2f}x | {u['pool scope'] / a:.2f}x |")
    return rows, "\n".join(lines)


def growth_table(quick):
    marks = [50, 100, 200] if quick else [50, 100, 200, 400, 1000]
    records = 40_000
    data = {}
    for variant in ("plain", "bare", "pool"):
        print(f"  growth: {variant} ...", file=sys.stderr, flush=True)
        data[variant] = run_child(GROWTH_CHILD, variant, records, ",".join(map(str, marks)))
    lines = ["| tasks | plain | bare scope | pool scope | bare / plain | pool / plain | chunks retained (bare, pool) | mapped MiB (bare, pool) |",
             "|---|---|---|---|---|---|---|---|"]
    for i, m in enumerate(marks):
        p, b, o = (data[v]["marks"][i] for v in ("plain", "bare", "pool"))
        pg = max(p["rss_growth_mib"], 0.1)
        lines.append(f"| {m} | +{p['rss_growth_mib']:.1f} MiB | +{b['rss_growth_mib']:.1f} MiB | "
                     f"+{o['rss_growth_mib']:.1f} MiB | {b['rss_growth_mib'] / pg:.2f}x | "
                     f"{o['rss_growth_mib'] / pg:.2f}x | {b['retained_chunks']}, {o['retained_chunks']} | "
                     f"{b['mapped_mib']:.0f}, {o['mapped_mib']:.0f} |")
    lines.append("")
    lines.append("Seconds for the run: " + ", ".join(f"{v} {data[v]['seconds']:.1f}" for v in data))
    return data, "\n".join(lines)


def cycle_table(quick):
    n = 300 if quick else 1000
    print(f"  cycles: {n} tasks ...", file=sys.stderr, flush=True)
    r = run_child(CYCLE_CHILD, n)
    text = (f"{n} tasks, each a reference cycle in a scope: RSS {r['before']:.1f} MiB before, "
            f"{r['after_tasks']:.1f} after the tasks ({r['deferred']} exits deferred their full collection), "
            f"{r['after_collect']:.1f} after objarena.collect() "
            f"({r['after_collect'] - r['before']:+.1f} MiB; {r['retained_chunks']} chunks retained).")
    return r, text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (smoke run)")
    ap.add_argument("--out", default=RESULTS, help="where worker.md / worker.json go")
    ap.add_argument("--big-tasks", action="store_true", help="only the big-task scenario (issue 21)")
    args = ap.parse_args()
    started = time.time()
    if args.big_tasks:
        runs, big_md = big_table(args.quick)
        md = (f"Big tasks that keep a little, {time.strftime('%Y-%m-%d', time.gmtime())}, CPython "
              f"{sys.version.split()[0]}, {os.cpu_count()} cores{' (quick)' if args.quick else ''}: 100k record dicts "
              "per task, every 500th row kept in a module-level dict.\n\n" + big_md)
        print(md)
        os.makedirs(args.out, exist_ok=True)
        suffix = "-quick" if args.quick else ""
        with open(os.path.join(args.out, f"worker-big{suffix}.md"), "w") as f:
            f.write(md + "\n")
        return
    cost_rows, cost_md = cost_table(args.quick)
    growth, growth_md = growth_table(args.quick)
    cycles, cycle_md = cycle_table(args.quick)
    header = (f"Worker benchmark, {time.strftime('%Y-%m-%d', time.gmtime())}, CPython "
              f"{sys.version.split()[0]}, {os.cpu_count()} cores{' (quick)' if args.quick else ''}.")
    md = "\n\n".join([header, "## Cost per task (~50 us job; medians)", cost_md,
                      "## RSS growth, tasks keeping 0.1% of 40k records each", growth_md,
                      "## Cycles, then objarena.collect()", cycle_md])
    print(md)
    os.makedirs(args.out, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    with open(os.path.join(args.out, f"worker{suffix}.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(args.out, f"worker{suffix}.json"), "w") as f:
        json.dump({"python": sys.version.split()[0], "cost": cost_rows, "growth": growth, "cycles": cycles,
                   "seconds": time.time() - started}, f, indent=1)
    print(f"\nwrote {os.path.join(args.out, f'worker{suffix}.md')} ({time.time() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
