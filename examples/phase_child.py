"""One run of the main job: one example's phases under one variant, in this
(fresh) process; prints one JSON object on the last line of stdout.

    python examples/phase_child.py EXAMPLE VARIANT [--size tiny|default|full]

Started by compare_phases.py, which sets the allocator environment
(PYTHONMALLOC, LD_PRELOAD) and samples this process's RSS from outside.
First, with the example's module imported and nothing else made, the RSS
"before the job" (before_job_kib): the one baseline every variant's "held"
figure is measured from. Then the example's input is made (outside any
scope), a warm-up call runs, and after a gc.collect() the RSS with the input
(baseline_kib, the base of the per-phase figures); then one phase per batch.
Per phase it records the start and end on time.monotonic() (the parent's
clock too, for the chart), VmHWM (reset before the phase), VmRSS after it,
and the scope's stats for the objarena variants (an example with its own
job_scoped: its scopes' stats summed over the phase, and how many scopes).
When the job is over (the last scope has exited, a pool is closed) it
records the RSS at the end (rss_end_kib at t_end): the last point of the
variant's line on the chart.
"""
import argparse
import gc
import importlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))
from child import allocator_name, mapped_malloc_libs, minflt, reset_peak, status_kib  # noqa: E402  bench/child.py

# name: (module, {size: the example's input arguments}); "tiny" is for the tests
EXAMPLES = {
    "etl": ("etl_batches", {"tiny": {"batches": 2, "rows": 2000}, "default": {"batches": 6, "rows": 20_000},
                            "full": {"batches": 10, "rows": 80_000}}),
    "compiler": ("compile_stdlib", {"tiny": {"packages": ["json", "concurrent"]}, "default": {},
                                    "full": {"packages": "all"}}),
    "worker": ("worker_loop", {"tiny": {"jobs": 8, "size": 2000, "leaky_job": 3},
                               "default": {"jobs": 60, "size": 20_000}, "full": {"jobs": 200, "size": 40_000}}),
    "networkx": ("graph_batches", {"tiny": {"batches": 2, "nodes": 500, "edges": 2000},
                                   "default": {"batches": 6, "nodes": 4000, "edges": 16_000},
                                   "full": {"batches": 10, "nodes": 20_000, "edges": 80_000}}),
    "async": ("async_service", {"tiny": {"bursts": 2, "requests": 60, "records": 100},
                                "default": {"bursts": 6, "requests": 150, "records": 200},
                                "full": {"bursts": 12, "requests": 400, "records": 300}}),
}
SIZES = ("tiny", "default", "full")
# Every variant the child knows; the allocator ones differ only in the parent's environment.
VARIANTS = ["pymalloc", "objarena.scope", "objarena.run", "objarena.Pool", "glibc", "jemalloc", "mimalloc"]
# An example whose module defines job_scoped(batch, variant, pool) runs its objarena variants through it (its
# own form of them: async_service.py opens a scope per request task, not one around the burst), and lists
# those in SCOPED_VARIANTS; it returns (result, stats: the phase's scopes' statistics summed, "scopes": how
# many, or None). Variants an example does not apply to are here, with the reason the tables print
# (compare_phases.py runs no child for them; they show as "—").
NOT_APPLYING = {
    "async": {"objarena.run": "objarena.run calls a synchronous function; a request here is an asyncio task"},
}
STAT_KEYS = ("peak_mapped", "bytes_released", "bytes_retained", "bytes_pages_released", "chunks_released",
             "chunks_retained", "chunks_parked", "live_blocks_at_exit", "alloc_fallbacks")


def load(example, size):
    mod = importlib.import_module(EXAMPLES[example][0])
    return mod, make_input(example, mod, size)


