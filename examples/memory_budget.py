"""A memory budget per request: `scope(limit=...)` turns a runaway request
into a `MemoryError` inside that request, which the server catches and
reports, and the process goes on serving the next ones.

    python examples/memory_budget.py [--limit-mib 32] [--requests 8] [--runaway 3]

Past `limit` bytes held by the phase, allocation raises MemoryError. The
runaway request here tries to build ten times its budget in small objects.
"""
import argparse
import json
import sys

import objarena


def handle(request_id, n):
    """A request that builds n small records and summarizes them."""
    rows = [(i, f"item-{i}", i % 7) for i in range(n)]
    return {"request": request_id, "rows": len(rows), "groups": len({r[2] for r in rows})}


def runaway_size(limit):
    # each row: a tuple (64 B), a str (~60 B) and a list slot: ~10x the budget in rows
    return 10 * limit // 100


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def serve(requests, runaway, limit):
    """Serve each request in a scope with the budget; returns one outcome per request."""
    outcomes = []
    handle(-1, 100)  # warm lazily created interpreter state, outside any scope
    for rid in range(requests):
        n = runaway_size(limit) if rid == runaway else 20_000
        try:
            with objarena.scope(limit=limit) as phase:
                reply = handle(rid, n)
                with objarena.paused():  # the reply outlives the request: text from the normal allocator
                    text = json.dumps(reply)
                del reply
            outcome = {"request": rid, "ok": True, "rows": json.loads(text)["rows"]}
        except MemoryError:
            outcome = {"request": rid, "ok": False, "error": "MemoryError"}
        st = phase.stats
        outcome.update(asked_rows=n, peak_mapped_mib=round(st["peak_mapped"] / 2**20, 2),
                       alloc_failures=st["alloc_failures"], live_blocks=st["live_blocks_at_exit"],
                       rss_mib=round(rss_mib(), 1))
        outcomes.append(outcome)
    return outcomes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit-mib", type=int, default=32, help="each request's budget")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--runaway", type=int, default=3, help="which request runs away")
    ap.add_argument("--json", help="also write the outcomes here as JSON")
    args = ap.parse_args(argv)
    limit = args.limit_mib * 2**20

    outcomes = serve(args.requests, args.runaway, limit)
    print(f"budget {args.limit_mib} MiB per request")
    for o in outcomes:
        what = f"ok, {o['rows']:,} rows" if o["ok"] else f"refused: {o['error']} (asked for {o['asked_rows']:,} rows)"
        print(f"request {o['request']}: {what}; arena peak {o['peak_mapped_mib']:.1f} MiB, "
              f"failed allocations {o['alloc_failures']}, process RSS {o['rss_mib']:.1f} MiB")
    served = sum(o["ok"] for o in outcomes)
    print(f"{served} of {len(outcomes)} requests served; the process is still up")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"limit": limit, "outcomes": outcomes}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
