"""Task scopes (objarena.asyncio): a scope per asyncio task, parked at every
suspension and resumed at every step. Each case runs in a child interpreter
with OBJARENA_POISON=1, so a survivor whose memory was given back faults
instead of passing silently."""
import pytest

PRELUDE = """
import asyncio, gc, sys
import objarena, objarena.asyncio as oa
try:
    from objarena import _objarena as ext
except ImportError:
    import _objarena as ext

def check_released():
    gc.collect()
    info = objarena.info()
    assert info["arenas_live"] == 0, info
"""


def run(child, body, **kw):
    return child(PRELUDE + body, **kw).check()


def test_task_scope_captures_only_its_own_steps(child):
    # Task a waits while task b allocates: a's arena gets nothing of b's,
    # b's gets nothing of a's, and the loop between steps allocates in neither.
    out = run(child, """
async def a(ev):
    s = objarena.current_scope()
    assert s is not None and s.state == "active"
    before = s.stats["blocks_allocated"]
    await ev.wait()
    assert objarena.current_scope() is s
    return s, s.stats["blocks_allocated"] - before

async def b(ev):
    s = objarena.current_scope()
    junk = [(i, str(i)) for i in range(20000)]
    assert objarena.owns(junk[-1]) and objarena.arena_id_of(junk[-1]) == s.arena_id
    ev.set()
    await asyncio.sleep(0)
    return s, len(junk)

async def main():
    oa.install()
    assert objarena.current_scope() is None   # the main task was made before install
    ev = asyncio.Event()
    (sa, grew), (sb, n) = await asyncio.gather(asyncio.create_task(a(ev)), asyncio.create_task(b(ev)))
    assert sa is not sb and sa.arena_id != sb.arena_id
    assert grew < 200, grew                       # b's 40,000 objects went elsewhere
    assert sb.stats["blocks_allocated"] >= 20000
    assert sa.state == sb.state == "exited"
    print("ok", grew)

asyncio.run(main())
check_released()
""")
    assert "ok" in out.stdout


def test_exit_collects_nothing_the_other_tasks_made(child):
    # Issue 22: once a collection ran during a task scope, its exit collected
    # generation 1 or ran the phase collection, which moves back everything
    # promoted since the task began: the other in-flight tasks' objects too,
    # so each exit cost in proportion to the concurrency (5-7 ms per request
    # at 100 in flight on 3.13/3.14). Old code (3.11.7): "gen1".
    # The task's garbage cycle still goes, with CPython's next collection.
    out = run(child, """
async def job(ev):
    s = objarena.current_scope()
    cycle = [bytearray(100)]
    cycle.append(cycle)
    del cycle
    await ev.wait()
    return s

async def other(ev, keep):
    keep.extend([i] for i in range(200000))
    gc.collect(1)                              # promotes them, during job's life
    ev.set()

async def main():
    oa.install()
    ev, keep = asyncio.Event(), []
    s, _ = await asyncio.gather(asyncio.create_task(job(ev)), asyncio.create_task(other(ev, keep)))
    st = s.stats
    assert st["objects_promoted"], st
    assert st["phase_objects"] == 0, st
    assert st["exit_collection"] in ("none", "full"), st
    print("ok", st["exit_collection"])

asyncio.run(main())
check_released()
""")
    assert "ok" in out.stdout


def test_a_task_that_saw_no_collection_collects_nothing_at_exit(child):
    # Its generation 0 holds what every in-flight task made since the last
    # collection. Collecting it at each such exit was the only extra
    # collection a server's task scopes still ran once the freelist walk kept
    # the lists' lengths (1,900-2,700 of 10,000 requests; gen-0 collections
    # 1.65-2.07x plain's with them, 1.08-1.21x without on 3.13.0/3.14.10).
    # Old code: "gen0" and the gen-0 collection count moves. The task's
    # garbage cycle goes with CPython's next collection (check_released).
    out = run(child, """
class Node:
    pass

async def job():
    cycle = Node()                     # (no freelist: an arena block)
    cycle.me = cycle
    del cycle
    await asyncio.sleep(0)
    return objarena.current_scope()

async def main():
    oa.install()
    gc.collect()
    gc.disable()                      # no collection of CPython's during the tasks
    young0 = objarena.info()["exit_collections_young"]
    gen0 = gc.get_stats()[0]["collections"]
    scopes = await asyncio.gather(*(asyncio.create_task(job()) for _ in range(20)))
    gen0_after = gc.get_stats()[0]["collections"]
    gc.enable()
    for s in scopes:
        st = s.stats
        # (a paced full collection at one exit may free the others' cycles)
        assert st["exit_collection"] in ("none", "full"), st
    assert objarena.info()["exit_collections_young"] == young0, objarena.info()
    assert gen0_after == gen0, (gen0, gen0_after)
    print("ok")

asyncio.run(main())
check_released()
""")
    assert "ok" in out.stdout


