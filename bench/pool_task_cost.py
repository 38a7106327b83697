"""What a scope per ~50 us task costs (issue 21's "per-task pool scope"),
side by side in one process: the worker benchmark's job alone, in a pool
scope and in a bare scope, interleaved round by round.

    python bench/pool_task_cost.py [LIVE_OBJECTS]            # timed, default 1,000,000
    python bench/pool_task_cost.py --instructions [LIVE]     # callgrind, per task

--instructions runs this file under valgrind's callgrind (which timing noise
does not move) with 0 and 300 tasks per variant and prints
(I(300) - I(0)) / 300 per variant and the ratios to the job alone.
"""
import gc
import os
import re
import statistics
import subprocess
import sys
import time


def job():
    # ~50 us (3.11, this VM): 400 small dicts and one reference cycle
    recs = [{"id": i, "v": i * 2} for i in range(400)]
    a = [recs]
    a.append(a)
    return sum(r["v"] for r in recs)


def variants():
    import objarena

    pool = objarena.Pool()

    def plain(k):
        for _ in range(k):
            job()

    def pooled(k):
        for _ in range(k):
            with pool.scope():
                job()

    def bare(k):
        for _ in range(k):
            with objarena.scope():
                job()

    return {"job alone": plain, "pool scope": pooled, "bare scope": bare}


def timed(live):
    state = [[i] for i in range(live)]  # long-lived tracked objects
    gc.collect()
    vs = variants()
    rounds, tasks = 15, 200
    for f in vs.values():
        f(20)
    samples = {k: [] for k in vs}
    for _ in range(rounds):
        for k, f in vs.items():
            t = time.perf_counter()
            f(tasks)
            samples[k].append((time.perf_counter() - t) / tasks * 1e6)
    med0, min0 = statistics.median(samples["job alone"]), min(samples["job alone"])
    print(f"Python {sys.version.split()[0]}, {live:,} live objects, load {os.getloadavg()[0]:.1f}")
    print("| variant | median us | / alone | min us | / alone |\n|---|---|---|---|---|")
    for k, s in samples.items():
        print(f"| {k} | {statistics.median(s):.1f} | {statistics.median(s) / med0:.2f}x | {min(s):.1f} | {min(s) / min0:.2f}x |")
    del state


def child(live, variant, tasks):
    state = [[i] for i in range(live)]
    gc.collect()
    variants()[variant](tasks)
    del state


def instructions(live):
    counts = {}
    for variant in ("job alone", "pool scope", "bare scope"):
        refs = []
        for tasks in (0, 300):
            out = subprocess.run(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
                 "--child", str(live), variant, str(tasks)],
                capture_output=True, text=True, check=True).stderr
            refs.append(int(re.search(r"refs:\s*([\d,]+)", out).group(1).replace(",", "")))
        counts[variant] = (refs[1] - refs[0]) / 300
    print(f"Python {sys.version.split()[0]}, {live:,} live objects, callgrind instructions per task")
    print("| variant | instructions | / alone |\n|---|---|---|")
    for k, n in counts.items():
        print(f"| {k} | {n:,.0f} | {n / counts['job alone']:.3f}x |")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--child":
        child(int(args[1]), args[2], int(args[3]))
    elif args and args[0] == "--instructions":
        instructions(int(args[1]) if len(args) > 1 else 100_000)
    else:
        timed(int(args[0]) if args else 1_000_000)
