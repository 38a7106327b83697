"""One benchmark process: run one workload under one variant, print JSON.

Started by bench/run.py, always in a fresh interpreter (the allocator
environment, PYTHONMALLOC / LD_PRELOAD, is set by the parent):

    child.py --probe                      # what this interpreter offers (objarena features...)
    child.py VARIANT WORKLOAD [--phases N] [--scale S] [--expect-lib NAME] [--expect-allocator NAME]

The last line of stdout is one JSON object. Per phase it records the phase
wall time (work + teardown), the teardown time alone (gc.collect() after the
phase, or the scope's exit, or closing and joining the worker for per_process),
VmHWM after a reset of the peak (``echo 5 > /proc/self/clear_refs``) right
before the phase, VmRSS after the phase and minor page faults. RSS figures are
KiB; the parent subtracts the baseline (VmRSS after setup, before phase 0).
"""
import argparse
import gc
import json
import os
import resource
import sys
import time

import workloads

# ---------------------------------------------------------------- /proc helpers


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


_PEAK_RESET_OK = None


def reset_peak():
    """Reset VmHWM to the current RSS; returns False where the kernel refuses."""
    global _PEAK_RESET_OK
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _PEAK_RESET_OK = True
    except OSError:
        _PEAK_RESET_OK = False
    return _PEAK_RESET_OK