def test_async_with_scope_in_a_task(child):
    # Old code: TypeError, the scope has no __aenter__ (and a sync scope held
    # across an await in a task raised RuntimeError at exit).
    run(child, """
async def job():
    async with objarena.scope() as s:
        x = [float(i) * 1.5 for i in range(5000)]
        await asyncio.sleep(0.001)
        y = [str(i) for i in range(5000)]
        assert objarena.owns(y[-1]) and objarena.current_scope() is s
    assert objarena.current_scope() is None and s.state == "exited"
    with objarena.scope() as t:                 # a plain `with` held across an await parks too
        await asyncio.sleep(0)
        z = [str(i) for i in range(100)]
        assert objarena.arena_id_of(z[-1]) == t.arena_id
    return s.stats["blocks_allocated"], t.state

async def main():
    oa.install(predicate=lambda coro: False)      # wrapped, no scope of their own
    blocks, state = await asyncio.create_task(job())
    assert blocks >= 5000 and state == "exited", (blocks, state)

asyncio.run(main())
check_released()
""")


def test_async_with_outside_a_wrapped_task_is_a_clear_error(child):
    run(child, """
async def main():
    try:
        async with objarena.scope():
            pass
    except RuntimeError as e:
        assert "task factory" in str(e), e
    else:
        raise AssertionError("no error")
    assert objarena.info()["scope_depth"] == 0

asyncio.run(main())
""")


def test_many_scopes_exit_in_any_order(child):
    run(child, """
order = []
async def job(i, ev):
    data = [bytes(50) for _ in range(200)]
    await ev.wait()
    order.append(i)
    return len(data)

async def main():
    oa.install()
    n = 200
    evs = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(job(i, evs[i])) for i in range(n)]
    await asyncio.sleep(0)
    for i in [*range(1, n, 2), *range(n - 2, -1, -2)]:   # odd ones first, then evens backwards
        evs[i].set()
        await asyncio.sleep(0)
    assert all(r == 200 for r in await asyncio.gather(*tasks))
    assert order == [*range(1, n, 2), *range(n - 2, -1, -2)], order[:10]
    assert objarena.info()["scope_depth"] == 0
    st = ext._task_stats()
    assert st["parks"] >= n and st["base_lost"] == 0, st

asyncio.run(main())
check_released()
""")


def test_a_task_scope_exit_leaves_the_heap_untrimmed_while_other_task_scopes_are_open(child):
    # malloc_trim at the exit of one request's scope trimmed the heap the
    # requests still in flight were using, and they faulted its pages in
    # again (3.11.7, 100 interleaved: 343 faults a request, 289 after).
    # While another task scope is open an exit trims at most once a second;
    # the last one open trims as a lone scope does.
    out = run(child, """
def trims():
    i = objarena.info()
    return i["malloc_trims"], i["malloc_trims_deferred"]

async def job(ev):
    rows = [str(i) * 20 for i in range(2000)]
    if ev is not None:
        await ev.wait()
    await asyncio.sleep(0.2)   # past the trim pace (50 times the last trim)
    return len(rows)

async def main():
    oa.install()
    t0 = trims()
    assert await asyncio.create_task(job(None)) == 2000
    t1 = trims()
    assert t1 == (t0[0] + 1, t0[1]), (t0, t1)      # alone: its exit trims
    ev = asyncio.Event()
    later = asyncio.create_task(job(ev))
    assert await asyncio.create_task(job(None)) == 2000
    t2 = trims()
    assert t2 == (t1[0], t1[1] + 1), (t1, t2)      # `later` still open: deferred
    ev.set()
    assert await later == 2000
    t3 = trims()
    assert t3 == (t2[0] + 1, t2[1]), (t2, t3)      # the last one open trims
    with objarena.scope(collect=False):             # no task scope open: as before
        pass
    assert trims()[1] == t3[1]
    ev2 = asyncio.Event()
    stays = asyncio.create_task(job(ev2))           # (a WebSocket connection's scope)
    await asyncio.create_task(job(None))
    t4 = trims()
    assert t4[1] == t3[1] + 1, (t3, t4)             # deferred, and no exit comes after it:
    objarena.collect()                              # collect() trims
    assert trims()[0] == t4[0] + 1, (t4, trims())
    ev2.set()
    await stays
    print("ok", t0, t3)

asyncio.run(main())
check_released()
""")
    assert "ok" in out.stdout


