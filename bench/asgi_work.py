"""The work of one request of the ASGI benchmarks (issue 22), shared by
bench/asgi_service.py (served by uvicorn) and bench/asgi_cost.py (run on
one event loop without a server): builds ~10k objects from 1,000 records,
awaits a 1 ms sleep mid-work (so that requests interleave), keeps one small
object in an app-level LRU cache on 1 request in 100, returns a JSON body."""
import asyncio
import collections
import json


class LRU:
    def __init__(self, size):
        self.size, self.d = size, collections.OrderedDict()

    def put(self, k, v):
        self.d[k] = v
        self.d.move_to_end(k)
        if len(self.d) > self.size:
            self.d.popitem(last=False)


CACHE = LRU(4096)
COUNT = [0]


def records(seed, n=1000):
    return [{"id": seed * 1000 + i, "name": "user-%d" % i, "score": (i * 7919) % 1000 / 10.0,
             "tags": ["t%d" % (i % 5), "g%d" % (i % 3)], "active": bool(i % 2)} for i in range(n)]


async def respond(seed):
    """The response body (bytes) for request `seed`."""
    rows = records(seed % 97)
    await asyncio.sleep(0.001)             # tasks interleave here
    summary = {"count": len(rows), "total": sum(r["score"] for r in rows),
               "by_tag": collections.Counter(t for r in rows for t in r["tags"])}
    COUNT[0] += 1
    if COUNT[0] % 100 == 0:
        CACHE.put(seed, {"seed": seed, "top": rows[0]["name"]})
    return json.dumps({"rows": rows, "summary": summary}).encode()
