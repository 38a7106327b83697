"""An asyncio service in one process: a long-lived event loop serves bursts
of requests, each request an asyncio task, and with objarena each task runs
in a scope of its own (objarena.asyncio's task factory), parked while it
awaits, so requests that interleave on the loop keep their memory apart.

Each request's handler builds a few thousand objects (its records), yields
to the loop in the middle (`await asyncio.sleep(0)`: the other requests run
there), then builds a JSON response from the records and writes it to the
request's "transport" (a hash made by the server outside any scope, so
checking the responses keeps nothing of them). One request in 100 puts one
small dict into an application-level LRU cache (64 entries): it escapes its
task's scope, whose chunk stays until the entry is evicted.

    python examples/async_service.py [--bursts 6] [--requests 150] [--records 200]
    python examples/async_service.py --variant tasks --json -   # one variant, in this process

Variants: plain (no objarena), tasks (objarena.asyncio.task_factory: a scope
per request task), pool (the same, the task scopes drawing on one
objarena.Pool, closed at the end). Each runs in a fresh process of its own.

The main job (compare_phases.py) runs one burst per phase under each of its
variants: `job(batch)` plainly, `job_scoped(batch, variant, pool)` for its
objarena variants (task scopes: a scope per request, not one around the
burst). The event loop is made once, outside any scope, and reused.
"""
import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import subprocess
import sys

CONCURRENCY = 32  # requests handled at once: the others wait in the backlog, not yet tasks (as a server's accept loop)
CACHE_EVERY = 100  # one request in CACHE_EVERY stores a small object in the cache
CACHE_SIZE = 64


class LRU:
    """A bounded least-recently-used cache (what an application keeps between requests)."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.data = collections.OrderedDict()

    def put(self, key, value):
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.maxsize:
            self.data.popitem(last=False)  # the evicted entry dies: its task's retained chunk can go


CACHE = LRU(CACHE_SIZE)
_LOOP = None


def loop():
    """The service's event loop: made at the first call (the main job's warm-up, outside any scope), then reused."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    return _LOOP


