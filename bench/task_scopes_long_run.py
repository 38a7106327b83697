"""Thousands of task scopes in one process (issue 22): is memory bounded?

    python bench/task_scopes_long_run.py [--rounds 30] [--tasks 1000] [--concurrency 100]

Each round gathers --tasks requests of bench/asgi_work.py (1,000 records, a
1 ms sleep, 1 request in 100 keeping a small object in a 4,096-entry LRU
cache) through a semaphore of --concurrency, so most tasks start and wait
before they run. Modes, each in its own process: plain (no scope), bare
(objarena.asyncio.install(): a scope per task) and pool
(install(pool=objarena.Pool())). Printed every 5 rounds: RSS, arena bytes
mapped, retained chunks and the pool's warm bytes (MiB). A Pool keeps up
to its max_warm_bytes (256 MiB by default) warm on purpose; what must not
happen is growth past it.
"""
import argparse
import asyncio
import subprocess
import sys

from asgi_work import respond


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 >> 20


async def run(mode, rounds, tasks, conc):
    import objarena
    import objarena.asyncio

    pool = None
    if mode == "pool":
        pool = objarena.Pool()
        objarena.asyncio.install(pool=pool)
    elif mode == "bare":
        objarena.asyncio.install()
    sem = asyncio.Semaphore(conc)

    async def one(i):
        async with sem:
            await respond(i)

    rows = []
    for r in range(rounds):
        await asyncio.gather(*[one(r * tasks + i) for i in range(tasks)])
        if r % 5 == 4 or r == rounds - 1:
            info = objarena.info()
            rows.append((r + 1, rss_mib(), info["bytes_mapped"] >> 20, info["retained_chunks"],
                         (pool.stats["warm_bytes"] + pool.stats["warm_retained_bytes"]) >> 20 if pool else 0))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        for row in asyncio.run(run(args.mode, args.rounds, args.tasks, args.concurrency)):
            print(*row)
        return
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds of {args.tasks} tasks at {args.concurrency}")
    print(f"{'mode':6} {'tasks':>7} {'RSS MiB':>8} {'mapped':>7} {'retained':>9} {'pool warm':>10}")
    for mode in ("plain", "bare", "pool"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--rounds", str(args.rounds),
                              "--tasks", str(args.tasks), "--concurrency", str(args.concurrency)],
                             check=True, capture_output=True, text=True).stdout
        for line in out.split("\n"):
            if line.strip():
                r, rss, mapped, retained, warm = map(int, line.split())
                print(f"{mode:6} {r * args.tasks:>7} {rss:>8} {mapped:>7} {retained:>9} {warm:>10}")


if __name__ == "__main__":
    main()
