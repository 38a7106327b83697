"""Pass-through cost of the installed hook outside scopes, on allocation-heavy
Python code: the same workload in fresh processes, rotating "hook never
installed", "hook installed (one empty scope entered and left)" with the
default thin face, and the same with OBJARENA_PASSTHROUGH=full (the full
hook stays installed outside scopes), many rounds, median CPU time of each.
Prints the ratios.

    python bench/passthrough.py [--rounds 15]
"""
import argparse
import os
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
work()
t0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
for _ in range(5):
    work()
print(resource.getrusage(resource.RUSAGE_SELF).ru_utime - t0)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    modes = ("plain", "thin", "full")
    times = {m: [] for m in modes}
    for r in range(args.rounds):
        for i in range(len(modes)):
            mode = modes[(i + r) % len(modes)]
            env = dict(os.environ, OBJARENA_PASSTHROUGH="full" if mode == "full" else "thin")
            out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                                 env=env)
            times[mode].append(float(out.stdout.strip()))
    med = {m: statistics.median(times[m]) for m in modes}
    print(f"pass-through outside scopes vs hook never installed, {args.rounds} rounds, median CPU s:")
    for m, label in (("thin", "thin face (default)"), ("full", "full face (OBJARENA_PASSTHROUGH=full)")):
        print(f"  {label}: {med[m]:.3f} vs {med['plain']:.3f} -> overhead {100 * (med[m] / med['plain'] - 1):+.1f}%")

if __name__ == "__main__":
    main()
