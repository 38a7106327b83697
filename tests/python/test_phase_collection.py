"""The phase collection: at exit, a scope whose objects a collection during
the phase promoted to the oldest generation collects those objects with the
young generations (phase_collect.h), instead of leaving them to a full
collection that walks the whole heap.

Contract checked here (counts and object states, no timings; the cost is
measured by bench/exit_cost.py): it frees cycles made in the phase, never an
object the rest of the heap references, leaves the user's gc state (freeze,
thresholds, enabled flag, callbacks) as it was, and touches only the
objects the phase got promoted, however many old objects the process holds.
"""
import gc
import sys
import sysconfig
import weakref

import objarena
import pytest

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 16) or sys.version_info < (3, 10) or sysconfig.get_config_var("Py_GIL_DISABLED")
    or not objarena.version_support().get("young_exit_collections", True),
    reason="the phase collection relinks the gc generation lists of 3.10-3.15 default builds "
    "(on 3.14+ only where the import-time layout check found them)",
)


class Node:
    pass


def ring(n, payload=None):
    nodes = [Node() for _ in range(n)]
    for a, b in zip(nodes, nodes[1:] + nodes[:1]):
        a.next = b
        a.payload = payload
    return nodes[0]


@pytest.fixture
def quiet_full():
    # A full collection just ran: the process-wide pace defers the next one,
    # so what the exit frees is the phase collection's doing. ring() runs
    # once outside first: on 3.10 a code object's first run keeps its frame.
    ring(3)
    objarena.collect()
    yield


def test_a_promoted_cycle_of_the_phase_is_freed_at_exit(quiet_full):
    with objarena.scope() as phase:
        head = ring(50, bytes(1 << 16))
        probe = weakref.ref(head)
        gc.collect(1)  # promotes the ring to generation 2
        del head
        assert probe() is not None
    st = phase.stats
    assert st["objects_promoted"] and st["exit_collection"] == "phase", st
    assert st["phase_objects"] >= 50, st
    assert probe() is None
    assert st["live_blocks_at_exit"] <= 2, st  # the weakref `probe` itself (and its callback slot)


def test_it_never_frees_what_the_rest_of_the_heap_references(quiet_full):
    holder = {}  # old: made before the scope
    gc.collect()
    with objarena.scope() as phase:
        head = ring(20, "payload-" + str(7))
        holder["kept"] = head  # the phase's cycle, referenced from an old dict
        garbage = ring(20)
        gc.collect(1)
        del head, garbage
    st = phase.stats
    assert st["exit_collection"] == "phase", st
    node, seen = holder["kept"], 0
    while True:  # every node intact (poisoned or freed memory would crash or differ)
        assert isinstance(node, Node) and node.payload == "payload-7"
        seen += 1
        node = node.next
        if node is holder["kept"]:
            break
    assert seen == 20
    assert objarena.owns(holder["kept"])
    del holder


def test_strict_escape_reports_stay_exact(quiet_full):
    class Kept:
        pass

    kept = []
    gc.collect()
    with pytest.raises(objarena.EscapeError) as info:
        with objarena.scope(strict=True):
            kept.extend(Kept() for _ in range(3))
            junk = ring(30)
            gc.collect(1)
            del junk
    assert info.value.types.get(Kept) == 3, info.value.types
    assert Node not in info.value.types, info.value.types  # the promoted ring was garbage, not an escape
    assert len(kept) == 3


def test_finalizers_and_callbacks_run_as_in_a_collection(quiet_full):
    finalized = []

    class Final:
        def __del__(self):
            finalized.append(1)

    calls = []

    def callback(phase_name, info):
        calls.append((phase_name, info["generation"]))

    gc.callbacks.append(callback)
    try:
        with objarena.scope() as phase:
            a, b = Final(), Final()
            a.other, b.other = b, a
            gc.collect(1)
            del a, b
            calls.clear()
    finally:
        gc.callbacks.remove(callback)
    assert phase.stats["exit_collection"] == "phase", phase.stats
    assert finalized == [1, 1]
    assert ("start", 1) in calls and ("stop", 1) in calls, calls
    assert gc.garbage == []


