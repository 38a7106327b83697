"""A phase's dead objects on CPython's freelists are freed at exit without a
full collection (pyext/freelists.c), on every interpreter of the matrix.

freelists.c reads CPython's private freelist layouts; the layout check and
the poisoned child runs below are what catch a layout it gets wrong.
"""
import sys

import objarena
from objarena import _objarena

PRELUDE = """
import asyncio, contextvars, gc, sys, objarena
from objarena import _objarena

async def agen(n):
    for i in range(n):
        yield i

async def consume():
    return sum([i async for i in agen(100)])

def run_to_completion(coro):
    # async-generator helpers (asend objects, wrapped values) without an event
    # loop: nothing here suspends, so one send() finishes the coroutine
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("suspended")

def fill_every_freelist(n):
    floats = [float(i) + 0.5 for i in range(n)]
    tuples = [tuple(range(size)) for size in range(1, 20) for _ in range(n // 10)]
    lists = [[i] for i in range(n)]
    dicts = [{"k": i} for i in range(n)]
    contexts = [contextvars.copy_context() for _ in range(n // 10)]
    frames = [sys._getframe() for _ in range(3)]
    del floats, tuples, lists, dicts, contexts, frames
    return run_to_completion(consume())
"""


def test_the_freelist_layouts_match_this_interpreter():
    import asyncio
    import contextvars

    floats = [float(i) + 0.5 for i in range(200)]
    tuples = [tuple(range(size)) for size in range(1, 20) for _ in range(30)]
    contexts = [contextvars.copy_context() for _ in range(50)]
    del floats, tuples, contexts

    async def agen():
        for i in range(50):
            yield i

    async def consume():
        return [i async for i in agen()]

    asyncio.run(consume())
    checked = _objarena._freelists_check_layout()
    assert checked >= (22 if sys.version_info < (3, 11) else 21), checked


def test_a_phase_that_keeps_nothing_retains_nothing_without_a_full_collection(child):
    result = child(PRELUDE + """
gc.collect(); objarena.collect()
fill_every_freelist(500)                      # warm: lazy interpreter state outside any scope
for round in range(5):
    with objarena.scope(collect="young") as phase:   # never a full collection at exit
        fill_every_freelist(2000)                    # (its result would be an escape)
    st = phase.stats
    assert st["exit_collection"] in ("none", "gen0", "gen1"), st
    assert st["freelist_blocks_freed"] > 100, st
    assert st["chunks_retained"] == 0 and st["live_blocks_at_exit"] == 0, st
# the freelists hold no freed memory: use them hard (poisoned child: a stale
# entry faults at once)
total = 0
for _ in range(3):
    total += fill_every_freelist(3000)
assert _objarena._freelists_check_layout() > 0
print("DONE", total, objarena.info()["freelist_blocks_freed"] > 0)
""")
    result.check()
    assert "DONE" in result.stdout and result.stdout.strip().endswith("True"), result.stdout + result.stderr


def test_freelist_entries_of_other_arenas_and_outer_scopes_stay_valid(child):
    result = child(PRELUDE + """
with objarena.scope() as outer:
    fill_every_freelist(1000)                 # the outer phase's dead objects, on the freelists
    keep = [(i, float(i)) for i in range(1000)]
    with objarena.scope(collect="young") as inner:
        fill_every_freelist(1000)
    inner_stats = inner.stats
    keep2 = [(i, float(i), [i]) for i in range(1000)]
assert inner_stats["live_blocks_at_exit"] == 0, inner_stats
assert sum(t[1] for t in keep) == sum(range(1000)) and len(keep2) == 1000
del keep, keep2
gc.collect()
fill_every_freelist(3000)
print("DONE")
""")
    result.check()
    assert "DONE" in result.stdout, result.stdout + result.stderr


def test_asyncio_in_a_scope_leaves_only_its_module_freelist(child):
    # _asyncio keeps its own freelist of future iterators, in the module where
    # no collection reaches it (not even a full one): a few blocks stay, are
    # reused by later asyncio code, and never freed under it.
    result = child(PRELUDE + """
asyncio.run(consume())
for _ in range(5):
    with objarena.scope(collect="young") as phase:
        total = asyncio.run(consume()) + fill_every_freelist(1000)
    assert phase.stats["live_blocks_at_exit"] < 50, phase.stats
for _ in range(5):
    total += asyncio.run(consume())
print("DONE", total)
""")
    result.check()
    assert "DONE" in result.stdout, result.stdout + result.stderr


REHOME = PRELUDE + """
def fill_dict_freelist_with_arena_entries():
    # the first dicts pop the heap entries off the dict freelist (80 long),
    # the rest are arena blocks; a list frees its items newest first, so the
    # arena dicts refill the freelist and the heap ones are freed
    made = [{} for _ in range(300)]
    del made

def dicts_made_count():
    # gen-0 count a dict made outside any scope adds: 0 when it comes off the
    # freelist, 1 when the freelist is empty and it is allocated
    before = gc.get_count()[0]
    again = [{} for _ in range(60)]
    grew = gc.get_count()[0] - before
    for i, d in enumerate(again):           # the entries are whole dicts
        d["k"] = i
    assert sum(d["k"] for d in again) == sum(range(60))
    return grew

gc.collect(); gc.disable()
fill_every_freelist(500)
"""


def test_an_exit_moves_arena_entries_to_the_heap_so_the_freelists_keep_their_length(child):
    # Emptying the lists (the walk before) made every later allocation a
    # counted birth and every death that refilled them an uncounted one:
    # twice the generation-0 collections in a server (issue 22).
    result = child(REHOME + """
info0 = objarena.info()
with objarena.scope(collect="young") as phase:
    fill_dict_freelist_with_arena_entries()
assert phase.stats["freelist_blocks_freed"] >= 60, phase.stats   # (3.10 keeps a code object's zombie frame)
info1 = objarena.info()
rehomed = info1["freelist_entries_rehomed"] - info0["freelist_entries_rehomed"]
assert rehomed >= 60, (info0, info1)
assert info1["freelist_entries_not_rehomed"] == info0["freelist_entries_not_rehomed"], info1
grew = dicts_made_count()
assert grew <= 5, grew
assert _objarena._freelists_check_layout() > 0
fill_every_freelist(3000)                 # (poisoned child: a stale entry faults at once)
print("DONE", rehomed, grew)
""")
    result.check()
    assert "DONE" in result.stdout, result.stdout + result.stderr


def test_an_inner_exit_moves_its_entries_to_the_heap_not_into_the_outer_arena(child):
    result = child(REHOME + """
info0 = objarena.info()
with objarena.scope(collect="young") as outer:
    with objarena.scope(collect="young") as inner:
        fill_dict_freelist_with_arena_entries()
    info1 = objarena.info()
assert inner.stats["freelist_blocks_freed"] >= 60, inner.stats
assert info1["freelist_entries_rehomed"] - info0["freelist_entries_rehomed"] >= 60, (info0, info1)
# a copy made with the outer scope capturing would be an outer-arena block,
# given back and counted here
assert info1["freelist_entries_not_rehomed"] == info0["freelist_entries_not_rehomed"], info1
grew = dicts_made_count()
assert grew <= 5, grew
fill_every_freelist(3000)
print("DONE", grew)
""")
    result.check()
    assert "DONE" in result.stdout, result.stdout + result.stderr