def make_batches(bursts=6, requests=300, records=300, seed=5):
    """One burst per phase; a request is (request id, user, number of records: records/2 .. 1.5*records)."""
    rng = random.Random(seed)
    out, rid = [], 0
    for _ in range(bursts):
        burst = []
        for _ in range(requests):
            burst.append((rid, rng.randrange(1000), records // 2 + rng.randrange(records)))
            rid += 1
        out.append(burst)
    return out


async def handle(request, transport):
    """One request: records, a yield to the loop, a JSON response written to the transport."""
    rid, user, n = request
    records = [{"id": rid * 10_000 + i, "user": f"user{(user + i) % 500}", "score": (i * 7919 + rid) % 1000 / 10.0,
                "tags": ["new", "vip", "eu"][: i % 4]} for i in range(n)]
    await asyncio.sleep(0)  # the other requests run here: this task's scope is parked meanwhile
    by_user = {}
    for r in records:
        by_user.setdefault(r["user"], []).append(r["score"])
    body = json.dumps({"request": rid, "records": records,
                       "users": {u: {"n": len(s), "mean": round(sum(s) / len(s), 3)} for u, s in by_user.items()}})
    if rid % CACHE_EVERY == 0:
        CACHE.put(user, {"request": rid, "users": len(by_user)})  # outlives the request
    await asyncio.sleep(0)
    transport.update(body.encode())  # "sent": the transport keeps a hash, nothing of the body


def is_request(coro):
    """The task factory's predicate: request handlers get a scope; the server's own task does not."""
    return getattr(coro, "cr_code", None) is handle.__code__


async def serve_burst(batch):
    """Serve one burst: a task per request, at most CONCURRENCY at once (the accept loop waits for a free slot
    before it makes the next request's task); returns (tasks, transports)."""
    gate = asyncio.Semaphore(CONCURRENCY)
    transports = [hashlib.sha256() for _ in batch]
    ev = asyncio.get_running_loop()
    tasks = []
    for req, tr in zip(batch, transports):
        await gate.acquire()
        tasks.append(ev.create_task(handle(req, tr)))
        tasks[-1].add_done_callback(lambda _t: gate.release())
    await asyncio.gather(*tasks)
    for t in tasks:
        t.result()  # a request that failed fails the burst
    return tasks, transports


def summary(batch, transports):
    digest = hashlib.sha256()
    for tr in transports:
        digest.update(tr.digest())
    return {"requests": len(batch), "first": batch[0][0], "responses_sha256": digest.hexdigest(),
            "cached": len(CACHE.data)}


def job(batch):
    """One burst served plainly (no objarena)."""
    tasks, transports = loop().run_until_complete(serve_burst(batch))
    return summary(batch, transports)


# The main job's objarena variants, as an async service uses objarena: a scope per request task.
# objarena.run does not apply: it runs a synchronous function (its result copied out); a request here is a task.
SCOPED_VARIANTS = ("objarena.scope", "objarena.Pool")
SUM_KEYS = ("blocks_allocated", "bytes_released", "bytes_retained", "bytes_pages_released", "chunks_released",
            "chunks_retained", "chunks_parked", "live_blocks_at_exit", "alloc_fallbacks", "limit_hits")


def job_scoped(batch, variant, pool=None):
    """One burst with a task scope per request (variant objarena.scope; objarena.Pool: the task scopes take
    their chunks from `pool`). Returns (summary, the task scopes' statistics summed over the burst; peak_mapped:
    the largest task's; scopes: how many)."""
    import objarena.asyncio
    if variant not in SCOPED_VARIANTS:
        raise ValueError(f"async_service: no per-task form of {variant!r} (one of {', '.join(SCOPED_VARIANTS)})")
    if (variant == "objarena.Pool") != (pool is not None):
        raise ValueError("async_service: objarena.Pool takes a pool, objarena.scope none")
    ev = loop()
    previous = ev.get_task_factory()
    ev.set_task_factory(objarena.asyncio.task_factory(is_request, **({"pool": pool} if pool is not None else {})))
    try:
        tasks, transports = ev.run_until_complete(serve_burst(batch))
    finally:
        ev.set_task_factory(previous)
    scopes = [t.get_coro().scope for t in tasks]
    open_ = ["no scope" if s is None else s.state for s in scopes if s is None or s.state != "exited"]
    if open_:  # every request has a scope, and it exits in its task's done callback, before gather returns
        raise RuntimeError(f"async_service: {len(open_)} task scope(s) not exited after the burst: {open_[:3]}")
    stats = {k: 0 for k in SUM_KEYS}
    stats["peak_mapped"] = 0
    for s in scopes:
        st = s.stats
        for k in SUM_KEYS:
            stats[k] += st.get(k, 0)
        stats["peak_mapped"] = max(stats["peak_mapped"], st.get("peak_mapped", 0))
    stats["scopes"] = len(scopes)
    return summary(batch, transports), stats


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def serve(batches, variant):
    """Every burst under one variant (plain, tasks, pool), in this process; one record per burst."""
    job(make_batches(1, 20, 50, seed=99)[0])  # warm-up, outside any scope: the loop, lazy imports
    pool = None
    if variant == "pool":
        import objarena
        pool = objarena.Pool()
    base = rss_mib()
    out = []
    for batch in batches:
        if variant == "plain":
            rec, stats = job(batch), None
        else:
            rec, stats = job_scoped(batch, "objarena.Pool" if pool is not None else "objarena.scope", pool)
        rec["stats"] = stats
        rec["rss_mib"] = round(rss_mib() - base, 2)
        out.append(rec)
    if pool is not None:
        pool.close()
    return {"variant": variant, "bursts": out, "rss_end_mib": round(rss_mib() - base, 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bursts", type=int, default=6)
    ap.add_argument("--requests", type=int, default=150, help="requests per burst")
    ap.add_argument("--records", type=int, default=200, help="records per request (each: records/2 .. 1.5*records)")
    ap.add_argument("--variant", choices=["plain", "tasks", "pool"], help="serve with one variant, in this process")
    ap.add_argument("--json", help="with --variant: write the result here as JSON ('-': stdout)")
    args = ap.parse_args(argv)
    batches = make_batches(args.bursts, args.requests, args.records)
    if args.variant:
        text = json.dumps(serve(batches, args.variant))
        if args.json == "-":
            print(text)
        elif args.json:
            with open(args.json, "w") as f:
                f.write(text)
        return 0

    runs = {}
    for v in ("plain", "tasks", "pool"):  # each in a fresh process: none inherits another's memory
        cmd = [sys.executable, os.path.abspath(__file__), "--variant", v, "--bursts", str(args.bursts),
               "--requests", str(args.requests), "--records", str(args.records), "--json", "-"]
        runs[v] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    print(f"{args.bursts} bursts of {args.requests} requests; RSS above the service's after its warm-up, MiB:")
    print(f"{'burst':>5s} {'plain':>7s} {'tasks':>7s} {'pool':>7s}  task scopes: released at exit, escaped blocks")
    for i, bursts in enumerate(zip(*(runs[v]["bursts"] for v in runs))):
        p, t, q = bursts
        same = p["responses_sha256"] == t["responses_sha256"] == q["responses_sha256"]
        st = t["stats"]
        moved = st["bytes_released"] + st["bytes_retained"]
        share = st["bytes_released"] / moved if moved else 1.0
        print(f"{i:5d} {p['rss_mib']:7.2f} {t['rss_mib']:7.2f} {q['rss_mib']:7.2f}  {st['scopes']} scopes, "
              f"{share:.1%}, {st['live_blocks_at_exit']} blocks{'' if same else '  RESPONSES DIFFER'}")
    print("end (pool closed): " + ", ".join(f"{v} {r['rss_end_mib']:.2f}" for v, r in runs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
