"""scope(limit=...) bounds what the phase holds (issue 11, section 3)."""
import pickle
import time
import traceback
import types

import objarena
import pytest


def build(n):
    return [str(i) * 3 for i in range(n)]


def test_a_limit_below_the_chunk_size_admits_small_phases():
    # 500 kB used to fail at the first small allocation (1 MiB chunks).
    with objarena.scope(limit=500_000) as phase:
        rows = build(2000)
    assert len(rows) == 2000
    st = phase.stats
    assert st["limit_hits"] == 0 and st["peak_mapped"] <= 500_000, st
    assert "chunk_size=65536" in repr(phase) or "chunk_size=131072" in repr(phase), repr(phase)


def test_past_the_limit_a_memory_error_says_whose_limit_and_the_phase_goes_on_after():
    with pytest.raises(MemoryError) as info:
        with objarena.scope(limit=500_000) as phase:
            build(200_000)
    message = str(info.value)
    assert "refused by its limit" in message and "500000" in message, message
    assert phase.stats["limit_hits"] >= 1 and phase.stats["peak_mapped"] <= 500_000, phase.stats
    with objarena.scope(limit=500_000):  # a fresh budget
        assert len(build(1000)) == 1000


def test_a_handler_inside_the_phase_sees_a_bare_memory_error_and_can_go_on():
    with objarena.scope(limit=400_000) as phase:
        try:
            build(100_000)
        except MemoryError as e:
            inside = e
        small = [1, 2, 3]
    assert isinstance(inside, MemoryError) and inside.args == ()
    assert phase.stats["limit_hits"] >= 1 and small == [1, 2, 3]


def test_an_inner_scope_cannot_escape_the_outer_limit():
    with pytest.raises(MemoryError) as info:
        with objarena.scope(limit=2_000_000) as outer:
            with objarena.scope() as inner:  # no limit of its own
                build(300_000)  # ~20 MB
    assert "an enclosing scope's" in str(info.value), str(info.value)
    assert 0 < inner.stats["effective_limit"] <= 2_000_000, inner.stats
    assert outer.stats["effective_limit"] == 2_000_000


def test_the_tightest_of_nested_limits_applies():
    with objarena.scope(limit=8_000_000):
        with objarena.scope(limit=1_000_000) as inner:
            pass
        with objarena.scope(limit=50_000_000) as loose:
            pass
    assert inner.stats["effective_limit"] == 1_000_000
    assert 0 < loose.stats["effective_limit"] <= 8_000_000


def test_a_limit_smaller_than_a_given_chunk_size_is_refused():
    with pytest.raises(ValueError, match="smaller than one chunk"):
        objarena.scope(limit=100_000, chunk_size=2**20)


def test_big_buffers_from_the_saved_allocator_are_charged():
    # An 80 MB list array is a PyMem_Malloc request, served outside the arena.
    with pytest.raises(MemoryError, match="allocation of 80000000 bytes was refused by its limit") as info:
        with objarena.scope(limit=2**20) as phase:
            [None] * 10**7
    assert "charged at the peak" in str(info.value), str(info.value)
    assert phase.stats["limit_hits"] >= 1 and phase.stats["charged_bytes_peak"] <= 2**20, phase.stats
    # Grown in one realloc from a small array (captured in the arena on 3.13,
    # where it moves out to the saved allocator) to 80 MB.
    with pytest.raises(MemoryError, match="allocation of 80000000 bytes was refused by its limit"):
        with objarena.scope(limit=2**20):
            grown = [None]
            grown *= 10**7
    # 300 MiB: a MEM request on 3.13, an OBJ one (a dedicated mapping) before.
    with pytest.raises(MemoryError, match="refused by its limit"):
        with objarena.scope(limit=4 * 2**20):
            bytearray(300 * 2**20)
    with pytest.raises(MemoryError, match="refused by its limit"):
        with objarena.scope(limit=4 * 2**20):
            buf = bytearray(16)
            buf *= 20 * 2**20  # resized in place: a realloc to 320 MiB


def test_freed_big_buffers_are_uncharged():
    with objarena.scope(limit=4 * 2**20) as phase:
        for _ in range(50):
            buf = [None] * 100_000  # 800 kB, freed each round: 40 MB requested in all
            grown = []
            for _ in range(100_000):  # grown by realloc: the charge follows the block
                grown.append(None)
            del buf, grown
    st = phase.stats
    assert st["limit_hits"] == 0 and st["charged_bytes"] == 0, st
    assert 1_600_000 <= st["charged_bytes_peak"] <= 4 * 2**20, st


