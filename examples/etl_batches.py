"""ETL in batches: parse CSV orders and JSON-lines events, aggregate, write a
small result. Each batch runs in `objarena.run`, so the batch's parsed rows
(thousands of dicts and strings) live in an arena that goes back to the OS
when the batch ends; only the small aggregate is copied out.

    python examples/etl_batches.py [--batches 6] [--rows 20000] [--out result.json]

The input is generated (seeded) before the first batch, outside any scope.
"""
import argparse
import csv
import io
import json
import random
import sys

import objarena

REGIONS = ["north", "south", "east", "west", "central"]
KINDS = ["view", "click", "cart", "buy", "refund"]


def make_batches(batches=6, rows=20_000, seed=1):
    """One (csv_text, jsonl_text) pair per batch."""
    rng = random.Random(seed)
    out = []
    for b in range(batches):
        orders = io.StringIO()
        w = csv.writer(orders)
        w.writerow(["order_id", "customer", "region", "amount", "items"])
        for i in range(rows):
            w.writerow([f"{b}-{i}", f"c{rng.randrange(2000):04d}", rng.choice(REGIONS),
                        f"{rng.uniform(1, 500):.2f}", rng.randrange(1, 9)])
        events = "\n".join(
            json.dumps({"customer": f"c{rng.randrange(2000):04d}", "kind": rng.choice(KINDS),
                        "ms": rng.randrange(5000), "tags": [rng.choice(KINDS) for _ in range(3)]})
            for _ in range(rows))
        out.append((orders.getvalue(), events))
    return out


def job(batch):
    """Parse one batch and return its aggregate (plain data: dicts of numbers)."""
    csv_text, jsonl_text = batch
    orders = list(csv.DictReader(io.StringIO(csv_text)))
    events = [json.loads(line) for line in jsonl_text.splitlines()]
    revenue = {}
    spend = {}
    for o in orders:
        amount = float(o["amount"])
        revenue[o["region"]] = revenue.get(o["region"], 0.0) + amount
        spend[o["customer"]] = spend.get(o["customer"], 0.0) + amount
    kinds = {}
    for e in events:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    top = sorted(spend.items(), key=lambda kv: -kv[1])[:3]
    return {"orders": len(orders), "events": len(events),
            "revenue_by_region": {k: round(v, 2) for k, v in sorted(revenue.items())},
            "events_by_kind": dict(sorted(kinds.items())), "top_customers": top}


def merge(total, part):
    total["orders"] = total.get("orders", 0) + part["orders"]
    total["events"] = total.get("events", 0) + part["events"]
    for key in ("revenue_by_region", "events_by_kind"):
        acc = total.setdefault(key, {})
        for k, v in part[key].items():
            acc[k] = round(acc.get(k, 0) + v, 2)
    return total


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--rows", type=int, default=20_000, help="orders (and events) per batch")
    ap.add_argument("--out", help="write the aggregate here as JSON (default: print it)")
    args = ap.parse_args(argv)

    batches = make_batches(args.batches, args.rows)
    job(make_batches(1, 100, seed=0)[0])  # warm lazily created interpreter state, outside any scope
    before = objarena.info()
    total = {}
    print(f"{len(batches)} batches of {args.rows:,} orders + {args.rows:,} events; RSS {rss_mib():.1f} MiB")
    for i, batch in enumerate(batches):
        part = objarena.run(job, batch)  # the batch's memory goes back here; `part` is a copy
        merge(total, part)
        print(f"batch {i}: {part['orders']:,} orders, {part['events']:,} events, "
              f"top customer {part['top_customers'][0][0]}; RSS {rss_mib():.1f} MiB")
    after = objarena.info()
    total["scopes"] = after["arenas_created"] - before["arenas_created"]
    total["retained_blocks"] = after["retained_blocks"] - before["retained_blocks"]
    total["retained_bytes"] = after["retained_bytes"] - before["retained_bytes"]
    print(f"{total['scopes']} scopes; still retained by them: {total['retained_blocks']} block(s) in "
          f"{total['retained_bytes'] / 2**20:.1f} MiB of chunks")
    text = json.dumps(total, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
