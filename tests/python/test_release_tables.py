"""Releasing retained chunks touches only the side tables their arenas used
(issue 24 item 7). Survivors of 2,000 adopt=False scopes pin one 1 MiB chunk
each; when they are freed, each chunk is unmapped and its side tables
(page tables, block bits: ~18 KiB per 1 MiB chunk, in one big MAP_NORESERVE
mapping) zeroed. Before, retaining a chunk marked its whole range as
touched, so the unmap wrote 18 KiB of tables no block had used, and RSS
rose by ~16 KiB per chunk while memory was being given back (5,000 chunks:
+45 MiB). The child reads the table mapping's Rss in /proc/self/smaps."""
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")

MEASURE = """
import gc, sys, objarena

def table_mapping_bytes(reserve):
    slots = reserve >> 16
    return (slots * 8 + (slots + 63) // 64 * 8 + (reserve >> 7) * 4 + (reserve >> 12) * 8 + (reserve >> 6))

def table_rss():
    want = table_mapping_bytes(objarena.info()["reserve_bytes"])
    found, rss, size = [], None, None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                size = hi - lo
            elif head == "Rss:" and abs(size - want) < 2 * 2**20:
                found.append(int(line.split()[1]) * 1024)
    assert len(found) == 1, (want, found)
    return found[0]

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

N = int(sys.argv[1])
with objarena.scope():
    pass
keep = []
for i in range(N):
    with objarena.scope(adopt=False):
        keep.append(str(i) * 5)  # a survivor pins this scope's one chunk
held = objarena.info()["retained_chunks"]
t1, r1 = table_rss(), rss()
del keep
gc.collect()
t2, r2 = table_rss(), rss()
print("HELD", held, "LEFT", objarena.info()["retained_chunks"])
print("TABLES", t2 - t1, "RSS", r2 - r1)
"""


@pytest.mark.parametrize("poison", [False, True])
def test_giving_retained_chunks_back_does_not_grow_the_side_tables(child, poison):
    n = 2000
    result = child(MEASURE, args=[str(n)], poison=poison, env={"OBJARENA_POISON": "1" if poison else "0"}).check()
    fields = dict(zip(*[iter(result.stdout.split())] * 2))
    assert int(fields["HELD"]) >= n * 0.9 and int(fields["LEFT"]) <= n * 0.1, result.stdout
    tables, grown = int(fields["TABLES"]), int(fields["RSS"])
    # Before: ~16 KiB per chunk (n=2000: ~31 MiB) of tables written at unmap.
    assert tables <= 2 * 2**20, result.stdout
    assert grown <= 4 * 2**20, result.stdout
