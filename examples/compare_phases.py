"""The main job: run each example's batch job phase after phase, once per
allocator variant, each run in a fresh process, and compare time and memory.

    python examples/compare_phases.py [--full] [--examples etl,worker] [--variants pymalloc,objarena.run]
                                      [--out-dir DIR] [--no-chart] [--publish]

(./tools/run_examples sets up a venv with objarena and requirements-dev.txt and runs this.)

Variants:
  pymalloc        CPython's default allocator; gc.collect() after each phase
  objarena.scope  each phase in `with objarena.scope():` (what it returns is kept: it escapes)
  objarena.run    each phase as `objarena.run(job, batch)` (the result is copied out)
  objarena.Pool   each phase in `pool.scope()` of one Pool; the pool is closed after the last phase
  glibc           PYTHONMALLOC=malloc
  jemalloc, mimalloc  PYTHONMALLOC=malloc + LD_PRELOAD, only where `ldconfig -p` lists the library
An example may run the objarena variants its own way (its module's job_scoped: the async service opens a
scope per request task) and may not apply to some (phase_child.NOT_APPLYING: no child, "—" in the tables).

While a run goes, this process samples the child's RSS from /proc/<pid>/statm
(a few hundred times per run; reading it neither takes the child's GIL nor
allocates in its arena). Written to --out-dir (default .cache/examples/ in the
repository): examples.png (RSS over time, one panel per example), summary.json
(every figure in the tables) and samples.json (the raw RSS samples).
--publish also writes the chart and the JSON into docs/, the README's table
and docs/examples.md's tables (between their markers), all from this run.

"held" is the RSS when the job is over (its last scope exited, a pool closed)
above the same process before the job (the example imported, its input not
yet made): one baseline for every variant, with the end RSS beside it.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from run import base_env, find_lib  # noqa: E402  bench/run.py: a clean child environment, library lookup

from phase_child import EXAMPLES, NOT_APPLYING, VARIANTS  # noqa: E402

CHILD = os.path.join(HERE, "phase_child.py")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024.0


LOG = []  # the progress lines, for --publish


def log(msg):
    print(msg, flush=True)


def note(msg):
    """A line of the run's progress: printed, and kept for --publish."""
    LOG.append(msg)
    log(msg)


def source_revision():
    """The checkout's commit, and whether objarena's sources differ from it (what the venv built)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "arena", "pyext", "setup.py"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return None
    return (rev + (" with local changes to arena/, pyext/ or setup.py" if dirty else "")) or None


def ldconfig_lib(name):
    """Path of lib<name> if the dynamic linker knows it (ldconfig -p), else None."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        listing = ""
    for line in listing.splitlines():
        if line.strip().startswith(f"lib{name}.so") and "=>" in line:
            return line.split("=>")[1].strip()
    return find_lib(name, None)


def plan(variants):
    """{variant: extra environment} for the variants this machine can run; prints what it skips."""
    out = {}
    for v in variants:
        if v in ("jemalloc", "mimalloc"):
            lib = ldconfig_lib(v)
            if lib is None:
                note(f"skip {v}: lib{v} is not installed (ldconfig -p)")
                continue
            out[v] = {"PYTHONMALLOC": "malloc", "LD_PRELOAD": lib}
        elif v == "glibc":
            out[v] = {"PYTHONMALLOC": "malloc"}
        else:
            out[v] = {}
    return out