def test_survivors_into_loop_cache_future_and_exception(child):
    # A task's objects escape into a global cache, into another task (via a
    # future's result), into an exception another task catches: all stay
    # valid (poison on) after the task's scope exits, and the retained
    # chunks go once they die.
    run(child, """
CACHE = {}
class Boom(Exception):
    pass

async def producer(fut):
    CACHE["k"] = {"payload": [str(i) for i in range(100)]}
    fut.set_result([("r", i) for i in range(100)])
    raise Boom({"detail": "x" * 50})

async def consumer(fut):
    res = await fut
    return sum(i for _, i in res)

async def main():
    oa.install()
    fut = asyncio.get_running_loop().create_future()
    p = asyncio.create_task(producer(fut))
    c = asyncio.create_task(consumer(fut))
    try:
        await p
    except Boom as e:
        caught = e
    assert await c == sum(range(100))
    gc.collect()
    assert objarena.owns(caught) and caught.args[0]["detail"] == "x" * 50
    # (the dict itself may come from CPython's dict freelist; its strings are the task's)
    assert objarena.owns(CACHE["k"]["payload"][99]) and CACHE["k"]["payload"][99] == "99"
    assert objarena.info()["retained_chunks"] >= 1
    return caught

asyncio.run(main())
CACHE.clear()
gc.collect()
info = objarena.info()
assert info["arenas_live"] == 0, info
print("retained after", info["retained_chunks"])
""")


def test_freelist_block_freed_by_one_task_used_by_another(child):
    # A float one task freed sits on CPython's float freelist; the next task
    # takes it: an object of task B's living in task A's arena. A exits first
    # (its chunk retained), B keeps using the float, then exits: nothing
    # faults, and everything is released at the end.
    run(child, """
async def a(go, done):
    xs = [float(i) + 0.5 for i in range(50)]
    del xs                              # the floats go on the freelist
    go.set()
    await done.wait()

async def b(go, done, out):
    await go.wait()
    ys = [float(i) + 0.25 for i in range(50)]
    done.set()
    await asyncio.sleep(0.01)           # a exits meanwhile
    out.append(sum(ys))
    out.append(ys)

async def main():
    oa.install()
    go, done, out = asyncio.Event(), asyncio.Event(), []
    ta = asyncio.create_task(a(go, done))
    tb = asyncio.create_task(b(go, done, out))
    await ta
    gc.collect()
    await tb
    assert out[0] == sum(i + 0.25 for i in range(50))
    print("foreign", sum(1 for y in out[1] if objarena.arena_id_of(y) not in (0, )))
    out.clear()

asyncio.run(main())
check_released()
""")


