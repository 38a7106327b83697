"""Code nobody here wrote: networkx (pure Python graphs: dicts of dicts) builds
a graph per batch of edges and analyses it, one scope per batch, keeping a
small summary per batch.

    python examples/graph_batches.py [--batches 6] [--nodes 4000] [--edges 16000]

The summary leaves each scope as JSON text made under `objarena.paused()` and
is parsed after the scope, so nothing the batch made outlives it: every chunk
is released at the scope's exit, or, where the exit deferred its full garbage
collection, at a later one.
"""
import argparse
import gc
import json
import random
import sys

import networkx as nx

import objarena


def make_batches(batches=6, nodes=4000, edges=16_000, seed=3):
    """One edge list per batch: a sparse random graph with a few dense clusters."""
    rng = random.Random(seed)
    out = []
    for _ in range(batches):
        pairs = [(rng.randrange(nodes), rng.randrange(nodes)) for _ in range(edges)]
        pairs += [(c * 50 + rng.randrange(50), c * 50 + rng.randrange(50)) for c in range(20) for _ in range(200)]
        out.append(pairs)
    return out


def job(edges):
    """Build the graph and analyse it; returns a small summary (plain data)."""
    g = nx.Graph()
    g.add_edges_from(edges)
    g.remove_edges_from(list(nx.selfloop_edges(g)))
    components = list(nx.connected_components(g))
    giant = g.subgraph(max(components, key=len))
    cores = nx.core_number(g)
    hubs = sorted(g.degree, key=lambda nd: -nd[1])[:3]
    reach = nx.single_source_shortest_path_length(giant, hubs[0][0])
    return {"nodes": g.number_of_nodes(), "edges": g.number_of_edges(), "components": len(components),
            "giant": giant.number_of_nodes(), "triangles": sum(nx.triangles(g).values()) // 3,
            "max_core": max(cores.values()), "hubs": [n for n, _ in hubs],
            "diameter_from_hub": max(reach.values())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--nodes", type=int, default=4000)
    ap.add_argument("--edges", type=int, default=16_000)
    ap.add_argument("--json", help="also write the summaries and each batch's scope stats here")
    args = ap.parse_args(argv)

    batches = make_batches(args.batches, args.nodes, args.edges)
    job(batches[0][:100])  # networkx imports some modules lazily: do that outside any scope
    summaries, stats = [], []
    print(f"networkx {nx.__version__}: {len(batches)} batches")
    for i, edges in enumerate(batches):
        with objarena.scope() as phase:
            s = job(edges)
            with objarena.paused():  # the summary leaves as text, made by the normal allocator
                text = json.dumps(s)
            del s
        summaries.append(json.loads(text))  # (after the scope: see "Keeping results" in docs/reference.md)
        st = phase.stats
        stats.append(dict(st))
        mapped = st["bytes_released"] + st["bytes_retained"]
        print(f"batch {i}: {summaries[-1]['nodes']} nodes, {summaries[-1]['edges']} edges, "
              f"{summaries[-1]['components']} components, {summaries[-1]['triangles']} triangles, "
              f"max core {summaries[-1]['max_core']}; scope mapped {st['peak_mapped'] / 2**20:.1f} MiB, "
              f"released {st['bytes_released'] / mapped if mapped else 1:.1%}, "
              f"{st['live_blocks_at_exit']} live block(s) at exit")
    # A graph holds reference cycles. A scope's exit collects the young generations; when it defers the
    # full collection (paced, stats["full_collection_deferred"]), cyclic garbage that reached the old
    # generation keeps its chunks until a later collection frees it, as this one does:
    before = objarena.info()["retained_blocks"]
    gc.collect()
    after = objarena.info()["retained_blocks"]
    print(f"blocks retained by the batches' scopes: {before} before a gc.collect(), {after} after it")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summaries": summaries, "stats": stats, "retained_blocks_before_collect": before,
                       "retained_blocks_after_collect": after}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
