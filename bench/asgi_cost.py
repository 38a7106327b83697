"""Where a request's task scope spends its time (issue 22), in one process.

    python bench/asgi_cost.py [--requests 2000] [--concurrency 100] [--variants plain,scoped,pool,factory,factory-pool]

The request of bench/asgi_service.py (bench/asgi_work.py: 1,000 records, a 1 ms sleep mid-work,
1 request in 100 keeping a small object in an LRU cache, a JSON body), run
--concurrency at a time on one event loop without a server: each request
plain, in a task scope (objarena.asyncio.ScopedCoroutine, as
objarena.asgi.ScopeMiddleware drives it) or in a task scope of one Pool;
or (factory, factory-pool) every task of the gather in a scope from the
task factory (objarena.asyncio.install), the ones still waiting on the
semaphore too.
Each variant in its own process (the collector's counters are per
process). Printed per variant: wall time, CPU time, collections per
generation with their total time (gc.callbacks), minor page faults, and
for the pool variants the chunks the pool handed out warm, the retained
chunks its scopes adopted warm, and the chunks mapped fresh: what
separates the scoped runs from plain's.
"""
import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time

from asgi_work import respond


async def handler(seed):
    return len(await respond(seed))


async def serve(n, conc, variant):
    import objarena
    from objarena.asyncio import ScopedCoroutine

    pool = objarena.Pool() if variant in ("pool", "factory-pool") else None
    sem = asyncio.Semaphore(conc)
    if variant.startswith("factory"):
        # Every task of the gather has a scope from the task factory, the
        # ones waiting on the semaphore too (objarena.asyncio.install).
        import objarena.asyncio

        objarena.asyncio.install(pool=pool)

    async def one(i):
        async with sem:
            if variant == "plain" or variant.startswith("factory"):
                return await handler(i)
            with objarena.paused():  # the wrapper and the scope outlive the request's arena
                step = ScopedCoroutine(handler(i), objarena.scope(pool=pool) if pool else objarena.scope())
            return await step

    total = sum(await asyncio.gather(*[one(i) for i in range(n)]))
    if pool:
        POOL_STATS.update(pool.stats)
    return total


POOL_STATS = {}


def child(args):
    per_gen, started = {}, [0.0]

    def cb(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            s = per_gen.setdefault(info["generation"], [0, 0.0])
            s[0] += 1
            s[1] += time.perf_counter() - started[0]

    gc.callbacks.append(cb)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    total = asyncio.run(serve(args.requests, args.concurrency, args.variant))
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    gc.callbacks.remove(cb)
    print(json.dumps({"wall": wall, "cpu": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                      "faults": r1.ru_minflt - r0.ru_minflt, "gc": per_gen, "check": total,
                      "pool": [POOL_STATS.get(k) for k in ("hits", "retained_hits", "misses")] if POOL_STATS else None}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--variants", default="plain,scoped,pool,factory,factory-pool")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        return child(args)
    print(f"python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, "
          f"{args.requests} requests at {args.concurrency} concurrent")
    print(f"{'variant':12} {'wall s':>7} {'cpu s':>6} {'cpu x':>6} {'faults':>8} "
          f"{'gen0 n/s':>12} {'gen1 n/s':>12} {'gen2 n/s':>11} {'pool hit/adopt/miss':>20}")
    base, check = None, None
    for v in args.variants.split(","):
        out = subprocess.run([sys.executable, __file__, "--variant", v, "--requests", str(args.requests),
                              "--concurrency", str(args.concurrency)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or r["cpu"]
        check = check or r["check"]
        assert r["check"] == check, "responses differ"
        g = {int(k): val for k, val in r["gc"].items()}
        cols = " ".join(f"{g.get(k, [0, 0])[0]:>6}/{g.get(k, [0, 0])[1]:<5.2f}" for k in range(3))
        pool = "%d/%d/%d" % tuple(r["pool"]) if r["pool"] else "-"
        print(f"{v:12} {r['wall']:>7.2f} {r['cpu']:>6.2f} {r['cpu'] / base:>6.2f} {r['faults']:>8} {cols} {pool:>20}")


if __name__ == "__main__":
    main()
