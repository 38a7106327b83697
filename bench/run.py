"""Phase benchmark: objarena vs pymalloc vs other allocators, per workload.

Every (workload, variant) pair runs in a fresh interpreter (bench/child.py),
R times (the repeat loop is outermost, so a noisy stretch of the machine hits
every variant alike). Each process sets up its workload's input once, takes its
baseline RSS, then runs N phases. Reported per variant, as medians over the
repeats:

  phase s       median over the N phases of the phase wall time, teardown included
  teardown ms   median of the teardown alone: gc.collect() after the phase
                (pymalloc, passthrough, glibc, jemalloc, mimalloc), the scope's
                exit (objarena_*), pool close + join (per_process)
  peak Δ MiB    max over the phases of VmHWM - baseline (VmHWM reset before every
                phase; per_process: parent's growth + the worker's own growth)
  RSS 1st MiB   VmRSS - baseline after the first phase
  held N MiB    VmRSS - baseline after the N phases (what a long-lived worker keeps)
  minflt/phase  median minor page faults per phase (per_process: parent + worker)

Writes latest.md and summary.json (the medians) to --out-dir, and the raw
per-run, per-phase records (latest-raw.json) to .cache/bench/<out-dir> when
--out-dir is inside the repository (git ignores .cache/), else beside latest.md.

Variants that the interpreter or the installed objarena do not support are
listed with the reason and skipped.

    python bench/run.py [--quick] [--repeats R] [--phases N] [--scale S]
                        [--workloads a,b] [--variants x,y] [--python EXE] [--pythonpath DIR]

tools/run_bench pip-installs objarena into .cache/venvs/examples-3XX first.
"""
import argparse
import datetime
import glob
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHILD = os.path.join(HERE, "child.py")
sys.path.insert(0, HERE)
import workloads as _workloads  # noqa: E402

WORKLOADS = list(_workloads.WORKLOADS)
VARIANTS = [
    "pymalloc",
    "objarena_scope",
    "objarena_scope_noreuse",
    "objarena_scope_reuse",
    "objarena_scope_mem",
    "objarena_scope_noadopt",
    "objarena_scope_notrim",
    "objarena_scope_huge",
    "objarena_pool",
    "objarena_passthrough",
    "glibc",
    "jemalloc",
    "mimalloc",
    "mimalloc313",
    "per_process",
]
OBJARENA_VARIANTS = [v for v in VARIANTS if v.startswith("objarena")]
LIB_CANDIDATES = {
    "jemalloc": ["/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/x86_64-linux-gnu/libjemalloc.so*",
                 "/usr/lib*/libjemalloc.so*", "/usr/local/lib/libjemalloc.so*"],
    "mimalloc": ["/usr/lib/x86_64-linux-gnu/libmimalloc.so.2", "/usr/lib/x86_64-linux-gnu/libmimalloc.so*",
                 "/usr/lib*/libmimalloc.so*", "/usr/local/lib/libmimalloc.so*"],
}
CLEAN_ENV = ("PYTHONMALLOC", "LD_PRELOAD", "PYTHONTRACEMALLOC", "PYTHONMALLOCSTATS", "OBJARENA_POISON",
             "PYTHONDEVMODE", "PYTHONASYNCIODEBUG")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def find_lib(kind, override):
    if override:
        return override if os.path.exists(override) else None
    for pat in LIB_CANDIDATES[kind]:
        hits = sorted(glob.glob(pat))
        if hits:
            return os.path.realpath(hits[0])
    return None