def minflt():
    """(minor faults self, minor faults children, CPU s self + children) so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)  # per_process: the workers, once joined
    return me.ru_minflt, ch.ru_minflt, me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def mapped_malloc_libs():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if line.count("/") else ""
                base = os.path.basename(path)
                if "malloc" in base or "jemalloc" in base:
                    libs.add(path)
    except OSError:
        pass
    return sorted(libs)


def allocator_name():
    for modname in ("_testinternalcapi", "_testcapi"):
        try:
            mod = __import__(modname)
            return mod.pymem_getallocatorsname()
        except Exception:
            continue
    return None


# ---------------------------------------------------------------- objarena feature detection

SCOPE_VARIANT_KWARGS = {
    "objarena_scope": {},
    "objarena_scope_noreuse": {"reuse": False},
    "objarena_scope_reuse": {"reuse": True},
    "objarena_scope_mem": {"domains": ("obj", "mem")},
    "objarena_scope_noadopt": {"adopt": False},
    "objarena_scope_notrim": {"trim_malloc": False},
    "objarena_scope_huge": {"huge_pages": True, "chunk_size": 2 << 20},
}


def objarena_features():
    """Import objarena and detect optional API; never raises."""
    feats = {"importable": False}
    try:
        import objarena
    except Exception as exc:  # ImportError, RuntimeError on free-threaded builds...
        feats["error"] = f"{type(exc).__name__}: {exc}"
        return feats
    feats.update(importable=True, file=getattr(objarena, "__file__", None),
                 version=getattr(objarena, "__version__", None))
    for name, kwargs in SCOPE_VARIANT_KWARGS.items():
        try:
            objarena.scope(**kwargs)
            feats[name] = True
        except TypeError as exc:
            feats[name] = False
            feats[name + "_error"] = str(exc)
        except Exception as exc:  # ValueError for an unknown domain name, say
            feats[name] = False
            feats[name + "_error"] = f"{type(exc).__name__}: {exc}"
    feats["objarena_pool"] = hasattr(objarena, "Pool")
    if feats["objarena_pool"]:
        try:
            objarena.Pool()
        except Exception as exc:
            feats["objarena_pool"] = False
            feats["objarena_pool_error"] = f"{type(exc).__name__}: {exc}"
    feats["objarena_passthrough"] = True
    return feats


def probe():
    import sysconfig
    info = {
        "executable": sys.executable,
        "version": sys.version.split()[0],
        "version_info": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "stdlib": sysconfig.get_paths()["stdlib"],
        "allocator": allocator_name(),
        "malloc_libs": mapped_malloc_libs(),
        "peak_reset": reset_peak(),
        "objarena": objarena_features(),
    }
    try:
        import multiprocessing
        multiprocessing.get_context("fork")
        info["fork"] = True
    except Exception:
        info["fork"] = False
    print(json.dumps(info))


# ---------------------------------------------------------------- per_process worker

W = None  # the workload; set before any worker is forked, so workers inherit its input


def _worker_task(i):
    t_start = time.perf_counter()
    reset_peak()
    rss0 = status_kib("VmRSS")
    kept = W.phase(i)
    hwm = status_kib("VmHWM")
    return kept, {"t_start": t_start, "rss0_kib": rss0, "hwm_kib": hwm,
                  "rss_end_kib": status_kib("VmRSS")}


# ---------------------------------------------------------------- main


def main():
    global W
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("variant", nargs="?")
    ap.add_argument("workload", nargs="?")
    ap.add_argument("--phases", type=int, default=6)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--expect-lib", help="fail unless a mapped library's name contains this")
    ap.add_argument("--expect-allocator", help="fail unless PyMem's allocator is this")
    args = ap.parse_args()
    if args.probe:
        probe()
        return 0

    variant = args.variant
    out = {"variant": variant, "workload": args.workload, "phases": args.phases,
           "scale": args.scale, "python": sys.version.split()[0], "executable": sys.executable,
           "pid": os.getpid(), "allocator": allocator_name(), "malloc_libs": mapped_malloc_libs()}

    def skip(reason):
        out["skipped"] = reason
        print(json.dumps(out))
        return 0

    if args.expect_lib and not any(args.expect_lib in p for p in out["malloc_libs"]):
        return skip(f"LD_PRELOAD did not take: no mapped library matching {args.expect_lib!r}")
    if args.expect_allocator and out["allocator"] not in (None, args.expect_allocator):
        return skip(f"allocator is {out['allocator']!r}, not {args.expect_allocator!r}")

    # ---- setup (once per process, outside any scope, before the baseline)
    t = time.perf_counter()
    W = workloads.WORKLOADS[args.workload]()
    W.setup(args.scale)
    out["setup_s"] = time.perf_counter() - t
    out["input_bytes"] = W.input_bytes

    objarena = None
    pool = None
    scope_kwargs = None
    if variant.startswith("objarena"):
        feats = objarena_features()
        out["objarena"] = feats
        if not feats["importable"]:
            return skip("objarena not importable: " + feats.get("error", "?"))
        if not feats.get(variant):
            return skip(f"{variant}: unsupported by this objarena ("
                        + feats.get(variant + "_error", "no such API") + ")")
        import objarena
        if variant in SCOPE_VARIANT_KWARGS:
            scope_kwargs = SCOPE_VARIANT_KWARGS[variant]
        elif variant == "objarena_pool":
            pool = objarena.Pool()
        elif variant == "objarena_passthrough":
            with objarena.scope():  # installs the hook (never removed); phases then run outside scopes
                pass
        out["objarena_info_before"] = dict(objarena.info())
    if variant == "per_process":
        import multiprocessing
        ctx = multiprocessing.get_context("fork")  # workers inherit the workload's input

    kept = []  # what the phases keep: lives for the whole process
    gc.collect()
    base = status_kib("VmRSS")
    out["baseline_kib"] = base
    out["baseline_hwm_kib"] = status_kib("VmHWM")
    phases = []
    for i in range(args.phases):
        rec = {}
        rss_before = status_kib("VmRSS")
        reset_peak()
        f0 = minflt()
        t0 = time.perf_counter()
        if scope_kwargs is not None:
            with objarena.scope(**scope_kwargs) as sc:
                kept.append(W.phase(i))
                t_work = time.perf_counter()
            rec["scope_stats"] = dict(sc.stats)
        elif pool is not None:
            with pool.scope() as sc:
                kept.append(W.phase(i))
                t_work = time.perf_counter()
            try:
                rec["scope_stats"] = dict(sc.stats)
            except Exception:
                pass
        elif variant == "per_process":
            p = ctx.Pool(1, maxtasksperchild=1)
            result, winfo = p.apply(_worker_task, (i,))
            kept.append(result)
            t_work = time.perf_counter()
            p.close()
            p.join()
            rec["worker_start_s"] = winfo["t_start"] - t0
            rec["worker_peak_delta_kib"] = winfo["hwm_kib"] - winfo["rss0_kib"]
            rec["worker_rss0_kib"] = winfo["rss0_kib"]
            rec["worker_hwm_kib"] = winfo["hwm_kib"]
        else:  # pymalloc, glibc, jemalloc, mimalloc, mimalloc313, objarena_passthrough
            kept.append(W.phase(i))
            t_work = time.perf_counter()
            gc.collect()
        t1 = time.perf_counter()
        f1 = minflt()
        rec.update(
            time_s=t1 - t0,
            work_s=t_work - t0,
            teardown_s=t1 - t_work,
            hwm_kib=status_kib("VmHWM"),
            rss_before_kib=rss_before,
            rss_after_kib=status_kib("VmRSS"),
            minflt_self=f1[0] - f0[0],
            minflt_children=f1[1] - f0[1],
            cpu_s=f1[2] - f0[2],
        )
        if variant == "per_process":
            # memory in use during the phase: what the parent already held, plus the worker's growth
            rec["peak_delta_kib"] = (rss_before - base) + rec["worker_peak_delta_kib"]
        else:
            rec["peak_delta_kib"] = rec["hwm_kib"] - base
        phases.append(rec)
    out["phase_records"] = phases
    out["peak_reset_ok"] = _PEAK_RESET_OK
    out["rss_after_n_kib"] = status_kib("VmRSS")
    out["kept_len"] = len(kept)
    if pool is not None:
        t = time.perf_counter()
        pool.trim()
        out["trim_s"] = time.perf_counter() - t
        out["rss_after_trim_kib"] = status_kib("VmRSS")
    if objarena is not None:
        out["objarena_info_after"] = dict(objarena.info())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
