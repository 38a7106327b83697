"""scope(limit=...) bounds what the phase maps (issue 11, section 3)."""
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
