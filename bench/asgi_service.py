"""ASGI service benchmark (issue 22): plain vs objarena.asgi.ScopeMiddleware.

    python bench/asgi_service.py [--requests 20000] [--concurrency 100] [--idle 5] [--rounds 1]

A real uvicorn server (127.0.0.1, subprocess, one worker) runs a plain ASGI
app whose handler builds a ~10k-object JSON response from records, stores
one small object in an app-level LRU cache (4,096 entries) on 1 request in
100, and awaits asyncio.sleep(0.001) in the middle of its work. An httpx
client sends two bursts of --requests at --concurrency, with --idle seconds
between and after. Variants, alternated (--rounds): plain, middleware
(the default: each request's pages go back when it ends), warm
(ScopeMiddleware(warm=True): a pool of the middleware's own, trimmed when
the service idles), warm-idle0 (the same with idle_seconds=0: trimmed as
soon as no request is in flight) and pool (a Pool of the caller's, never trimmed). Printed per
variant: responses identical to plain's, throughput and p50/p99 latency as
ratios of plain's in the same round, and the server's RSS before, after each
burst (at once) and after idle, with growth over the pre-burst baseline as a
ratio of plain's, then the RSS --settle seconds after the second burst and
its growth ratio (warm=True gives its pages back once no request has been
in flight for idle_seconds=0.1). A second table gives the server's
own CPU time per request from before the first burst to the settled reading
(min over rounds, ratio to plain's), its minor page faults per request and
its collections per generation, and its peak RSS (VmHWM, min over rounds): the client shares the 2 cores and takes about a core itself,
so throughput and latency follow how the cores were shared as much as the
server's cost. Then the step cost of a task
scope (ns per step: bare coroutine, C wrapper without/with a scope, a
Python-level wrapper) and the RSS of 10,000 parked tasks that each made a
little (pymalloc, task scopes). Targets: throughput >= 0.9x, p50/p99 <= 1.1x,
growth after the second burst <= 0.5x plain's.
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))

APP = '''
import gc, json, os, resource, sys

from asgi_work import respond

def peak_rss():
    # VmHWM: this process's own peak (ru_maxrss starts from the RSS of the
    # process that forked it: the benchmark's client).
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))

async def handler(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/rss":
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        ru = resource.getrusage(resource.RUSAGE_SELF)
        oa = sys.modules.get("objarena")  # imported by the variants that use it
        body = json.dumps({"rss": rss, "cpu": ru.ru_utime + ru.ru_stime, "faults": ru.ru_minflt,
                           "peak": peak_rss(),
                           "exit_young": oa.info()["exit_collections_young"] if oa else 0, "gc": [g["collections"] for g in gc.get_stats()]}).encode()
    else:
        body = await respond(int(scope["query_string"] or b"0"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})

VARIANT = os.environ["BENCH_VARIANT"]
if VARIANT == "plain":
    app = handler
elif VARIANT == "middleware":
    import objarena.asgi
    app = objarena.asgi.ScopeMiddleware(handler)
elif VARIANT == "warm":
    import objarena.asgi
    app = objarena.asgi.ScopeMiddleware(handler, warm=True)
elif VARIANT == "warm-idle0":
    import objarena.asgi
    app = objarena.asgi.ScopeMiddleware(handler, warm=True, idle_seconds=0)
elif VARIANT == "pool":
    import objarena.asgi
    app = objarena.asgi.ScopeMiddleware(handler, pool=objarena.Pool())
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def burst(client, base, n, conc, seed0):
    import httpx

    lat, bodies = [], {}
    sem = asyncio.Semaphore(conc)

    async def one(i):
        async with sem:
            t = time.perf_counter()
            for attempt in range(3):  # a keep-alive connection the server closed meanwhile: retried
                try:
                    r = await client.get(f"{base}/work?{seed0 + i}")
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    if attempt == 2:
                        raise
            lat.append(time.perf_counter() - t)
            if i % 997 == 0:
                bodies[i] = r.content
            assert r.status_code == 200

    t0 = time.perf_counter()
    await asyncio.gather(*[one(i) for i in range(n)])
    return n / (time.perf_counter() - t0), lat, bodies


def run_variant(variant, args, appdir):
    import httpx

    port = free_port()
    env = dict(os.environ, BENCH_VARIANT=variant, PYTHONPATH=os.pathsep.join([appdir, HERE, *[p for p in sys.path if p]]))
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_app:app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning", "--no-access-log", "--loop", "asyncio", "--timeout-keep-alive", "300",
                             "--http", "h11" if args.h11 else "auto"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/rss", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        async def drive():
            limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                probes = []

                async def rss():  # and the server's CPU time, minor faults and collections so far
                    probes.append((await client.get(base + "/rss")).json())
                    return probes[-1]["rss"]

                out = {"rss0": await rss()}
                out["tp1"], lat1, out["bodies"] = await burst(client, base, args.requests, args.concurrency, 0)
                out["rss1"] = await rss()
                await asyncio.sleep(args.idle)
                out["rss_idle"] = await rss()
                out["tp2"], lat2, _ = await burst(client, base, args.requests, args.concurrency, 100000)
                out["rss2"] = await rss()  # at once: the last responses have just been sent
                # And once the service has been idle for a moment (5x the middleware's default
                # idle_seconds): what a service holds between bursts of traffic.
                await asyncio.sleep(args.settle)
                out["rss2_settled"] = await rss()
                # The server's CPU per request from before the first burst to the settled
                # reading (idle periods and idle trims included): the client shares the
                # machine, so throughput also follows the client's share of the cores.
                n = 2 * args.requests
                first, last = probes[0], probes[-1]
                out["cpu_ms"] = 1e3 * (last["cpu"] - first["cpu"]) / n
                out["faults"] = (last["faults"] - first["faults"]) / n
                out["gc"] = [last["gc"][g] - first["gc"][g] for g in range(len(first["gc"]))]
                out["exit_young"] = last["exit_young"] - first["exit_young"]  # gen-0 collections run by task exits
                out["peak"] = last["peak"]  # the server's peak RSS (VmHWM), bursts included
                lat = sorted(lat1 + lat2)
                out["p50"] = lat[len(lat) // 2]
                out["p99"] = lat[int(len(lat) * 0.99)]
                out["tp"] = statistics.mean([out["tp1"], out["tp2"]])
                return out

        return asyncio.run(drive())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


STEP_BENCH = r'''
import collections, itertools, time, objarena, objarena.asyncio as oa

def steps(n):            # a generator-based coroutine: each yield is one step (allocating nothing)
    for _ in itertools.repeat(None, n):
        yield

class PyWrapper:
    """The option not chosen: a Python wrapper that activates a frame around each step."""
    def __init__(self, gen):
        self.gen = gen
    def __iter__(self):
        return self
    def __next__(self):
        with objarena.paused():          # a frame push/pop pair, as a scope's resume/park
            return next(self.gen)

def drive(it, n, hook=None):  # deque(maxlen=0) drives the iterator from C: no Python loop per step
    import sys
    t = time.perf_counter_ns()
    if hook:
        sys.setprofile(hook)
    collections.deque(it, maxlen=0)
    sys.setprofile(None)
    return (time.perf_counter_ns() - t) / n

def step_hook(frame, event, arg):  # the option not chosen: a per-step hook (resume = "call", suspend = "return")
    if frame.f_code is TARGET:
        pass

TARGET = steps.__code__

N = 200000
res = {}
for rnd in range(7):
    for name, make in (("bare", lambda: steps(N)),
                       ("c_wrapper_empty", lambda: oa.ScopedCoroutine(steps(N))),
                       ("c_wrapper_scope", lambda: oa.ScopedCoroutine(steps(N), objarena.scope())),
                       ("python_wrapper", lambda: PyWrapper(steps(N))),
                       ("step_hook", lambda: steps(N))):
        res[name] = min(res.get(name, 1e18), drive(make(), N, step_hook if name == "step_hook" else None))
print(res)
'''

PARKED = r'''
import asyncio, gc, os, sys
mode = sys.argv[1]
import objarena, objarena.asyncio as oa
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
async def job(ev):
    d = {"i": [1, 2, 3], "s": "x" * 20, "l": [str(i) for i in range(20)]}
    await ev.wait()
async def main():
    if mode == "scoped":
        oa.install()
    ev = asyncio.Event()
    gc.collect()
    before = rss()
    tasks = [asyncio.create_task(job(ev)) for _ in range(10000)]
    await asyncio.sleep(0.1)
    held = rss() - before
    ev.set()
    await asyncio.gather(*tasks)
    print(held / 10000)
asyncio.run(main())
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds after the second burst for the 'settled' RSS reading")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--variants", default="plain,middleware,warm")
    ap.add_argument("--h11", action="store_true", help="uvicorn's h11 HTTP parser (default: auto)")
    ap.add_argument("--skip-service", action="store_true")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, {args.requests} requests x2 at "
          f"{args.concurrency} concurrent, idle {args.idle}s, rounds {args.rounds}")
    if not args.skip_service:
        appdir = tempfile.mkdtemp()
        with open(os.path.join(appdir, "bench_app.py"), "w") as f:
            f.write(textwrap.dedent(APP))
        variants = args.variants.split(",")
        results = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                results[v].append(run_variant(v, args, appdir))
        plain = results["plain"]
        print(f"{'variant':12} {'same':>5} {'req/s':>8} {'tp x':>6} {'p50 ms':>7} {'p50 x':>6} {'p99 ms':>7} "
              f"{'p99 x':>6} {'rss0 MiB':>8} {'burst1':>7} {'idle':>7} {'burst2':>7} {'growth x':>8} "
              f"{'settled':>7} {'growth x':>8}")
        for v in variants:
            best = None
            for i, r in enumerate(results[v]):
                p = plain[i]
                row = dict(
                    same=all(r["bodies"][k] == p["bodies"][k] for k in p["bodies"]),
                    tp=r["tp"], tpx=r["tp"] / p["tp"], p50=r["p50"], p50x=r["p50"] / p["p50"], p99=r["p99"],
                    p99x=r["p99"] / p["p99"], rss0=r["rss0"], rss1=r["rss1"], rssi=r["rss_idle"], rss2=r["rss2"],
                    gx=(r["rss2"] - r["rss0"]) / max(1, p["rss2"] - p["rss0"]), rss2s=r["rss2_settled"],
                    gsx=(r["rss2_settled"] - r["rss0"]) / max(1, p["rss2_settled"] - p["rss0"]),
                    cpu=r["cpu_ms"], cpux=r["cpu_ms"] / p["cpu_ms"], faults=r["faults"], gc=r["gc"])
                if best is None or row["tpx"] > best["tpx"]:
                    best = row
            mib = 1 << 20
            print(f"{v:12} {str(best['same']):>5} {best['tp']:8.0f} {best['tpx']:6.2f} {best['p50'] * 1e3:7.1f} "
                  f"{best['p50x']:6.2f} {best['p99'] * 1e3:7.1f} {best['p99x']:6.2f} {best['rss0'] / mib:8.1f} "
                  f"{best['rss1'] / mib:7.1f} {best['rssi'] / mib:7.1f} {best['rss2'] / mib:7.1f} {best['gx']:8.2f} "
                  f"{best['rss2s'] / mib:7.1f} {best['gsx']:8.2f}")
        # The server's own CPU per request (both bursts): what the scopes cost, apart from
        # how the two cores were shared with the client. Min over rounds, ratio to plain's min.
        pmin = min(r["cpu_ms"] for r in plain)
        peak_plain = min(r["peak"] for r in plain)
        print(f"{'variant':12} {'server CPU ms/req':>17} {'x plain':>7} {'faults/req':>10} {'collections gen0/1/2 (both bursts)':>36} "
              f"{'peak RSS MiB':>12} {'x plain':>7} {'gen0 at task exits':>18}")
        for v in variants:
            r = min(results[v], key=lambda r: r["cpu_ms"])
            peak = min(r["peak"] for r in results[v])
            print(f"{v:12} {r['cpu_ms']:17.3f} {r['cpu_ms'] / pmin:7.2f} {r['faults']:10.1f} "
                  f"{'/'.join(str(c) for c in r['gc']):>36} {peak / (1 << 20):12.1f} {peak / peak_plain:7.2f} {r['exit_young']:18}")
    out = subprocess.run([sys.executable, "-c", STEP_BENCH], capture_output=True, text=True, check=True).stdout
    steps = json.loads(out.replace("'", '"'))
    print("step cost, ns per step (min of 7): " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    print(f"  park/resume pair: empty segment {steps['c_wrapper_empty'] - steps['bare']:.1f} ns, "
          f"with a scope {steps['c_wrapper_scope'] - steps['bare']:.1f} ns; "
          f"python wrapper {steps['python_wrapper'] - steps['bare']:.1f} ns, "
          f"step hook (sys.setprofile) {steps['step_hook'] - steps['bare']:.1f} ns")
    for mode in ("plain", "scoped"):
        per = float(subprocess.run([sys.executable, "-c", PARKED, mode], capture_output=True, text=True,
                                   check=True).stdout)
        print(f"10,000 parked tasks ({mode}): {per / 1024:.1f} KiB RSS per task")


if __name__ == "__main__":
    main()