def test_the_users_gc_state_is_left_as_it_was(quiet_full):
    thresholds, was_enabled = gc.get_threshold(), gc.isenabled()
    held = [ring(3) for _ in range(50)]
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        gc.set_threshold(300, 5, 7)
        gc.disable()
        with objarena.scope() as phase:
            junk = ring(40)
            gc.collect(1)
            del junk
        assert phase.stats["exit_collection"] == "phase", phase.stats
        assert gc.get_threshold() == (300, 5, 7) and not gc.isenabled()
        assert gc.get_freeze_count() == frozen
        # gc.freeze() inside the phase moves the marker to the permanent
        # generation: no phase collection then, and nothing frozen is touched.
        with objarena.scope(collect=True) as phase:
            junk = ring(40)
            probe = weakref.ref(junk)
            gc.collect(1)
            gc.freeze()
            del junk
        assert phase.stats["exit_collection"] != "phase", phase.stats
        assert probe() is not None  # frozen garbage stays frozen: nothing collected it
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        if was_enabled:
            gc.enable()
    del held


def test_it_touches_only_what_the_phase_got_promoted(quiet_full):
    old = [[i] for i in range(200_000)]  # long-lived tracked objects in generation 2
    gc.collect()
    with objarena.scope() as phase:
        junk = ring(100)
        gc.collect(1)
        del junk
    st = phase.stats
    assert st["exit_collection"] == "phase", st
    assert 100 <= st["phase_objects"] < 1000, st  # not the 200k old lists
    assert old[12345] == [12345]
    del old


def test_a_full_collection_during_the_phase_falls_back(quiet_full):
    with objarena.scope(collect="young") as young:
        junk = ring(10)
        gc.collect(1)
        del junk
    assert young.stats["exit_collection"] == "gen1" and young.stats["phase_objects"] == 0
    with objarena.scope() as phase:
        junk = ring(10)
        gc.collect()  # reorders generation 2: the marker says nothing any more
        del junk
    assert phase.stats["exit_collection"] != "phase" and phase.stats["phase_objects"] == 0, phase.stats


def test_nested_scopes_each_collect_their_own_phase(quiet_full):
    with objarena.scope() as outer:
        keep = ring(10, "outer")
        with objarena.scope() as inner:
            junk = ring(30)
            gc.collect(1)
            del junk
        gc.collect(1)
        del keep
    assert inner.stats["exit_collection"] == "phase", inner.stats
    assert outer.stats["exit_collection"] == "phase", outer.stats
    # only the inner scope object (made in the outer phase, held by `inner`) is left
    assert set(outer.escaped()) <= {objarena.scope}, outer.escaped()


def test_info_counts_phase_collections(quiet_full):
    before = objarena.info()["exit_collections_phase"]
    with objarena.scope():
        junk = ring(10)
        gc.collect(1)
        del junk
    assert objarena.info()["exit_collections_phase"] == before + 1


def test_a_poisoned_child_survives_many_phase_collections(child):
    result = child("""
import gc, objarena
cache, counts = {}, {}
for task in range(30):
    with objarena.scope() as phase:
        rows = [{"i": i, "s": str(i), "self": None} for i in range(3000)]
        for r in rows:
            r["self"] = r
        gc.collect(1)
        cache[task] = rows[task]
        del rows, r
    counts[phase.stats["exit_collection"]] = counts.get(phase.stats["exit_collection"], 0) + 1
for task, row in cache.items():
    assert row["i"] == task and row["s"] == str(task) and row["self"] is row
print("OK", counts.get("phase", 0) > 0, counts)
""").check()
    assert "OK True" in result.stdout, result.stdout + result.stderr
