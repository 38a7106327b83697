"""Exit cost of a 100k-object phase against the size of the rest of the heap.

    python bench/exit_cost.py            # ~1-2 minutes on the 2-core VM
    python bench/exit_cost.py --quick    # fewer exits (smoke run)

A phase builds 100k tracked objects (50k record dicts holding a list each,
a reference cycle per 100 records),
aggregates them and drops them; CPython's own young collections during it
promote part of them to generation 2. The exit is timed (wall time from the
last statement of the `with` block to the statement after it) while the
process holds 0, 1M or 3M long-lived tracked objects. Each heap size runs in
its own child process; children alternate over rounds; min over all exits.
Columns: the default exit (phase collection, issue 21) and
scope(collect="full") (a full collection at every exit, what an exit costs
that walks the whole heap). Ratios are against the empty heap's default
exit. Target (issue 21): <= 1.2x at 1M and 3M.
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import gc, json, sys, time
import objarena
heap, exits = int(sys.argv[1]), int(sys.argv[2])
state = [[i] for i in range(heap)]  # long-lived tracked objects
gc.collect()

def phase_work():
    # 50k records of a dict and a list each: 100k tracked objects
    rows = [{"id": i, "name": str(i), "tags": [i, i * 0.5]} for i in range(50_000)]
    for i in range(0, len(rows), 100):
        rows[i]["self"] = rows[i]  # garbage only a collection finds
    return sum(r["tags"][1] for r in rows)

def one(collect):
    with objarena.scope(collect=collect) as phase:
        phase_work()
        t0 = time.perf_counter()
    t1 = time.perf_counter()
    return t1 - t0, phase.stats["exit_collection"], phase.stats["phase_objects"]

out = {"default": [], "full": [], "kinds": {}, "phase_objects": []}
for _ in range(exits):
    for mode, collect in (("default", True), ("full", "full")):
        s, kind, moved = one(collect)
        out[mode].append(s)
        if mode == "default":
            out["kinds"][kind] = out["kinds"].get(kind, 0) + 1
            out["phase_objects"].append(moved)
print(json.dumps(out))
"""


def run(heap, exits):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(heap), str(exits)], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"child failed (heap {heap}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    heaps = (0, 1_000_000, 3_000_000)
    rounds = args.rounds or (1 if args.quick else 2)
    exits = 3 if args.quick else 6
    results = {h: {"default": [], "full": [], "kinds": {}, "phase_objects": []} for h in heaps}
    for r in range(rounds):
        order = heaps if r % 2 == 0 else heaps[::-1]
        for h in order:
            got = run(h, exits)
            for k in ("default", "full", "phase_objects"):
                results[h][k] += got[k]
            for k, v in got["kinds"].items():
                results[h]["kinds"][k] = results[h]["kinds"].get(k, 0) + v
    base = min(results[0]["default"])
    v = sys.version.split()[0]
    load = os.getloadavg()[0]
    print(f"## Exit of a 100k-object phase vs heap size (Python {v}, load {load:.1f}, min of {rounds * exits})\n")
    print("| live tracked objects | default exit (ms) | vs empty heap | exit kinds | objects moved back (median) "
          "| collect=\"full\" exit (ms) |")
    print("|---|---|---|---|---|---|")
    for h in heaps:
        d, f = min(results[h]["default"]), min(results[h]["full"])
        moved = sorted(results[h]["phase_objects"])[len(results[h]["phase_objects"]) // 2]
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(results[h]["kinds"].items()))
        print(f"| {h:,} | {d * 1e3:.1f} | {d / base:.2f}x | {kinds} | {moved:,} | {f * 1e3:.1f} |")


if __name__ == "__main__":
    main()