def test_charges_count_against_an_enclosing_limit():
    # The outer scope's charged blocks are taken off what an inner scope may
    # use, and the inner scope's own big blocks are charged to the inner one.
    # adopt=False: an adopted retained chunk of an earlier test counts whole
    # against a limit, and two of them left inner2 too little (pytest -n 2).
    with objarena.scope(limit=8 * 2**20, adopt=False) as outer:
        held = [None] * 750_000  # 6 MB charged to the outer scope
        with pytest.raises(MemoryError):
            with objarena.scope(adopt=False) as inner:
                [None] * 400_000  # 3.2 MB: more than the outer scope has left
        with objarena.scope(limit=2**21, adopt=False) as inner2:
            small = [None] * 100_000  # 800 kB charged to inner2
            del small
    del held
    assert outer.stats["charged_bytes_peak"] >= 6_000_000, outer.stats
    assert 0 < inner.stats["effective_limit"] <= 8 * 2**20 - 6_000_000, inner.stats
    assert inner.stats["limit_hits"] >= 1, inner.stats
    assert inner2.stats["charged_bytes_peak"] >= 800_000 and inner2.stats["limit_hits"] == 0, inner2.stats
    assert outer.stats["limit_hits"] == 0, outer.stats


def failing_task():
    rows = [{"id": i, "v": (i, float(i))} for i in range(150_000)]  # ~40 MB: over the limit
    return len(rows)


def test_a_handler_inside_the_phase_can_report_the_memory_error():
    # What a Dask worker does with a task over its limit, inside the task's
    # scope: pickle the exception and its traceback, stamp the time. After the
    # refusal the phase is still at its limit (the arena's chunks of the freed
    # rows stay mapped), so this needs the grace window; refused, Dask sent
    # the traceback's text instead and its client asserted (test_dask hung).
    for round_ in range(30):
        with objarena.scope(limit=32 * 2**20) as phase:
            try:
                failing_task()
            except MemoryError as e:
                tb = e.__traceback__
                assert tb is None or isinstance(tb, types.TracebackType), (round_, type(tb))
                report = pickle.dumps({"exception": e, "traceback": traceback.format_tb(tb),
                                       # (3.14's FrameSummary holds its code object: not picklable)
                                       "frames": [(f.filename, f.lineno, f.name, f.line)
                                                  for f in traceback.extract_tb(tb)],
                                       "when": time.strftime("%Y-%m-%d %H:%M:%S")}, 5)
        back = pickle.loads(report)
        assert isinstance(back["exception"], MemoryError), back
        assert any("failing_task" in line for line in back["traceback"]), back["traceback"]
        assert phase.stats["limit_hits"] == 1, (round_, phase.stats)


def test_a_list_grown_past_the_limit_raises_at_the_with(child):
    # Grows a global list (its array is charged, its ints are arena blocks)
    # until the limit: the MemoryError must reach the with statement, with its
    # message, whatever the unwinding needs. Run in a child with a timeout, so
    # an unwinding that cannot allocate hangs the child, not the suite.
    result = child("""
import objarena
for kind, make in (("int", lambda i: i * 1000), ("str", str), ("None", lambda i: None)):
    for limit in (2**18, 2**21, 3 * 2**20):
        z = []
        try:
            with objarena.scope(limit=limit) as phase:
                for i in range(10**8):
                    z.append(make(i))
        except MemoryError as e:
            assert "refused by its limit" in str(e), (kind, limit, str(e))
            assert phase.state == "exited" and phase.stats["limit_hits"] >= 1, phase.stats
            print("RAISED", kind, limit, len(z))
        else:
            print("NOT RAISED", kind, limit, len(z))
        del z
print("DONE")
""", timeout=120).check()
    assert "DONE" in result.stdout and "NOT RAISED" not in result.stdout, result.stdout + result.stderr
    assert result.stdout.count("RAISED") == 9, result.stdout


# ---- issue 24 item 4: a charge stays with the scope that owns the block ----

MOVING_LIMIT = 100 * 10**6


def _grow(xs, cap_bytes, step=1_000_000):
    """Extends xs (its array is a charged MEM block, grown by realloc) until a
    MemoryError or cap_bytes of array; True if refused."""
    import itertools
    try:
        while len(xs) * 8 < cap_bytes:
            xs.extend(itertools.repeat(None, step))
    except MemoryError:
        return True
    return False


