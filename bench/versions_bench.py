"""The worker benchmark's figures per CPython version, side by side in one run.

    python bench/versions_bench.py 3.11=/path/python3.11 3.14=/path/python3.14 ...
        [--rounds 3] [--heaps 0,1000000] [--marks 400,1000] [--out FILE.json]

Each interpreter needs objarena importable (its own build on PYTHONPATH:
VERSION=python:PYTHONPATH, e.g. 3.14=/work/venvs/314/bin/python:/build/314/lib:pyext).
Runs bench/worker_bench.py's children (same job, same code) for every
interpreter, alternating interpreters round by round so that the machine's
load falls on all of them alike, and reports min-of-rounds:

1. cost per task of the ~50 us job at each heap size: job alone, bare scope,
   pool scope, and the ratios (the issue's targets: bare <= 1.3x, pool <= 1.1x);
2. RSS growth after N tasks each keeping 0.1% of 40k records: plain, bare,
   pool, and the ratios to plain (target <= 1.2x).

Prints one Markdown table per part with a column per interpreter.
"""
import argparse
import json
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import worker_bench  # noqa: E402  (its child programs)


def run_child(python, pythonpath, code, *args):
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([python, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{python}: child failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pythons", nargs="+", help="VERSION=python[:PYTHONPATH]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--heaps", default="0,1000000")
    ap.add_argument("--marks", default="400")
    ap.add_argument("--cost-rounds", type=int, default=7, help="rounds inside each cost child (median)")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--out")
    args = ap.parse_args()
    pythons = []
    for spec in args.pythons:
        name, _, rest = spec.partition("=")
        python, _, pp = rest.partition(":")
        pythons.append((name, python, pp))
    heaps = [int(h) for h in args.heaps.split(",")]
    marks = args.marks
    cost = {(n, h): [] for n, _, _ in pythons for h in heaps}
    growth = {n: [] for n, _, _ in pythons}
    for r in range(args.rounds):
        for name, python, pp in pythons:
            for h in heaps:
                print(f"  round {r + 1}: {name} cost, heap {h:,}", file=sys.stderr, flush=True)
                cost[name, h].append(run_child(python, pp, worker_bench.COST_CHILD, h, args.cost_rounds,
                                               args.tasks, 2)["us_per_task"])
            g = {}
            for variant in ("plain", "bare", "pool"):
                print(f"  round {r + 1}: {name} growth {variant}", file=sys.stderr, flush=True)
                g[variant] = run_child(python, pp, worker_bench.GROWTH_CHILD, variant, 40_000, marks)["marks"]
            growth[name].append(g)
    names = [n for n, _, _ in pythons]
    lines = ["| per task (~50 us job), min of %d runs | %s |" % (args.rounds, " | ".join(names)),
             "|---|" + "---|" * len(names)]
    for h in heaps:
        best = {n: {k: min(run[k] for run in cost[n, h]) for k in cost[n, h][0]} for n in names}
        for label, key in (("job alone", "job alone"), ("bare scope", "bare scope"), ("pool scope", "pool scope")):
            lines.append(f"| {h:,} tracked: {label} | " + " | ".join(f"{best[n][key]:.1f} us" for n in names) + " |")
        ratios = {n: [(run["bare scope"] / run["job alone"], run["pool scope"] / run["job alone"])
                      for run in cost[n, h]] for n in names}
        lines.append(f"| {h:,} tracked: bare / alone (min) | " +
                     " | ".join(f"{min(b for b, _ in ratios[n]):.2f}x" for n in names) + " |")
        lines.append(f"| {h:,} tracked: pool / alone (min) | " +
                     " | ".join(f"{min(p for _, p in ratios[n]):.2f}x" for n in names) + " |")
        lines.append(f"| {h:,} tracked: fixed cost, bare - alone | " +
                     " | ".join(f"{best[n]['bare scope'] - best[n]['job alone']:.1f} us" for n in names) + " |")
    lines.append("")
    lines.append("| RSS growth, tasks keeping 0.1%% (min of %d) | %s |" % (args.rounds, " | ".join(names)))
    lines.append("|---|" + "---|" * len(names))
    for i, m in enumerate(marks.split(",")):
        for variant in ("plain", "bare", "pool"):
            lines.append(f"| {m} tasks: {variant} | " + " | ".join(
                f"+{min(run[variant][i]['rss_growth_mib'] for run in growth[n]):.1f} MiB" for n in names) + " |")
        for variant in ("bare", "pool"):
            lines.append(f"| {m} tasks: {variant} / plain | " + " | ".join(
                "%.2fx" % min(run[variant][i]["rss_growth_mib"] / max(run["plain"][i]["rss_growth_mib"], 0.1)
                              for run in growth[n]) for n in names) + " |")
    md = "\n".join(lines)
    print(md)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"cost": {f"{n}/{h}": v for (n, h), v in cost.items()}, "growth": growth,
                       "pythons": pythons, "table": md}, f, indent=1)


if __name__ == "__main__":
    main()
