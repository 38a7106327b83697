"""Prints the three summary tables of docs/benchmarks.md (phase time, peak RSS, RSS held)
from a bench/run.py JSON file (summary.json, or a raw latest-raw.json), so
docs/benchmarks.md shows a real run, not a copy.

    python bench/readme_tables.py [bench/results/summary.json]
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def table(results, workloads, variants, title, cell):
    lines = [title, "", "| workload | " + " | ".join(variants) + " |",
             "|---|" + "---:|" * len(variants)]
    for wl in workloads:
        base = (results[wl].get("pymalloc") or {}).get("summary")
        cells = []
        for v in variants:
            s = (results[wl].get(v) or {}).get("summary")
            cells.append(cell(s, base) if s and base else "—")
        lines.append(f"| {wl} | " + " | ".join(cells) + " |")
    return lines + [""]


def main(path):
    with open(path) as f:
        data = json.load(f)
    results = data["results"]
    workloads = list(results)
    variants = [v for v in results[workloads[0]] if any(
        (results[wl].get(v) or {}).get("summary") for wl in workloads)]

    def time_cell(s, base):
        return f"{s['time_s'] / base['time_s']:.2f}x"

    def peak_cell(s, base):
        return f"{s['peak_abs_mib']:.1f}" + ("" if s is base else f" ({s['peak_abs_mib'] / base['peak_abs_mib']:.2f}x)")

    def held_cell(s, base):
        held, ref = s["rss_after_n_mib"], base["rss_after_n_mib"]
        if s is base or ref < 1.0 or held < 0:
            return f"{held:.1f}"
        return f"{held:.1f} ({held / ref:.2f}x)"

    out = []
    out += table(results, workloads, variants, "Phase wall time, against pymalloc:", time_cell)
    out += table(results, workloads, variants, "Peak RSS of the whole process during the phases, MiB:", peak_cell)
    out += table(results, workloads, variants,
                 "RSS still held after 6 phases (above the process's baseline before the first phase), MiB:",
                 held_cell)
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "summary.json"))