def _held_at_refusal(wrap):
    """An outer limit=100 MB phase grows list a to 60 MB inside `wrap` (a
    nested scope, a pause, or nothing), then list b until refused: what the
    two arrays hold then."""
    a, b = [None] * 1000, [None] * 1000
    refused_b = False
    try:
        with objarena.scope(limit=MOVING_LIMIT) as phase:
            a, b = [None] * 1000, [None] * 1000  # charged to the phase
            with wrap():
                assert not _grow(a, 60 * 10**6)
            refused_b = _grow(b, 3 * MOVING_LIMIT)
    except MemoryError:
        refused_b = True
    held = 8 * (len(a) + len(b))
    del a, b
    return refused_b, held, phase.stats


@pytest.mark.parametrize("wrap", ["scope", "paused"])
def test_a_charge_stays_with_the_owner_through_nested_scopes_and_pauses(wrap):
    # The outer phase's list grows inside a nested scope or a pause: its
    # charge stays with the outer phase, so the phase is refused where it is
    # without them. Before: a nested scope took the charge and its exit
    # dropped it, a pause dropped it at the first realloc, and the phase
    # held ~160 MB under its 100 MB limit without a MemoryError.
    import contextlib
    plain_refused, plain_held, _ = _held_at_refusal(contextlib.nullcontext)
    refused, held, stats = _held_at_refusal(objarena.scope if wrap == "scope" else objarena.paused)
    assert plain_refused and plain_held <= MOVING_LIMIT * 1.05, (plain_held, stats)
    assert refused, (held, stats)
    assert abs(held - plain_held) <= 0.05 * MOVING_LIMIT, (held, plain_held, stats)


def test_a_charged_block_grown_inside_a_nested_scope_is_refused_by_the_owner_only():
    # 64 MB phase: the same growth succeeds inside a nested scope as without
    # one (before: the nested scope's own, smaller budget refused it).
    with objarena.scope(limit=64 * 10**6) as outer:
        xs = [None] * 10**6  # 8 MB charged to the phase
        filler = [None] * 4 * 10**6  # 32 MB more
        with objarena.scope():
            assert not _grow(xs, 20 * 10**6)  # to ~22 MB: 54 MB in all, under 64
        del filler
    assert outer.stats["limit_hits"] == 0, outer.stats


# ---- issue 24 item 5: limits smaller than a chunk, chunk_size on a pool scope ----

def test_a_pool_scope_whose_limit_is_under_the_pools_chunk_is_refused_at_construction():
    # Before: built, then its first 48-byte allocation was refused with
    # nothing mapped (the pool's chunks are 1 MiB).
    with objarena.Pool() as pool:
        with pytest.raises(ValueError, match="smaller than one chunk of the pool"):
            pool.scope(limit=256 * 1024)
        with pytest.raises(ValueError, match="smaller than one chunk of the pool"):
            objarena.scope(pool=pool, limit=2**20 - 1)
        with pool.scope(limit=4 * 2**20) as ok:  # a few chunks: fine
            rows = build(100)
        assert len(rows) == 100 and ok.stats["limit_hits"] == 0, ok.stats


def test_huge_page_chunks_are_sized_to_the_limit_or_the_limit_is_refused():
    with pytest.raises(ValueError, match="huge_pages needs chunks of at least 2097152"):
        objarena.scope(huge_pages=True, limit=2**20)
    # A limit of a few huge pages: chunks of one huge page, so it admits
    # several (before: 2 MiB chunks only when the limit allowed the default).
    with objarena.scope(huge_pages=True, limit=3 * 2**21) as phase:
        rows = build(20_000)
    assert len(rows) == 20_000 and phase.stats["limit_hits"] == 0, phase.stats
    assert "chunk_size=2097152" in repr(phase), repr(phase)
    with objarena.scope(huge_pages=True, limit=2**30) as big:
        pass
    assert "chunk_size=2097152" in repr(big), repr(big)


def test_chunk_size_on_a_pool_scope_is_always_refused():
    # Even the pool's own chunk size (before: accepted), as the docs say.
    with objarena.Pool() as pool:
        own = pool.stats.get("chunk_size", 2**20)
        for size in (own, 2**20, 2**16):
            with pytest.raises(ValueError, match="chunk_size cannot be given to a pool's scope"):
                pool.scope(chunk_size=size)
            with pytest.raises(ValueError, match="chunk_size cannot be given to a pool's scope"):
                objarena.scope(pool=pool, chunk_size=size)
        with pool.scope(chunk_size=None):  # None means "not given"
            pass
