"""Workloads for bench/run.py (stdlib only).

Each workload is a class with ``setup(scale)`` (run once per process, before the
baseline RSS is taken: input data lives outside any scope) and ``phase(i)``
(one phase of work; returns what the phase *keeps*: the driver appends it to a
list that lives for the whole process, so it escapes any scope around the
phase). ``scale`` multiplies the sizes (1.0 = full run, a phase takes roughly
0.1-0.5 s on a 2-core VM with CPython 3.11).
"""
import ast
import csv
import io
import json
import os
import random
import sysconfig


def _n(base, scale, minimum=1):
    return max(minimum, int(base * scale))


class JsonDecode:
    """Decode pre-generated JSON documents (nested dicts/lists/strings), aggregate."""

    def setup(self, scale):
        rng = random.Random(1)
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
        docs = []
        for d in range(_n(800, scale)):
            doc = {
                "id": d,
                "name": f"document-{d}",
                "tags": [rng.choice(words) for _ in range(5)],
                "items": [
                    {
                        "sku": f"SKU{rng.randrange(10**6):06d}",
                        "group": rng.choice(words),
                        "qty": rng.randrange(1, 20),
                        "price": round(rng.uniform(0.5, 200.0), 2),
                        "attrs": {"color": rng.choice(words), "size": rng.randrange(40),
                                  "note": " ".join(rng.choice(words) for _ in range(4))},
                        "history": [rng.randrange(1000) for _ in range(4)],
                    }
                    for _ in range(40)
                ],
            }
            docs.append(json.dumps(doc))
        self.docs = docs
        self.input_bytes = sum(len(s) for s in docs)

    def phase(self, i):
        totals = {}
        count = 0
        for text in self.docs:
            doc = json.loads(text)
            for item in doc["items"]:
                g = item["group"]
                totals[g] = totals.get(g, 0.0) + item["qty"] * item["price"]
                count += len(item["attrs"]["note"]) + sum(item["history"])
        return (count, totals)


class AstCompile:
    """ast.parse + compile() of ~40 stdlib modules of the running interpreter."""

    def setup(self, scale):
        lib = sysconfig.get_paths()["stdlib"]
        names = sorted(n for n in os.listdir(lib) if n.endswith(".py"))
        paths = [os.path.join(lib, n) for n in names]
        paths = [p for p in paths if 4_000 <= os.path.getsize(p) <= 40_000]
        want = _n(40, scale, minimum=4)
        step = max(1, len(paths) // want)  # every k-th file: a shorter list still spans the alphabet
        sources = []
        for path in paths[::step] + paths:  # the spread first, then fill up if some were unusable
            if len(sources) == want:
                break
            if any(path == p for p, _ in sources):
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    src = f.read()
                compile(src, path, "exec", dont_inherit=True)  # skip what does not compile here
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            sources.append((path, src))
        self.sources = sources
        self.input_bytes = sum(len(s) for _, s in self.sources)

    def phase(self, i):
        total = 0
        for path, src in self.sources:
            tree = ast.parse(src, path)
            code = compile(tree, path, "exec", dont_inherit=True)
            total += len(code.co_consts) + len(tree.body)
        return total


class CsvAggregate:
    """csv.reader over pre-generated CSV text, aggregate into dicts."""

    def setup(self, scale):
        rng = random.Random(2)
        cities = [f"city{c:03d}" for c in range(300)]
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["id", "city", "product", "qty", "price", "comment"])
        for r in range(_n(120_000, scale)):
            w.writerow([r, rng.choice(cities), f"p{rng.randrange(2000)}", rng.randrange(1, 50),
                        f"{rng.uniform(1, 500):.2f}", "ok" if r % 7 else "returned, refunded"])
        self.text = out.getvalue()
        self.input_bytes = len(self.text)

    def phase(self, i):
        by_city = {}
        by_product = {}
        reader = csv.reader(io.StringIO(self.text))
        next(reader)
        for row in reader:
            amount = int(row[3]) * float(row[4])
            by_city[row[1]] = by_city.get(row[1], 0.0) + amount
            by_product[row[2]] = by_product.get(row[2], 0) + 1
        return (len(by_product), by_city)


class Temporaries:
    """Allocate and drop per-record temporaries (dict + tuple + str), keep one int."""

    def setup(self, scale):
        self.n = _n(500_000, scale)
        self.input_bytes = 0

    def phase(self, i):
        acc = 0
        base = i * self.n
        for k in range(base, base + self.n):
            s = str(k)
            rec = {"id": k, "name": s, "even": not k & 1}
            t = (k, s, rec)
            acc += len(t[1]) + rec["id"] % 7
        return acc


class BuildDropDicts:
    """The performance issue's own case: build 200k small dicts per phase, then drop them all.

    Unlike temporaries (which frees as it goes), the whole phase is alive at
    once and dies at the end, so pymalloc gives its arenas back after every
    phase and faults them in again in the next.
    """

    def setup(self, scale):
        self.n = _n(200_000, scale)
        self.input_bytes = 0

    def phase(self, i):
        rows = [{"id": k, "name": str(k), "phase": i} for k in range(self.n)]
        total = sum(len(r["name"]) for r in rows)
        del rows
        return total


class _Node:
    def __init__(self, ident):
        self.ident = ident
        self.children = []


class ObjectGraph:
    """Build a 300k-node object graph (lists of children, with cycles), drop it."""

    def setup(self, scale):
        self.n = _n(300_000, scale)
        rng = random.Random(3)
        # parent links precomputed outside the phase: the phase only allocates the graph
        self.parents = [rng.randrange(max(1, k)) for k in range(self.n)]
        self.input_bytes = 0

    def phase(self, i):
        nodes = [_Node(k) for k in range(self.n)]
        parents = self.parents
        for k in range(1, self.n):
            nodes[parents[k]].children.append(nodes[k])
            if k % 10 == 0:
                nodes[k].children.append(nodes[0])  # back edge: cycles, so gc has to free it
        edges = sum(len(n.children) for n in nodes)
        return edges


class Keep01:
    """300k (i, str(i), [i]) tuples per phase; every 1000th is kept across phases."""

    def setup(self, scale):
        self.n = _n(300_000, scale)
        self.input_bytes = 0

    def phase(self, i):
        base = i * self.n
        items = [(k, str(k), [k]) for k in range(base, base + self.n)]
        return items[::1000]


WORKLOADS = {
    "json_decode": JsonDecode,
    "ast_compile": AstCompile,
    "csv_aggregate": CsvAggregate,
    "temporaries": Temporaries,
    "build_drop_dicts": BuildDropDicts,
    "object_graph": ObjectGraph,
    "keep_0_1pct": Keep01,
}
