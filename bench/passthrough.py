"""Pass-through cost of the installed hook outside scopes, on allocation-heavy
Python code: the same workload in fresh processes, alternating "hook never
installed" and "hook installed (one empty scope entered and left)", many
rounds, median CPU time of each. Prints the ratio.

    python bench/passthrough.py [--rounds 15]
"""
import argparse
import statistics
import subprocess
import sys

CHILD = r"""
import resource, sys, time
import objarena
if sys.argv[1] == "hook":
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
    times = {"plain": [], "hook": []}
    for r in range(args.rounds):
        for mode in (("plain", "hook") if r % 2 == 0 else ("hook", "plain")):
            out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
            times[mode].append(float(out.stdout.strip()))
    plain, hook = statistics.median(times["plain"]), statistics.median(times["hook"])
    print(f"pass-through (hook installed, no scope) vs never installed, {args.rounds} rounds, "
          f"median CPU s: {hook:.3f} vs {plain:.3f} -> overhead {100 * (hook / plain - 1):+.1f}%")


if __name__ == "__main__":
    main()