def test_limit_strict_and_stats_are_per_task(child):
    run(child, """
async def big():
    await asyncio.sleep(0)
    return [str(i) * 10 for i in range(200000)]

async def small():
    await asyncio.sleep(0.001)
    return len([str(i) for i in range(1000)])

async def leaky():
    await asyncio.sleep(0)
    return [object() for _ in range(10)]     # the result escapes

async def quiet():
    # (sleep(0): asyncio.sleep(0.001) leaves one loop-held block of the last
    # such task alive at its exit, freed by the next one: strict counts it)
    await asyncio.sleep(0)
    x = [str(i) for i in range(1000)]

async def main():
    await quiet()  # (3.10: a code object's first run keeps a frame for later runs; not in a scope)
    loop = asyncio.get_running_loop()
    loop.set_task_factory(oa.task_factory(lambda c: c.__name__ == "big", limit=1 << 20))
    tb, ts = asyncio.create_task(big()), asyncio.create_task(small())
    try:
        await tb
    except MemoryError as e:
        assert "limit" in str(e), e
    else:
        raise AssertionError("the limit did not apply")
    assert await ts == 1000                   # the other task has no limit
    assert tb.get_coro().scope.stats["limit_hits"] >= 1
    assert ts.get_coro().scope is None
    # strict: the task's scope exits in its done callback; an escape is
    # reported to the loop's exception handler (the task's outcome is set).
    reported = []
    loop.set_exception_handler(lambda loop, ctx: reported.append(ctx.get("exception")))
    loop.set_task_factory(oa.task_factory(strict=True))
    assert len(await asyncio.create_task(leaky())) == 10
    await asyncio.sleep(0)
    assert len(reported) == 1 and isinstance(reported[0], objarena.EscapeError), reported
    t = asyncio.create_task(quiet())
    await t
    await asyncio.sleep(0)
    assert len(reported) == 1, reported       # no escape: no error
    st = t.get_coro().scope.stats
    assert st["blocks_allocated"] >= 1000 and t.get_coro().scope.state == "exited", dict(st)
    loop.set_task_factory(None)

asyncio.run(main())
check_released()
""")


def test_pool_shared_by_task_scopes(child):
    run(child, """
async def job(i):
    await asyncio.sleep(0)
    return len([str(j) for j in range(3000)]) > 0    # (a big int result would pin its chunk)

async def main():
    with objarena.Pool() as pool:
        oa.install(pool=pool)
        try:
            for _ in range(5):
                assert all(await asyncio.gather(*[job(i) for i in range(20)]))
            st = pool.stats
            assert st["hits"] > 0, dict(st)
        finally:
            asyncio.get_running_loop().set_task_factory(None)   # the pool closes here

asyncio.run(main())
check_released()
""", poison=False)  # (a poisoning arena never parks chunks in a pool)


def test_cancellation_mid_wait_and_mid_step(child):
    run(child, """
async def waits(started):
    data = [str(i) for i in range(1000)]
    started.set()
    await asyncio.sleep(10)

async def cancels_itself():
    asyncio.current_task().cancel()           # cancelled mid-step:
    data = [str(i) for i in range(1000)]      # it still runs in its scope,
    assert objarena.owns(data[-1])
    await asyncio.sleep(0)                    # and CancelledError comes in here

async def main():
    oa.install()
    started = asyncio.Event()
    t = asyncio.create_task(waits(started))
    await started.wait()
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    assert t.get_coro().scope.state == "exited"
    u = asyncio.create_task(cancels_itself())
    try:
        await u
    except asyncio.CancelledError:
        pass
    assert u.cancelled() and u.get_coro().scope.state == "exited"

asyncio.run(main())
check_released()
""")


@pytest.mark.skipif(__import__("sys").version_info < (3, 11), reason="TaskGroup and timeout are 3.11+")
def test_taskgroup_timeout_gather(child):
    run(child, """
async def child_job(i):
    await asyncio.sleep(0.001 * (i % 3))
    if i == 7:
        raise ValueError(i)
    return [i] * 10

async def slow():
    await asyncio.sleep(5)

async def main():
    oa.install()
    async def group():
        async with asyncio.TaskGroup() as tg:
            for i in range(10):
                tg.create_task(child_job(i))
    try:
        await asyncio.create_task(group())
    except* ValueError as eg:
        assert eg.exceptions[0].args == (7,)
    async def timed():
        async with asyncio.timeout(0.01):
            await slow()
    try:
        await asyncio.create_task(timed())
    except TimeoutError:
        pass
    r = await asyncio.gather(*[child_job(i) for i in range(5)])
    assert r[4] == [4] * 10

asyncio.run(main())
check_released()
""")