def make_input(example, mod, size):
    kwargs = dict(EXAMPLES[example][1][size])
    if example == "compiler":
        packages = kwargs.get("packages")
        batches = mod.make_batches(mod.all_packages() if packages == "all" else packages)
    elif example == "worker":
        batches = mod.make_jobs(**kwargs)
    else:
        batches = mod.make_batches(**kwargs)
    return batches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("example", choices=sorted(EXAMPLES))
    ap.add_argument("variant", choices=VARIANTS)
    ap.add_argument("--size", choices=SIZES, default="default")
    args = ap.parse_args()
    if args.variant in NOT_APPLYING.get(args.example, {}):
        ap.error(f"{args.variant} does not apply to {args.example}: {NOT_APPLYING[args.example][args.variant]}")
    out = {"example": args.example, "variant": args.variant, "pid": os.getpid(), "python": sys.version.split()[0],
           "allocator": allocator_name(), "malloc_libs": mapped_malloc_libs(), "t_start": time.monotonic()}

    mod = importlib.import_module(EXAMPLES[args.example][0])
    gc.collect()
    out["before_job_kib"] = status_kib("VmRSS")  # the one baseline of "held", the same for every variant
    out["t_before_job"] = time.monotonic()
    batches = make_input(args.example, mod, args.size)
    mod.job(batches[0])  # warm-up (lazy imports, caches), outside any scope and before the baseline
    objarena = pool = None
    made = []
    own = getattr(mod, "job_scoped", None)  # the example's own form of the objarena variants
    if own is not None and args.variant.startswith("objarena") and args.variant not in mod.SCOPED_VARIANTS:
        raise SystemExit(f"{args.example}: job_scoped has no {args.variant} (add it to NOT_APPLYING)")
    if args.variant.startswith("objarena"):
        import objarena
        if args.variant == "objarena.Pool":
            pool = objarena.Pool()
        elif args.variant == "objarena.run" and own is None:
            # objarena.run makes its scope through the name `scope` of the module that defines it:
            # record the scopes it makes to read their stats (missing stats show as "—")
            home = sys.modules[objarena.run.__module__]
            real_scope = home.scope

            def recording_scope(**options):
                made.append(real_scope(**options))
                return made[-1]
            home.scope = recording_scope

    kept = []  # what the phases return lives as long as the process (a real job would write it out)
    gc.collect()
    out["baseline_kib"] = status_kib("VmRSS")
    out["t_base"] = time.monotonic()
    phases = []
    for batch in batches:
        reset_peak()
        f0 = minflt()
        t0 = time.monotonic()
        sc = stats = None
        if own is not None and args.variant.startswith("objarena"):
            result, stats = own(batch, args.variant, pool)
            kept.append(result)
        elif args.variant == "objarena.scope":
            with objarena.scope() as sc:
                kept.append(mod.job(batch))
        elif args.variant == "objarena.Pool":
            with pool.scope() as sc:
                kept.append(mod.job(batch))
        elif args.variant == "objarena.run" and own is None:
            kept.append(objarena.run(mod.job, batch))
            sc = made.pop() if made else None
        else:  # pymalloc, glibc, jemalloc, mimalloc: the same code, no scope
            kept.append(mod.job(batch))
            gc.collect()
        t1 = time.monotonic()
        f1 = minflt()  # (minor faults, children's, CPU seconds of this process so far)
        rec = {"t0": t0, "t1": t1, "cpu_s": f1[2] - f0[2], "hwm_kib": status_kib("VmHWM"),
               "rss_after_kib": status_kib("VmRSS"), "minflt": f1[0] - f0[0]}
        if sc is not None:
            rec["stats"] = {k: sc.stats.get(k, 0) for k in STAT_KEYS}
        elif stats is not None:  # the example's scopes (a task scope per request): summed over the phase
            rec["stats"] = {k: stats.get(k, 0) for k in STAT_KEYS}
            rec["scopes"] = stats["scopes"]
        phases.append(rec)
    out["phases"] = phases
    out["rss_after_last_kib"] = status_kib("VmRSS")
    if pool is not None:
        out["t_pool_open_end"] = time.monotonic()
        pool.close()  # the batch is over: the pool's warm chunks go back
        out["rss_after_close_kib"] = status_kib("VmRSS")
        out["pool_stats_after_close"] = dict(pool.stats)
    if objarena is not None:
        info = objarena.info()
        out["retained_blocks"] = info["retained_blocks"]
        out["retained_bytes"] = info["retained_bytes"]
    out["kept"] = len(kept)
    out["rss_end_kib"] = status_kib("VmRSS")  # the job is over: its last scope exited, its pool is closed
    out["t_end"] = time.monotonic()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