def run_sampled(example, variant, extra_env, size, interval):
    """Runs one child, sampling its RSS; returns (child's JSON, [(monotonic s, RSS KiB)])."""
    env = base_env(None)  # without the caller's PYTHONMALLOC, LD_PRELOAD...
    sanitizers = os.environ.get("LD_PRELOAD", "") if os.environ.get("OBJARENA_ASAN") == "1" else ""
    env.update(extra_env)
    if sanitizers:  # under --config=asan the ASan runtime must stay first in every process
        env["LD_PRELOAD"] = sanitizers + (":" + extra_env["LD_PRELOAD"] if "LD_PRELOAD" in extra_env else "")
    cmd = [sys.executable, CHILD, example, variant, "--size", size]
    samples = []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=HERE)
        statm = f"/proc/{proc.pid}/statm"
        while proc.poll() is None:
            try:
                with open(statm) as f:
                    rss = int(f.read().split()[1]) * PAGE // 1024
                samples.append((time.monotonic(), rss))
            except (OSError, ValueError, IndexError):  # the child is exiting
                pass
            time.sleep(interval)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        raise RuntimeError(f"{example}/{variant} failed with exit status {proc.returncode}: {last}\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1]), samples


def figures(res):
    """One run's figures, MiB above the process before the job (before_job_kib, the one baseline of every
    variant) unless said otherwise."""
    ph = res["phases"]
    base = res["before_job_kib"]
    f = {
        "phases": len(ph),
        "median_phase_s": statistics.median(p["t1"] - p["t0"] for p in ph),
        "median_phase_cpu_s": statistics.median(p["cpu_s"] for p in ph),
        "before_job_mib": base / MIB,
        "input_mib": (res["baseline_kib"] - base) / MIB,  # the input, made and warmed up before the phases
        "peak_mib": max(p["hwm_kib"] for p in ph) / MIB,  # the whole process, during the phases
        "rss_after_each_mib": [round((p["rss_after_kib"] - base) / MIB, 2) for p in ph],
        # the job is over: the last scope exited, a pool is closed (the chart's line ends here too)
        "held_mib": (res["rss_end_kib"] - base) / MIB,
        "end_rss_mib": res["rss_end_kib"] / MIB,
        "minflt_per_phase": statistics.median(p["minflt"] for p in ph),
    }
    if "rss_after_close_kib" in res:
        f["held_before_close_mib"] = (res["rss_after_last_kib"] - base) / MIB
    stats = [p["stats"] for p in ph if "stats" in p]
    if stats:
        released = sum(s["bytes_released"] for s in stats)
        retained = sum(s["bytes_retained"] for s in stats)
        f["released_share"] = released / (released + retained) if released + retained else 1.0
        f["escaped_blocks"] = sum(s["live_blocks_at_exit"] for s in stats)
        f["phases_with_escapes"] = sum(1 for s in stats if s["live_blocks_at_exit"])
        f["alloc_fallbacks"] = sum(s["alloc_fallbacks"] for s in stats)
    scopes = [p["scopes"] for p in ph if "scopes" in p]
    if scopes:  # the example's own scopes (a task scope per request): the stats above are summed over them
        f["scopes_per_phase"] = statistics.median(scopes)
    return f


def ratio(x, base, floor=0.0):
    if base is None or x is None or base <= floor or x < 0:
        return "—"
    return f"{x / base:.2f}x"


def held(f):
    """What the process holds once the job is over (a pool: after closing it), above the process before it."""
    return f["held_mib"]


def pick(seq, k=6):
    """Up to k evenly spread (index, value) pairs, always the first and the last."""
    if len(seq) <= k:
        return list(enumerate(seq))
    idx = sorted({round(i * (len(seq) - 1) / (k - 1)) for i in range(k)})
    return [(i, seq[i]) for i in idx]


def example_table(name, figs, variants=VARIANTS):
    """The example's table; a variant of `variants` that does not apply to it (NOT_APPLYING) gets a row of "—"."""
    base = figs.get("pymalloc")
    absent = {v: why for v, why in NOT_APPLYING.get(name, {}).items() if v in variants}
    n = next(iter(figs.values()))["phases"]
    cols = ", ".join(str(i + 1) for i, _ in pick(list(range(n))))
    lines = [f"### {name} ({n} phases)", "",
             f"| variant | median phase s | × pymalloc | CPU s | × pymalloc | peak RSS MiB | × pymalloc | input MiB | "
             f"RSS after phases {cols}, MiB | held at end MiB | × pymalloc | RSS at end MiB | released at exit | "
             "escaped blocks |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for v in [v for v in VARIANTS if v in figs or v in absent] + [v for v in figs if v not in VARIANTS]:
        if v in absent:
            lines.append(f"| {v} |" + " — |" * 13)
            continue
        f = figs[v]
        after = " ".join(f"{x:.1f}" for _, x in pick(f["rss_after_each_mib"]))
        share = f"{f['released_share']:.1%}" if "released_share" in f else "—"
        esc = (f"{f['escaped_blocks']} in {f['phases_with_escapes']} phase(s)" if f.get("escaped_blocks")
               else ("0" if "escaped_blocks" in f else "—"))
        lines.append(
            f"| {v} | {f['median_phase_s']:.3f} | {ratio(f['median_phase_s'], base and base['median_phase_s'])} | "
            f"{f['median_phase_cpu_s']:.3f} | {ratio(f['median_phase_cpu_s'], base and base['median_phase_cpu_s'])} | "
            f"{f['peak_mib']:.1f} | {ratio(f['peak_mib'], base and base['peak_mib'])} | {f['input_mib']:.1f} | "
            f"{after} | {held(f):.1f} | {ratio(held(f), base and held(base), 1.0)} | {f['end_rss_mib']:.1f} | "
            f"{share} | {esc} |")
    notes = [f"{v}: does not apply ({why})." for v, why in absent.items()]
    per = sorted({f["scopes_per_phase"] for f in figs.values() if "scopes_per_phase" in f})
    if per:
        notes.append(f"The objarena variants open a scope per task ({', '.join(f'{x:g}' for x in per)} per phase, "
                     "median): released at exit and escaped blocks are summed over them.")
    return lines + ([""] + [" ".join(notes)] if notes else []) + [""]


HELD_NOTE = ("held: MiB of RSS at the end of the job (after its last phase; a Pool: after closing it) above the same "
             "process before the job (example module imported, input not yet made), the same baseline for every "
             "allocator; it includes the input, which the job keeps. In brackets: the RSS at the end, MiB.")


def summary_table(results):
    variants = [v for v in VARIANTS if any(v in figs for figs in results.values())]
    lines = [HELD_NOTE + " × pymalloc: held against pymalloc's; CPU: median phase CPU time against pymalloc's.",
             "",
             "| example | phases | " + " | ".join(variants) + " |", "|---|---:|" + "---:|" * len(variants)]
    for name, figs in results.items():
        base = figs.get("pymalloc")
        cells = []
        for v in variants:
            f = figs.get(v)
            if f is None:
                cells.append("—")
                continue
            cell = f"{held(f):.1f} ({f['end_rss_mib']:.1f})"
            if f is not base and base:
                r = ratio(held(f), held(base), 1.0)
                cell += (f", {r}" if r != "—" else "") + \
                    f", {ratio(f['median_phase_cpu_s'], base['median_phase_cpu_s'])} CPU"
            cells.append(cell)
        n = next(iter(figs.values()))["phases"]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines + [""]


LABELS = {"etl": "ETL, CSV + JSON lines", "compiler": "compile a stdlib slice", "worker": "worker, one job per phase",
          "networkx": "networkx graphs", "async": "asyncio service, a scope per request task"}


def readme_table(results):
    """The README's table: held (end RSS) per variant, and objarena.run's peak and phase CPU time."""
    variants = [v for v in VARIANTS if any(v in figs for figs in results.values())]
    head = ["example", "phases"] + [f"`{v}`" if v.startswith("objarena") else v for v in variants] + \
        ["`run`: peak RSS", "`run`: phase CPU time"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, figs in results.items():
        base, run = figs.get("pymalloc"), figs.get("objarena.run")
        cells = [LABELS.get(name, name), str(next(iter(figs.values()))["phases"])]
        for v in variants:
            f = figs.get(v)
            if f is None:
                cells.append("—")
                continue
            r = ratio(held(f), held(base), 1.0) if base and f is not base else "—"
            cells.append(f"{held(f):.1f} ({f['end_rss_mib']:.1f})" + (f" {r}" if r != "—" else ""))
        cells.append(ratio(run["peak_mib"], base["peak_mib"]) if run and base else "—")
        cells.append(ratio(run["median_phase_cpu_s"], base["median_phase_cpu_s"]) if run and base else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(name, figs):
    base, run = figs.get("pymalloc"), figs.get("objarena.run") or figs.get("objarena.scope")
    if base is None or run is None:
        return f"{name}: no comparison (pymalloc or objarena variants not run)"
    label = "objarena.run" if "objarena.run" in figs else "objarena.scope"
    n = base["phases"]
    t = ratio(run["median_phase_cpu_s"], base["median_phase_cpu_s"])

    peak = ratio(run["peak_mib"], base["peak_mib"])
    diff = held(base) - held(run)
    both = (f"{label} held {held(run):.1f} MiB (RSS at end {run['end_rss_mib']:.1f}), pymalloc {held(base):.1f} MiB "
            f"({base['end_rss_mib']:.1f}) after {n} phases")
    if diff < -1.0:
        words = f"{name}: objarena holds more here: {both}; phase CPU time {t}, peak {peak}"
    elif diff <= 1.0:
        words = f"{name}: about the same (within 1 MiB): {both}; phase CPU time {t}, peak {peak}"
    else:
        words = f"{name}: {diff:.1f} MiB less: {both}; phase CPU time {t}, peak {peak}"
    bare = figs.get("objarena.scope")
    if bare and bare.get("phases_with_escapes"):
        where = "its task scopes" if "scopes_per_phase" in bare else "a bare scope"
        words += (f"; in {where} {bare['escaped_blocks']} block(s) escaped in "
                  f"{bare['phases_with_escapes']} of {n} phases")
    return words


README_BEGIN, README_END = "<!-- examples-run:begin (./tools/run_examples --publish) -->", "<!-- examples-run:end -->"
DOC_BEGIN, DOC_END = "<!-- examples-tables:begin (./tools/run_examples --publish) -->", "<!-- examples-tables:end -->"


def replace_between(path, begin, end, body):
    """Replaces what lies between the markers begin and end in the file at path (both must be there)."""
    with open(path) as f:
        text = f.read()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"--publish: {path} has no {begin} ... {end} section")
    with open(path, "w") as f:
        f.write(text[:i + len(begin)] + "\n" + body.rstrip("\n") + "\n" + text[j:])


def run_line(meta):
    return (f"{meta['date'][:16].replace('T', ' ')} UTC, Python {meta['python']}, objarena built from "
            f"{meta['checkout'] or 'an unknown checkout'}, {meta['machine']}, load average "
            f"{meta['loadavg_start']}-{meta['loadavg_end']}, {meta['size']} inputs, {meta['wall_s']:.0f} s")


def publish(results, verdicts, meta, log_lines, png):
    """--publish: the chart, the JSON, the README's table and docs/examples.md's tables, all from this run."""
    import shutil
    docs = os.path.join(ROOT, "docs")
    os.makedirs(os.path.join(docs, "img"), exist_ok=True)
    if png:
        shutil.copyfile(png, os.path.join(docs, "img", "examples.png"))
    with open(os.path.join(docs, "examples-summary.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "verdicts": verdicts}, f, indent=1)
    readme = [f"From one run of `./tools/run_examples --publish` ({run_line(meta)}; "
              "[docs/examples-summary.json](docs/examples-summary.json)):", "",
              "![RSS over time of each example, per allocator variant](docs/img/examples.png)", "",
              HELD_NOTE + " After it, `× pymalloc`: held against pymalloc's. For `objarena.run`: peak RSS and "
              "median phase CPU time against pymalloc's.", ""] + readme_table(results) + \
             ["", "What the run printed:", ""] + [f"- {v}" for v in verdicts]
    replace_between(os.path.join(ROOT, "README.md"), README_BEGIN, README_END, "\n".join(readme))
    doc = [f"{run_line(meta)}. The chart is [img/examples.png](img/examples.png), the JSON "
           "[examples-summary.json](examples-summary.json). What it printed:", "", "```"] + log_lines + ["```", ""]
    for name in results:
        doc += ["#" + line if line.startswith("### ") else line
                for line in example_table(name, results[name], meta["variants_run"])]
    doc += ["Verdicts, as printed:", "", "```"] + verdicts + ["```"]
    replace_between(os.path.join(docs, "examples.md"), DOC_BEGIN, DOC_END, "\n".join(doc))
    log("published: docs/img/examples.png, docs/examples-summary.json, README.md and docs/examples.md tables")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="bigger inputs (the whole stdlib for the compiler)")
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the tests' inputs
    ap.add_argument("--examples", default=",".join(EXAMPLES), help="comma-separated, of: " + ", ".join(EXAMPLES))
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, ".cache", "examples"))
    ap.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib needed)")
    ap.add_argument("--publish", action="store_true",
                    help="also write the chart, summary and tables into docs/ and README.md (default inputs, "
                         "every variant: what the README shows comes from this one run)")
    args = ap.parse_args(argv)
    # tools/run_examples runs this from examples/: a relative --out-dir means the caller's directory
    args.out_dir = os.path.join(os.environ.get("OBJARENA_CALLER_DIR", os.getcwd()), args.out_dir)
    examples = args.examples.split(",")
    variants = args.variants.split(",")
    for name, known, given in (("example", EXAMPLES, examples), ("variant", VARIANTS, variants)):
        bad = [x for x in given if x not in known]
        if bad:
            ap.error(f"unknown {name}(s): {', '.join(bad)}")
    if args.publish and (args.tiny or args.full or args.no_chart or set(examples) != set(EXAMPLES)):
        ap.error("--publish takes the default inputs, every example and the chart")
    if "pymalloc" not in variants:
        variants.insert(0, "pymalloc")  # the baseline of every ratio

    size = "full" if args.full else ("tiny" if args.tiny else "default")
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    note(f"Python {sys.version.split()[0]} ({sys.executable}); {os.cpu_count()} CPUs, load average {load_start:.2f}; "
        f"{size} inputs; one fresh process per example and variant")
    todo = plan(variants)
    interval = 0.02 if args.full else 0.005
    results, samples, runs, failures = {}, {}, {}, []
    k, total = 0, sum(1 for name in examples for v in todo if v not in NOT_APPLYING.get(name, {}))
    for name in examples:
        results[name], samples[name], runs[name] = {}, {}, {}
        for v, env in todo.items():
            if v in NOT_APPLYING.get(name, {}):
                note(f"      {name:9s} {v:15s} does not apply: {NOT_APPLYING[name][v]}")
                continue
            k += 1
            t = time.monotonic()
            try:
                res, trace = run_sampled(name, v, env, size, interval)
            except RuntimeError as exc:  # one variant failing does not stop the comparison
                failures.append(str(exc))
                note(f"[{k:2d}/{total}] {name:9s} {v:15s} FAILED: {str(exc).splitlines()[0]}")
                continue
            f = figures(res)
            results[name][v], runs[name][v] = f, res
            # up to the end of the child's work (not its interpreter's shutdown), and then the child's own
            # reading at the end of the job (after the last scope's exit, the pool's close): the sampler may
            # have missed the last few milliseconds, and the line must end where the job's memory ended
            # (from the process before the job: the interpreter's start-up is not the job's)
            samples[name][v] = [(round(ts - res["t_base"], 4), kib) for ts, kib in trace
                                if res["t_before_job"] <= ts < res["t_end"]]
            samples[name][v].insert(0, (round(res["t_before_job"] - res["t_base"], 4), res["before_job_kib"]))
            samples[name][v].append((round(res["t_end"] - res["t_base"], 4), res["rss_end_kib"]))
            note(f"[{k:2d}/{total}] {name:9s} {v:15s} phase {f['median_phase_s']:.3f} s "
                 f"(CPU {f['median_phase_cpu_s']:.3f} s)  peak {f['peak_mib']:6.1f} MiB  "
                 f"held {held(f):5.1f} MiB (end {f['end_rss_mib']:5.1f})  ({len(trace)} RSS samples, "
                 f"{time.monotonic() - t:.1f} s)")

    log("")
    results = {name: figs for name, figs in results.items() if figs}
    examples = list(results)
    for name in examples:
        log("\n".join(example_table(name, results[name], list(todo))))
    log("\n".join(summary_table(results)))
    log("Columns: phase time (wall) and CPU time are medians over the phases (CPU time moves less when the machine "
        "is busy); peak RSS is the whole process's VmHWM during the "
        "phases; input, RSS after phases and held at end are above the process before the job (the same "
        "baseline for every variant; held at end: a Pool after closing it); RSS at end is absolute; released at exit is the share of the scopes' chunk bytes unmapped or "
        "given back to the pool at exit; escaped blocks are live_blocks_at_exit summed over the phases.")
    log("")
    verdicts = [verdict(name, results[name]) for name in examples]
    log("\n".join(verdicts))

    os.makedirs(args.out_dir, exist_ok=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "executable": sys.executable,
            "machine": f"{platform.machine()}, Linux {platform.release()}, {os.cpu_count()} CPUs",
            "size": size, "variants_run": list(todo), "wall_s": round(time.monotonic() - t_start, 1),
            "loadavg_start": round(load_start, 2), "loadavg_end": round(os.getloadavg()[0], 2),
            "checkout": source_revision(),  # what ./tools/run_examples builds objarena from
            "not_applying": {n: {v: why for v, why in NOT_APPLYING.get(n, {}).items() if v in todo}
                             for n in examples if NOT_APPLYING.get(n)},
            "timing_note": "one run per variant, no repeats: phase times are single measurements"}
    summary_path = os.path.join(args.out_dir, "summary.json")
    with open(summary_path, "w") as f:
        json.dump({"meta": meta, "results": results, "verdicts": verdicts}, f, indent=1)
    with open(os.path.join(args.out_dir, "samples.json"), "w") as f:
        json.dump({"meta": meta, "samples": samples,
                   "phases": {n: {v: [(p["t0"] - r["t_base"], p["t1"] - r["t_base"]) for p in r["phases"]]
                                  for v, r in rv.items()} for n, rv in runs.items()}}, f)
    log("")
    log(f"summary: {summary_path}")
    if not args.no_chart and examples:
        import rss_chart
        png = os.path.join(args.out_dir, "examples.png")
        rss_chart.draw(png, samples, runs, meta)
        log(f"chart:   {png}")
        if args.publish:
            publish(results, verdicts, meta, LOG, png)
    log(f"({time.monotonic() - t_start:.0f} s)")
    for text in failures:
        log(f"\n{text}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