def test_to_thread_allocations_are_not_the_tasks(child):
    run(child, """
def in_thread():
    assert objarena.current_scope() is None
    return [str(i) for i in range(1000)]

async def job():
    s = objarena.current_scope()
    made = await asyncio.to_thread(in_thread)
    assert objarena.current_scope() is s
    assert not any(objarena.owns(x) for x in made[::50])
    return s.stats["blocks_allocated"]

async def main():
    await asyncio.to_thread(int)              # the executor and its thread exist before
    oa.install()
    assert await asyncio.create_task(job()) < 1000

asyncio.run(main())
check_released()
""")


def test_uvloop(child):
    pytest.importorskip("uvloop")
    run(child, """
import uvloop
async def job(i):
    await asyncio.sleep(0)
    s = objarena.current_scope()
    return s is not None and objarena.owns([str(j) for j in range(100)][-1])

async def main():
    oa.install()
    assert all(await asyncio.gather(*[job(i) for i in range(50)]))

uvloop.run(main()) if hasattr(uvloop, "run") else uvloop.install() or asyncio.run(main())
check_released()
""")


# A task that waits forever; its finally block records whether it ran
# inside the task's scope, with the task's data still in the arena.
NEVER_FINISHING = """
finals = []
async def forever(fut):
    data = [str(i) for i in range(1000)]
    try:
        await fut
    finally:
        finals.append(objarena.current_scope() is not None and objarena.owns(data[0]))
"""


def test_tasks_that_never_finish(child):
    # The loop is closed with tasks suspended in their scopes: when their
    # coroutines are dropped, they are closed inside their scopes (finally
    # blocks run there) and the scopes released; nothing leaks or faults.
    out = run(child, NEVER_FINISHING + """
loop = asyncio.new_event_loop()
oa.install(loop)
fut = loop.create_future()
tasks = [loop.create_task(forever(fut)) for _ in range(20)]
loop.run_until_complete(asyncio.sleep(0.01))
loop.close()
assert objarena.info()["arenas_live"] == 20
del tasks, fut
gc.collect()
assert finals == [True] * 20, finals
check_released()
print("discarded", ext._task_stats()["discarded"])
""")
    assert "discarded" in out.stdout


def test_tasks_that_never_finish_close_inside_their_scopes_whatever_the_collection_order(child):
    # As above, but no task scope exits while the tasks are suspended (the
    # loop waits on a plain future), so nothing collects before the drop:
    # the collector finds each coroutine before its wrapper and, before
    # coro_finalizer.c, finalized it first, outside its scope (0-4 of 20
    # finally blocks ran inside, 3.10-3.14, fa6a533).
    out = run(child, NEVER_FINISHING + """
loop = asyncio.new_event_loop()
oa.install(loop)
fut = loop.create_future()
tasks = [loop.create_task(forever(fut)) for _ in range(20)]
stop = loop.create_future()
loop.call_later(0.01, stop.set_result, None)
loop.run_until_complete(stop)
loop.close()
del tasks, fut, stop
gc.collect()
assert finals == [True] * 20, finals
check_released()
print("ok")
""")
    assert "ok" in out.stdout


def test_a_wrapped_coroutine_never_started_still_warns_that_it_was_never_awaited(child):
    # The wrapper holds the coroutine's own finalizer back while it lives and
    # gives it back when it is dropped: a coroutine that never ran still gets
    # CPython's RuntimeWarning, whether it dies by reference count or in a cycle.
    out = run(child, """
import warnings
async def never(box):
    return box

def warned(make_garbage):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        make_garbage()
        gc.collect()
    return sum("never awaited" in str(x.message) for x in w)

def dropped():
    c = oa.wrap(never(None))
    del c

def in_a_cycle():  # wrapper -> coroutine -> its argument -> wrapper
    box = []
    box.append(oa.wrap(never(box)))
    del box

assert warned(dropped) == 1
assert warned(in_a_cycle) == 1
print("ok")
""")
    assert "ok" in out.stdout


