"""A long-lived worker: a loop serves 60 jobs from a queue, each in its own
scope, and we watch RSS after every job, plain and scoped (each variant in a
fresh process of its own). One job leaks a little into a global cache: the
scoped worker finds it with `phase.escaped()`, and a worker that serves with
`scope(strict=True)` refuses it (`EscapeError`).

    python examples/worker_loop.py [--jobs 60] [--leaky-job 17] [--size 20000]
    python examples/worker_loop.py --variant scoped --json out.json   # one variant, in this process

Replies leave each job's scope as JSON text made under `objarena.paused()`:
what the worker keeps between jobs comes from the normal allocator.
"""
import argparse
import json
import os
import queue
import random
import subprocess
import sys

import objarena

CACHE = {}  # a module-level cache: what a job puts here outlives the job


def make_jobs(jobs=60, size=20_000, leaky_job=17, seed=2):
    """(job id, size, leaks?) per job; sizes vary so the jobs are not all alike."""
    rng = random.Random(seed)
    return [(i, size // 2 + rng.randrange(size), i == leaky_job) for i in range(jobs)]


def job(spec):
    """Build a request's records, index and summarize them; the leaky job caches a few."""
    job_id, n, leaks = spec
    records = [{"id": i, "user": f"user{i % 500}", "score": (i * 7919) % 1000 / 10.0} for i in range(n)]
    by_user = {}
    for r in records:
        by_user.setdefault(r["user"], []).append(r["score"])
    best = max(by_user.items(), key=lambda kv: sum(kv[1]))
    if leaks:
        CACHE[job_id] = records[:50]  # the bug: 50 records (dicts and their strings) outlive the job
    return {"job": job_id, "records": n, "users": len(by_user), "best_user": best[0]}


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def serve(jobs, variant):
    """Serve every job from a queue; returns one reply dict per job."""
    q = queue.Queue()
    for spec in jobs:
        q.put(spec)
    replies = []
    job((-1, 100, False))  # warm lazily created interpreter state, outside any scope
    base = rss_mib()
    while not q.empty():
        spec = q.get()
        if variant == "plain":
            r = job(spec)
            reply = {**r, "escaped": None}
        else:
            with objarena.scope() as phase:
                r = job(spec)
                with objarena.paused():  # the reply outlives the job: text from the normal allocator
                    text = json.dumps(r)
                del r
            reply = json.loads(text)  # parsed after the scope (see "Keeping results" in docs/reference.md)
            found = phase.escaped()  # GC-tracked objects still living in this job's arena
            reply["escaped"] = {t.__name__: len(objs) for t, objs in found.items()}
            reply["live_blocks"] = phase.stats["live_blocks_at_exit"]
            del found
        reply["rss_mib"] = round(rss_mib() - base, 2)
        replies.append(reply)
    return replies


def refuse_leaks(spec):
    """Serve one job with strict=True: a leaking job is refused with EscapeError."""
    try:
        with objarena.scope(strict=True):
            job(spec)
    except objarena.EscapeError as exc:
        return {"refused": True, "blocks": exc.blocks, "types": {t.__name__: n for t, n in exc.types.items()},
                "message": str(exc).splitlines()[0]}
    return {"refused": False}


def run_variant_in_child(variant, args):
    """Each variant in a fresh process, so one cannot inherit the other's memory."""
    cmd = [sys.executable, os.path.abspath(__file__), "--variant", variant, "--jobs", str(args.jobs),
           "--leaky-job", str(args.leaky_job), "--size", str(args.size), "--json", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--leaky-job", type=int, default=17)
    ap.add_argument("--size", type=int, default=20_000, help="records per job (each job: size/2 .. 1.5*size)")
    ap.add_argument("--variant", choices=["plain", "scoped"], help="serve with one variant, in this process")
    ap.add_argument("--json", help="with --variant: write the replies here as JSON ('-': stdout)")
    args = ap.parse_args(argv)
    jobs = make_jobs(args.jobs, args.size, args.leaky_job)

    if args.variant:
        result = {"variant": args.variant, "replies": serve(jobs, args.variant)}
        if args.variant == "scoped":
            result["strict"] = refuse_leaks(jobs[args.leaky_job])
        text = json.dumps(result)
        if args.json == "-":
            print(text)
        elif args.json:
            with open(args.json, "w") as f:
                f.write(text)
        return 0

    plain = run_variant_in_child("plain", args)["replies"]
    scoped_run = run_variant_in_child("scoped", args)
    scoped = scoped_run["replies"]
    print(f"RSS above the worker's baseline after each job, MiB ({args.jobs} jobs):")
    print(f"{'job':>4s} {'records':>8s} {'plain':>7s} {'scoped':>7s}  escaped from the job's arena")
    for p, s in zip(plain, scoped):
        note = ", ".join(f"{n} {t}" for t, n in s["escaped"].items()) or "-"
        if s["escaped"] or s["job"] % 10 == 0 or s["job"] == len(scoped) - 1:
            print(f"{s['job']:4d} {s['records']:8d} {p['rss_mib']:7.2f} {s['rss_mib']:7.2f}  {note}")
    leakers = [s["job"] for s in scoped if s["escaped"]]
    print(f"jobs whose objects escaped: {leakers or 'none'}")
    strict = scoped_run["strict"]
    if strict["refused"]:
        print(f"job {args.leaky_job} under scope(strict=True): refused, EscapeError: {strict['message']}")
    else:
        print(f"job {args.leaky_job} under scope(strict=True): not refused (nothing escaped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
