"""The main job: a batch worker runs phases, and we compare how fast each
phase runs and how much memory the process holds, per allocator strategy.

Every variant runs in a fresh interpreter so they cannot disturb each other.
Workloads (one phase each, repeated):
  dicts   build 200k small dicts, aggregate, drop them all
  keep    build 300k (i, str(i), [i]) tuples, keep every 1000th (results escape)
Variants:
  pymalloc         CPython's default allocator
  objarena.scope   each phase inside `with objarena.scope():`
  objarena.run     each phase as `objarena.run(job)` (result copied out)
  objarena.Pool    each phase in `pool.scope()` of one `objarena.Pool`: warm
                   chunks between phases; RSS after is measured once the
                   pool is closed (the end of the batch gives them back)
  glibc            PYTHONMALLOC=malloc
Columns: median phase time, peak RSS during the phases, RSS after the last
phase (what a long-lived worker keeps), and each against pymalloc.

    python examples/compare_phases.py [--phases 6]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

CHILD = r"""
import gc, json, os, sys, time

def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass

def dicts_phase():
    rows = [{"id": i, "group": i % 97, "value": i * 0.5} for i in range(200_000)]
    totals = {}
    for r in rows:
        totals[r["group"]] = totals.get(r["group"], 0.0) + r["value"]
    return []  # nothing escapes

def keep_phase():
    items = [(i, str(i), [i]) for i in range(300_000)]
    return items[::1000]  # 0.1% of the phase's objects escape

variant, workload, phases = sys.argv[1], sys.argv[2], int(sys.argv[3])
job = {"dicts": dicts_phase, "keep": keep_phase}[workload]
if variant.startswith("objarena"):
    import objarena
kept = []
pool = objarena.Pool() if variant == "objarena.Pool" else None
gc.collect()
base = rss_kib("VmRSS")
reset_peak()
times = []
for _ in range(phases):
    t0 = time.perf_counter()
    if variant == "objarena.scope":
        with objarena.scope():
            kept.extend(job())
    elif variant == "objarena.run":
        kept.extend(objarena.run(job))
    elif variant == "objarena.Pool":
        with pool.scope():
            kept.extend(job())
    else:
        kept.extend(job())
        gc.collect()
    times.append(time.perf_counter() - t0)
if pool is not None:
    pool.close()  # the batch is over: its warm chunks (and the C heap) go back
print(json.dumps({"times": times, "base_kib": base, "peak_kib": rss_kib("VmHWM"),
                  "after_kib": rss_kib("VmRSS"), "kept": len(kept)}))
"""

VARIANTS = {
    "pymalloc": {},
    "objarena.scope": {},
    "objarena.run": {},
    "objarena.Pool": {},
    "glibc malloc": {"PYTHONMALLOC": "malloc"},
}


def run_variant(variant, workload, phases):
    env = dict(os.environ)
    env.update(VARIANTS[variant])
    mode = "objarena.scope" if variant == "objarena.scope" else variant
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, workload, str(phases)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", type=int, default=6)
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    results = {}
    print(f"Python {sys.version.split()[0]}, {args.phases} phases per run, one fresh process per variant\n")
    for workload in ("dicts", "keep"):
        print(f"### workload: {workload}\n")
        print("| variant | median phase s | vs pymalloc | peak RSS MiB | RSS after MiB | vs pymalloc |")
        print("|---|---|---|---|---|---|")
        base = None
        for variant in VARIANTS:
            r = run_variant(variant, workload, args.phases)
            results[f"{workload}/{variant}"] = r
            t = statistics.median(r["times"])
            after = (r["after_kib"] - r["base_kib"]) / 1024
            peak = (r["peak_kib"] - r["base_kib"]) / 1024
            if base is None:
                base = (t, max(after, 0.1))
            print(f"| {variant} | {t:.3f} | {t / base[0]:.2f}x | {peak:.1f} | {after:.1f} | "
                  f"{after / base[1]:.2f}x |")
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