def test_ten_thousand_parked_tasks_hold_little(child):
    # Each task makes a little and waits: its scope's first chunk is 64 KiB,
    # not 1 MiB, so 10,000 parked tasks do not hold 10,000 MiB-chunks.
    out = run(child, """
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

async def job(ev):
    d = {"i": [1, 2, 3], "s": "x" * 20}
    await ev.wait()
    return d

async def main():
    oa.install()
    ev = asyncio.Event()
    gc.collect()
    before = rss()
    tasks = [asyncio.create_task(job(ev)) for _ in range(10000)]
    await asyncio.sleep(0.05)
    held = rss() - before
    mapped = objarena.info()["bytes_mapped"]
    ev.set()
    await asyncio.gather(*tasks)
    print("per task", held / 10000, "mapped", mapped)
    assert mapped <= 10000 * 65536 + (8 << 20), mapped
    assert held / 10000 < 40000, held

asyncio.run(main())
check_released()
""", timeout=300)
    assert "per task" in out.stdout


def test_parked_tasks_of_a_pool_hold_little_and_leave_its_chunks_to_running_ones(child):
    # The gather-with-a-semaphore idiom on a Pool's task scopes: 1,000 tasks
    # start, 900 wait on the semaphore after making their waiter future.
    # Each took a whole 1 MiB chunk of the pool's (or mapped one) for that
    # future before (3.14.10, old code: 1,000 MiB mapped while waiting, the
    # pool's chunks held by waiting tasks, hits 0, 4,352 of 4,496 tasks
    # mapping fresh chunks). A task scope's first chunk is now a small one
    # with a pool too, and the pool's whole chunks go to the tasks that run.
    run(child, """
async def main():
    with objarena.Pool() as pool:
        oa.install(pool=pool)
        try:
            sem = asyncio.Semaphore(100)
            go = asyncio.Event()
            async def job(i):
                async with sem:
                    await go.wait()
                    rows = [{"i": j, "s": str(j)} for j in range(3000)]   # ~1 MB: a whole chunk or two
                    await asyncio.sleep(0)
                    return len(rows) == 3000   # (a big int result would pin its chunk)
            misses = []
            for r in range(2):
                before = pool.stats["misses"]
                go.clear()
                tasks = [asyncio.create_task(job(i)) for i in range(1000)]
                await asyncio.sleep(0.05)
                st = pool.stats   # (parked chunks count as mapped: the tasks' share is the rest)
                held = objarena.info()["bytes_mapped"] - st["warm_bytes"] - st["warm_retained_bytes"]
                print("round", r, "held by the tasks while waiting", held >> 20, "MiB", dict(st))
                assert held <= 1000 * 65536 + (64 << 20), held
                go.set()
                assert all(await asyncio.gather(*tasks))
                misses.append(pool.stats["misses"] - before)
            print("after", dict(pool.stats), "misses per round", misses)
            # The second round's tasks find the first round's chunks warm,
            # small and whole ones: few map fresh (1 of 1,000 on 3.14.10,
            # 101 on 3.11.7 and 3.13.0, against 1,101 in the first round).
            assert misses[1] * 5 < misses[0], misses
        finally:
            asyncio.get_running_loop().set_task_factory(None)   # the pool closes here

asyncio.run(main())
check_released()
""", poison=False)  # (a poisoning arena never parks chunks in a pool)


def test_tasks_that_each_keep_a_little_refill_earlier_first_chunks(child):
    # Found by the async hazard cases (issue 22): adoption took only retained
    # chunks of the arena's chunk_size, never a task scope's 64 KiB first
    # chunk, so 10 rounds of 1,000 tasks that each keep one 50-byte string
    # mapped 655 MB and grew RSS by ~5 MB a round (3.13; old code: [500, 1000,
    # 1500] here). Now an arena about to map its small first chunk adopts a
    # retained one of that size first: 65.5 MB mapped, RSS flat.
    run(child, """
KEEP = []
async def job(i):
    KEEP.append(("kept-%d-" % i) + "x" * 40)
    junk = [str(j) for j in range(200)]
    await asyncio.sleep(0)

async def main():
    oa.install()
    counts = []
    for r in range(3):
        await asyncio.gather(*[job(i) for i in range(500)])
        gc.collect()
        counts.append(objarena.info()["retained_chunks"])
    print("retained chunks per round", counts)
    assert counts[2] < 1.5 * counts[0], counts

asyncio.run(main())
check_released()
""", poison=False)  # (a poisoned region never adopts)