def base_env(pythonpath):
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env["PYTHONHASHSEED"] = "0"
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def probe(python, env):
    p = subprocess.run([python, CHILD, "--probe"], capture_output=True, text=True, env=env, cwd=HERE,
                       timeout=120)
    if p.returncode != 0:
        raise SystemExit(f"cannot run {python}: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def resolve_interpreter(args):
    """Returns (python executable, PYTHONPATH entry or None, probe info, notes)."""
    notes = []
    python = shutil.which(args.python) or args.python
    pythonpath = args.pythonpath
    info = probe(python, base_env(pythonpath))
    if not info["objarena"]["importable"] and pythonpath is None:
        # default: whatever `import objarena` finds in this (the parent) interpreter
        spec = importlib.util.find_spec("objarena")
        if spec is not None and spec.origin:
            candidate = os.path.dirname(os.path.dirname(spec.origin))
            info2 = probe(python, base_env(candidate))
            if info2["objarena"]["importable"]:
                info, pythonpath = info2, candidate
                notes.append(f"objarena not importable by {python} itself; using PYTHONPATH={candidate} "
                             f"(where the parent's `import objarena` finds it)")
    # run children with the interpreter's real executable (a pyenv shim would add a bash process);
    # a venv's bin/python is kept as is (sys.executable), so its site-packages stay visible
    return info["executable"], pythonpath, info, notes


def plan_variants(args, info, pythonpath):
    """{variant: {"env": {...}, "args": [...]} or {"skip": reason}}"""
    plan = {}
    oa = info["objarena"]
    ver = tuple(info["version_info"])
    for v in args.variants:
        if v in OBJARENA_VARIANTS:
            if not oa["importable"]:
                plan[v] = {"skip": "objarena not importable: " + oa.get("error", "?")}
            elif not oa.get(v):
                why = {"objarena_scope_noreuse": "scope() has no `reuse` keyword",
                       "objarena_scope_reuse": "scope() has no `reuse` keyword",
                       "objarena_scope_mem": "scope() has no `domains` keyword",
                       "objarena_scope_noadopt": "scope() has no `adopt` keyword",
                       "objarena_scope_notrim": "scope() has no `trim_malloc` keyword",
                       "objarena_pool": "no objarena.Pool"}.get(v, "unsupported")
                detail = oa.get(v + "_error")
                plan[v] = {"skip": why + (f" ({detail})" if detail and v == "objarena_pool" else "")}
            else:
                plan[v] = {"env": {}, "args": []}
        elif v == "pymalloc":
            plan[v] = {"env": {}, "args": []}
            if info["allocator"] not in (None, "pymalloc"):
                plan[v]["note"] = f"default allocator of this interpreter is {info['allocator']}"
        elif v == "glibc":
            plan[v] = {"env": {"PYTHONMALLOC": "malloc"}, "args": ["--expect-allocator", "malloc"]}
        elif v in ("jemalloc", "mimalloc"):
            lib = find_lib(v, getattr(args, v))
            if lib is None:
                plan[v] = {"skip": f"lib{v} not found (pass --{v} PATH)"}
            else:
                plan[v] = {"env": {"PYTHONMALLOC": "malloc", "LD_PRELOAD": lib},
                           "args": ["--expect-lib", v, "--expect-allocator", "malloc"], "lib": lib}
        elif v == "mimalloc313":
            if ver < (3, 13):
                plan[v] = {"skip": f"needs CPython >= 3.13 (this is {info['version']}; use --python)"}
            else:
                env = base_env(pythonpath)
                env["PYTHONMALLOC"] = "mimalloc"
                p = subprocess.run([info["executable"], "-c", "pass"], env=env, capture_output=True, text=True)
                if p.returncode != 0:
                    plan[v] = {"skip": "PYTHONMALLOC=mimalloc refused: " + p.stderr.strip().splitlines()[-1]}
                else:
                    plan[v] = {"env": {"PYTHONMALLOC": "mimalloc"}, "args": ["--expect-allocator", "mimalloc"]}
        elif v == "per_process":
            plan[v] = {"env": {}, "args": []} if info.get("fork") else {"skip": "no fork start method"}
        else:
            plan[v] = {"skip": "unknown variant"}
    return plan


def run_child(python, pythonpath, spec, variant, workload, args):
    env = base_env(pythonpath)
    env.update(spec["env"])
    cmd = [python, CHILD, variant, workload, "--phases", str(args.phases), "--scale", str(args.scale)]
    cmd += spec["args"]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {args.timeout}s"}
    wall = time.perf_counter() - t
    if p.returncode != 0:
        tail = (p.stderr.strip() or p.stdout.strip())[-3000:]
        return {"error": f"exit status {p.returncode}: " + (tail.splitlines()[-1] if tail else ""),
                "stderr": tail}
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no JSON on stdout", "stdout": p.stdout[-2000:], "stderr": p.stderr[-2000:]}
    res["process_wall_s"] = wall
    if p.stderr.strip():
        res["stderr"] = p.stderr[-2000:]
    return res


# ---------------------------------------------------------------- summaries

MIB = 1024.0


def run_metrics(res):
    """One process's figures (seconds, MiB)."""
    ph = res["phase_records"]
    base = res["baseline_kib"]
    m = {
        "time_s": statistics.median(r["time_s"] for r in ph),
        "work_s": statistics.median(r["work_s"] for r in ph),
        "cpu_s": statistics.median(r.get("cpu_s", float("nan")) for r in ph),
        "teardown_s": statistics.median(r["teardown_s"] for r in ph),
        "first_time_s": ph[0]["time_s"],
        "peak_delta_mib": max(r["peak_delta_kib"] for r in ph) / MIB,
        # the whole process's peak: what the machine must have for the job
        "peak_abs_mib": (base + max(r["peak_delta_kib"] for r in ph)) / MIB,
        "rss_after_first_mib": (ph[0]["rss_after_kib"] - base) / MIB,
        "rss_after_each_mib": [(r["rss_after_kib"] - base) / MIB for r in ph],
        "rss_after_n_mib": (res["rss_after_n_kib"] - base) / MIB,
        "minflt_per_phase": statistics.median(r["minflt_self"] + r["minflt_children"] for r in ph),
        "baseline_mib": base / MIB,
    }
    if "rss_after_trim_kib" in res:
        m["rss_after_trim_mib"] = (res["rss_after_trim_kib"] - base) / MIB
    if any("worker_start_s" in r for r in ph):
        m["worker_start_s"] = statistics.median(r["worker_start_s"] for r in ph)
    stats = [r["scope_stats"] for r in ph if "scope_stats" in r]
    if stats:
        m["chunks_released"] = sum(s.get("chunks_released", 0) for s in stats)
        m["chunks_retained"] = sum(s.get("chunks_retained", 0) for s in stats)
    after = res.get("objarena_info_after")
    if after:
        m["retained_mib"] = after.get("retained_bytes", 0) / MIB / MIB  # mapped address space
        if "bytes_pages_released" in after:  # pages of retained chunks given back (madvise)
            m["retained_pages_released_mib"] = after["bytes_pages_released"] / MIB / MIB
    return m


def summarize(runs):
    """Median over repeats of each per-run figure."""
    ok = [run_metrics(r) for r in runs if "phase_records" in r]
    if not ok:
        return None
    out = {"repeats_ok": len(ok)}
    for key in ok[0]:
        vals = [m[key] for m in ok if key in m]
        if key == "rss_after_each_mib":
            out[key] = [statistics.median(col) for col in zip(*vals)]
        else:
            out[key] = statistics.median(vals)
            if key == "time_s":
                out["time_min_s"], out["time_max_s"] = min(vals), max(vals)
    return out


def ratio(x, base, min_base=None):
    if x is None or base is None:
        return "—"
    if min_base is not None and (base < min_base or x < 0):
        return "—"
    if base <= 0:
        return "—"
    return f"{x / base:.2f}x"


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def summary_json(meta, plan, results):
    """The run without its raw records: per (workload, variant) the medians and the failures."""
    out = {}
    for wl, by_variant in results.items():
        out[wl] = {}
        for v, entry in by_variant.items():
            errors = [r.get("error") or "skipped: " + r.get("skipped", "?")
                      for r in entry.get("runs", []) if "phase_records" not in r]
            out[wl][v] = {"summary": entry.get("summary"), "runs": len(entry.get("runs", []))}
            if errors:
                out[wl][v]["errors"] = errors
    return {"meta": meta, "plan": plan, "results": out}


def markdown(meta, plan, results, args):
    lines = []
    w = lines.append
    w(f"# objarena phase benchmark ({meta['date']})")
    w("")
    w(f"- Python {meta['python']['version']} `{meta['python']['executable']}` "
      f"(allocator by default: {meta['python']['allocator']}); objarena "
      + (f"{meta['python']['objarena'].get('version')} from `{meta['python']['objarena'].get('file')}`"
         if meta['python']['objarena']['importable'] else "not importable"))
    w(f"- {args.phases} phases per process, {args.repeats} repeat(s) (fresh process each), scale {args.scale}"
      f"{' (--quick)' if args.quick else ''}; {meta['machine']}; total {meta['total_s']:.0f} s; "
      f"load average {meta['loadavg_start']:.2f} at start, {meta['loadavg_end']:.2f} at end")
    for n in meta["notes"]:
        w(f"- {n}")
    libs = [f"{v}: `{plan[v]['lib']}`" for v in ("jemalloc", "mimalloc") if v in plan and "lib" in plan[v]]
    if libs:
        w("- LD_PRELOAD libraries: " + ", ".join(libs))
    skipped = [(v, plan[v]["skip"]) for v in args.variants if "skip" in plan[v]]
    if skipped:
        w("- Skipped variants: " + "; ".join(f"**{v}**: {why}" for v, why in skipped))
    if not meta.get("peak_reset_ok", True):
        w("- WARNING: /proc/self/clear_refs refused the VmHWM reset: peak figures are process-lifetime peaks")
    w("")
    w("Columns: *phase s* = median phase wall time (work + teardown), *cpu s* = its user+system CPU time "
      "(per_process: parent + worker; less sensitive than wall time to other load on the machine), *teardown ms* = gc.collect() after "
      "the phase / scope exit / worker close+join; *peak Δ* = max over phases of VmHWM − baseline (peak reset "
      "before each phase); *RSS 1st* / *held N* = VmRSS − baseline after the first / the last phase. "
      "Ratios are against pymalloc; memory ratios are left out (—) when pymalloc's figure is under 1 MiB "
      "or the variant's is negative (RSS below the baseline: the allocator gave back memory left from the "
      "setup, e.g. mimalloc's delayed purge). Every figure is a median over the repeats; per-phase figures "
      "(RSS after each phase, objarena scope stats) are in the raw records (latest-raw.json, under .cache/bench/ "
      "unless --raw-dir says otherwise; summary.json keeps the medians). *chunks released/retained* are "
      "summed over the N scopes (phase.stats).")
    w("")
    for wl in args.workloads:
        res_w = results.get(wl, {})
        base = res_w.get("pymalloc", {}).get("summary")
        info = next((r for v in res_w.values() for r in v["runs"] if "setup_s" in r), None)
        w(f"## {wl}")
        w("")
        if info:
            w(f"input {info['input_bytes'] / 1e6:.1f} MB, setup {info['setup_s']:.2f} s (once per process, "
              f"before the baseline)")
            w("")
        w("| variant | phase s | × pymalloc | cpu s | teardown ms | peak Δ MiB | × pymalloc | RSS 1st MiB | "
          "held N MiB | × pymalloc | minflt/phase | notes |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for v in args.variants:
            if "skip" in plan[v]:
                w(f"| {v} | — | — | — | — | — | — | — | — | — | — | skipped: {plan[v]['skip']} |")
                continue
            entry = res_w.get(v)
            if entry is None:
                continue
            s = entry["summary"]
            errs = [r for r in entry["runs"] if "phase_records" not in r]
            notes = []
            if errs:
                first = errs[0].get("error") or ("skipped: " + errs[0].get("skipped", "?"))
                notes.append(f"{len(errs)}/{len(entry['runs'])} run(s) failed: {first}")
            if s is None:
                w(f"| {v} | — | — | — | — | — | — | — | — | — | — | {'; '.join(notes)} |")
                continue
            if args.repeats > 1:
                notes.append(f"time {s['time_min_s']:.3f}–{s['time_max_s']:.3f}")
            if "worker_start_s" in s:
                notes.append(f"worker start {s['worker_start_s'] * 1e3:.0f} ms")
            if "chunks_released" in s:
                notes.append(f"chunks released/retained {s['chunks_released']:.0f}/{s['chunks_retained']:.0f}")
            if "retained_mib" in s and s["retained_mib"] > 0:
                txt = f"info() after N: retained_bytes {s['retained_mib']:.1f} MiB"
                if "retained_pages_released_mib" in s:
                    txt += f", bytes_pages_released {s['retained_pages_released_mib']:.1f} MiB"
                notes.append(txt)
            if "rss_after_trim_mib" in s:
                notes.append(f"after trim {s['rss_after_trim_mib']:.1f} MiB")
            if plan[v].get("note"):
                notes.append(plan[v]["note"])
            b = base or {}
            w("| " + " | ".join([
                v,
                f"{s['time_s']:.3f}",
                ratio(s["time_s"], b.get("time_s")),
                f"{s['cpu_s']:.3f}",
                f"{s['teardown_s'] * 1e3:.1f}",
                f"{s['peak_delta_mib']:.1f}",
                ratio(s["peak_delta_mib"], b.get("peak_delta_mib"), 1.0),
                f"{s['rss_after_first_mib']:.1f}",
                f"{s['rss_after_n_mib']:.1f}",
                ratio(s["rss_after_n_mib"], b.get("rss_after_n_mib"), 1.0),
                f"{s['minflt_per_phase'] / 1e3:.1f}k",
                "; ".join(notes),
            ]) + " |")
        w("")
    # cross-workload summary
    active = [v for v in args.variants if "skip" not in plan[v]]
    for title, key, minb in (("phase wall time vs pymalloc", "time_s", None),
                             ("phase CPU time vs pymalloc", "cpu_s", None),
                             ("peak RSS of the process during the phases, MiB (vs pymalloc)", "peak_abs_mib", 1.0),
                             ("RSS held after N phases, MiB (vs pymalloc)", "rss_after_n_mib", 1.0)):
        w(f"## Summary: {title}")
        w("")
        w("| workload | " + " | ".join(active) + " |")
        w("|---|" + "---:|" * len(active))
        for wl in args.workloads:
            base = (results.get(wl, {}).get("pymalloc") or {}).get("summary") or {}
            cells = []
            for v in active:
                s = (results.get(wl, {}).get(v) or {}).get("summary")
                if s is None:
                    cells.append("fail")
                elif key in ("time_s", "cpu_s"):
                    cells.append(ratio(s[key], base.get(key)))
                else:
                    r = ratio(s[key], base.get(key), minb)
                    cells.append(f"{s[key]:.1f}" + ("" if r == "—" or v == "pymalloc" else f" ({r})"))
            w(f"| {wl} | " + " | ".join(cells) + " |")
        w("")
    lines.extend(target_lines(results, args.workloads))
    return "\n".join(lines)


# Variants that are not objarena: what a pool scope is compared against.
ALTERNATIVES = ("pymalloc", "glibc", "jemalloc", "mimalloc", "mimalloc313", "per_process")
# Workloads whose phase keeps (almost) nothing: a bare scope must give back its memory.
KEEPS_NOTHING = ("json_decode", "ast_compile", "temporaries", "build_drop_dicts", "object_graph")


def target_lines(results, workloads):
    """The performance issue's phase-benchmark targets, evaluated on this run's medians."""
    def summary(wl, v):
        return (results.get(wl, {}).get(v) or {}).get("summary")

    rows = []  # (target, workload, measured, met)
    for wl in workloads:
        base, pool, scope = summary(wl, "pymalloc"), summary(wl, "objarena_pool"), summary(wl, "objarena_scope")
        if base is None:
            continue
        alts = [(summary(wl, v)["time_s"], v) for v in ALTERNATIVES if summary(wl, v)]
        if pool and alts:
            fastest, name = min(alts)
            r = pool["time_s"] / fastest
            rows.append(("warm pool phase time <= 1.05x the fastest alternative", wl,
                         f"{r:.3f}x ({name})", r <= 1.05))
            r = pool["time_s"] / base["time_s"]
            rows.append(("warm pool phase time <= 0.5x pymalloc", wl, f"{r:.3f}x", r <= 0.5))
        if scope is None:
            continue
        r = scope["time_s"] / base["time_s"]
        rows.append(("bare scope phase time <= pymalloc", wl, f"{r:.3f}x", r <= 1.0))
        r = scope["peak_abs_mib"] / base["peak_abs_mib"]
        rows.append(("peak RSS <= 1.10x pymalloc (default scope)", wl, f"{r:.3f}x", r <= 1.10))
        if wl in KEEPS_NOTHING:
            held = scope["rss_after_n_mib"]
            rows.append(("RSS after bare scopes within 2 MiB of before (nothing kept)", wl,
                         f"{held:.1f} MiB", held <= 2.0))
        if wl == "keep_0_1pct" and base["rss_after_n_mib"] > 0:
            r = scope["rss_after_n_mib"] / base["rss_after_n_mib"]
            rows.append(("RSS held with 0.1% kept <= 0.2x pymalloc", wl, f"{r:.3f}x", r <= 0.2))
        passthrough = summary(wl, "objarena_passthrough")
        if passthrough:
            r = passthrough["cpu_s"] / base["cpu_s"]
            rows.append(("pass-through CPU time < 1.02x pymalloc (noisy here: see bench/passthrough.py)", wl,
                         f"{r:.3f}x", r < 1.02))
    if not rows:
        return []
    out = ["## Targets (performance issue), from the medians above", "",
           "| target | workload | measured | |", "|---|---|---:|---|"]
    out += [f"| {t} | {wl} | {m} | {'met' if ok else 'missed'} |" for t, wl, m, ok in rows]
    met = sum(ok for *_, ok in rows)
    out += ["", f"{met} of {len(rows)} met. Not measured here: the hot path in ns "
            "(`bench/hook_bench.c`) and the pass-through cost on an allocation loop "
            "(`bench/passthrough.py`).", ""]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repeat and smaller sizes (scale 0.35)")
    ap.add_argument("--repeats", type=int, help="processes per (workload, variant); default 3, --quick 1")
    ap.add_argument("--phases", type=int, default=6, help="phases per process (N, default 6)")
    ap.add_argument("--scale", type=float, help="workload size multiplier; default 1.0, --quick 0.35")
    ap.add_argument("--workloads", help="comma-separated subset of: " + ",".join(WORKLOADS))
    ap.add_argument("--variants", help="comma-separated subset of: " + ",".join(VARIANTS))
    ap.add_argument("--python", default="python3", help="interpreter for the children (default python3 on PATH)")
    ap.add_argument("--pythonpath", help="prepended to PYTHONPATH in the children (default: none if the "
                    "interpreter imports objarena itself, else where this process's `import objarena` finds it)")
    ap.add_argument("--jemalloc", help="path of libjemalloc.so (default: searched)")
    ap.add_argument("--mimalloc", help="path of libmimalloc.so (default: searched)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per child process")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"),
                    help="latest.md and summary.json go here (default bench/results)")
    ap.add_argument("--raw-dir", help="the raw per-phase records (latest-raw.json) go here "
                    "(default: .cache/bench/<out-dir> in the repository, which git ignores)")
    args = ap.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.scale = args.scale or (0.35 if args.quick else 1.0)
    args.workloads = args.workloads.split(",") if args.workloads else WORKLOADS
    args.variants = args.variants.split(",") if args.variants else VARIANTS
    for name, known in (("workload", WORKLOADS), ("variant", VARIANTS)):
        bad = [x for x in getattr(args, name + "s") if x not in known]
        if bad:
            ap.error(f"unknown {name}(s): {', '.join(bad)}")
    if "pymalloc" not in args.variants:
        args.variants.insert(0, "pymalloc")  # the baseline of every ratio

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    python, pythonpath, info, notes = resolve_interpreter(args)
    plan = plan_variants(args, info, pythonpath)
    if not info["objarena"]["importable"]:
        notes.append(f"objarena not importable by {python}: {info['objarena'].get('error')}")
    if pythonpath and args.pythonpath:
        notes.append(f"PYTHONPATH for children: {pythonpath}")
    log(f"python {info['version']} {python}; objarena: {info['objarena'].get('file', 'not importable')}")
    for v in args.variants:
        if "skip" in plan[v]:
            log(f"  skip {v}: {plan[v]['skip']}")

    results = {wl: {v: {"runs": []} for v in args.variants if "skip" not in plan[v]} for wl in args.workloads}
    active = [v for v in args.variants if "skip" not in plan[v]]
    total = args.repeats * len(args.workloads) * len(active)
    k = 0
    for rep in range(args.repeats):
        for wl in args.workloads:
            # rotate the variant order per repeat so no variant always runs right after the same one
            order = active[rep % len(active):] + active[:rep % len(active)]
            for v in order:
                k += 1
                res = run_child(python, pythonpath, plan[v], v, wl, args)
                res["repeat"] = rep
                results[wl][v]["runs"].append(res)
                if "phase_records" in res:
                    m = run_metrics(res)
                    log(f"[{k}/{total}] {wl:14s} {v:24s} phase {m['time_s']:.3f}s peak {m['peak_delta_mib']:6.1f} "
                        f"held {m['rss_after_n_mib']:6.1f} MiB")
                else:
                    log(f"[{k}/{total}] {wl:14s} {v:24s} " + (res.get("error") or "skipped: " + res.get("skipped", "?")))
    for wl in results:
        for v in results[wl]:
            results[wl][v]["summary"] = summarize(results[wl][v]["runs"])

    peak_ok = all(r.get("peak_reset_ok", True) for wl in results.values() for e in wl.values() for r in e["runs"])
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": info,
        "pythonpath": pythonpath,
        "machine": f"{platform.node()} {platform.machine()}, Linux {platform.release()}, {os.cpu_count()} CPUs",
        "notes": notes,
        "total_s": time.perf_counter() - t_start,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "peak_reset_ok": peak_ok,
        "args": {k: v for k, v in vars(args).items()},
    }
    md = markdown(meta, plan, results, args)
    print(md)
    # tools/run_bench runs this from bench/: a relative --out-dir means the caller's directory.
    out_dir = os.path.join(os.environ.get("OBJARENA_BENCH_CALLER_DIR", os.getcwd()), args.out_dir)
    args.out_dir = os.path.normpath(out_dir)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "latest.md"), "w") as f:
        f.write(md + "\n")
    # What a reader needs stays in the results directory (the Markdown and the medians); the raw
    # per-run, per-phase records are regenerated by the next run, not committed.
    with open(os.path.join(args.out_dir, "summary.json"), "w") as f:
        json.dump(summary_json(meta, plan, results), f, indent=1, default=str)
    rel = os.path.relpath(args.out_dir, ROOT)
    # inside the repository: under .cache/bench/ (ignored by git); elsewhere: beside latest.md
    raw_dir = args.raw_dir or (args.out_dir if rel.startswith("..") else os.path.join(ROOT, ".cache", "bench", rel))
    os.makedirs(raw_dir, exist_ok=True)
    raw_path = os.path.join(raw_dir, "latest-raw.json")
    with open(raw_path, "w") as f:
        json.dump({"meta": meta, "plan": plan, "results": results}, f, indent=1, default=str)
    log(f"wrote {os.path.join(args.out_dir, 'latest.md')}, summary.json ({meta['total_s']:.0f} s); "
        f"raw per-phase records: {raw_path}")
    failures = sum(1 for wl in results.values() for e in wl.values() for r in e["runs"] if "error" in r)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
