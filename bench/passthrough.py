"""Pass-through cost of the installed hook outside scopes, on allocation-heavy
Python code: the same workload in fresh processes, rotating "hook never
installed", "hook installed (one empty scope entered and left)" with the
default thin face, and the same with OBJARENA_PASSTHROUGH=full (the full
hook stays installed outside scopes), many rounds, median CPU time of each.
Prints the ratios.

CPU time on this VM moves by a few percent between identical runs, which is
the size of the effect. --instructions counts instructions instead (valgrind's
cachegrind, PYTHONHASHSEED=0): each mode runs the workload once and three
times, and the difference, divided by two, is one run's instructions with
start-up and import cancelled out. Deterministic to a few in a million, and
it sees every instruction the hook adds (not what they cost in time).

    python bench/passthrough.py [--rounds 15] [--instructions]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

CHILD = r"""
import resource, sys, time
import objarena
if sys.argv[1] != "plain":
    with objarena.scope():
        pass
def work():
    acc = 0
    for i in range(300_000):
        rec = {"id": i, "name": "n%d" % i, "pair": (i, i + 1), "vals": [i, i * 2.5]}
        acc += len(rec["name"]) + len(rec["vals"])
    return acc
if len(sys.argv) > 2:  # --instructions: run work() that many times, print nothing
    for _ in range(int(sys.argv[2])):
        work()
    sys.exit(0)
work()
t0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
for _ in range(5):
    work()
print(resource.getrusage(resource.RUSAGE_SELF).ru_utime - t0)
"""
MODES = ("plain", "thin", "full")
LABELS = (("thin", "thin face (default)"), ("full", "full face (OBJARENA_PASSTHROUGH=full)"))


def mode_env(mode, **extra):
    return dict(os.environ, OBJARENA_PASSTHROUGH="full" if mode == "full" else "thin", **extra)


def instructions(mode, runs):
    """Instructions executed by a child that runs work() `runs` times (cachegrind)."""
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, "-c", CHILD, mode, str(runs)],
                         capture_output=True, text=True, check=True, env=mode_env(mode, PYTHONHASHSEED="0"))
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if not m:
        sys.exit("passthrough.py: no instruction count in valgrind's output:\n" + out.stderr[-2000:])
    return int(m.group(1).replace(",", ""))


def count_instructions():
    if not shutil.which("valgrind"):
        sys.exit("passthrough.py --instructions needs valgrind (apt-get install valgrind)")
    per_run = {m: (instructions(m, 3) - instructions(m, 1)) / 2 for m in MODES}
    print("pass-through outside scopes vs hook never installed, instructions per run of the workload "
          "(cachegrind, PYTHONHASHSEED=0):")
    print(f"  hook never installed: {per_run['plain']:,.0f}")
    for m, label in LABELS:
        print(f"  {label}: {per_run[m]:,.0f} -> overhead {100 * (per_run[m] / per_run['plain'] - 1):+.2f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--instructions", action="store_true", help="count instructions (valgrind) instead of timing")
    args = ap.parse_args()
    if args.instructions:
        return count_instructions()
    times = {m: [] for m in MODES}
    for r in range(args.rounds):
        for i in range(len(MODES)):
            mode = MODES[(i + r) % len(MODES)]
            out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                                 env=mode_env(mode))
            times[mode].append(float(out.stdout.strip()))
    med = {m: statistics.median(times[m]) for m in MODES}
    print(f"pass-through outside scopes vs hook never installed, {args.rounds} rounds, median CPU s:")
    for m, label in LABELS:
        print(f"  {label}: {med[m]:.3f} vs {med['plain']:.3f} -> overhead {100 * (med[m] / med['plain'] - 1):+.1f}%")

if __name__ == "__main__":
    main()
