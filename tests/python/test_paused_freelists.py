"""paused() never hands arena memory out of CPython's freelists: at entry
the freelists are emptied of arena blocks (the others are kept), so floats,
tuples, lists and dicts made under the pause are not blocks of the phase
whose dead objects filled the freelists (docs/reference.md, "paused")."""
import sys

import objarena
import pytest

pytestmark = pytest.mark.skipif(
    not objarena.version_support().get("freelists", True),
    reason="this interpreter's freelists are not the layout compiled in (version_support())"
)


def kinds(n, salt):
    floats = [i + salt + 0.5 for i in range(n)]
    tuples = [(i, salt) for i in range(n)] + [(i, salt, i) for i in range(n)]
    lists = [[i, salt] for i in range(n)]
    dicts = [{"k": i, "s": salt} for i in range(n)]
    return floats, tuples, lists, dicts


# Run once outside any scope: on 3.10 a code object's first run keeps a frame
# (co_zombieframe) for later runs, which made in a scope would pin its chunk.
kinds(1, 0)


def test_objects_made_under_paused_come_from_no_freelisted_arena_block():
    with objarena.scope() as phase:
        made = kinds(3000, 1)
        assert sum(objarena.owns(o) for group in made for o in group) > 10000
        del made  # the freelists are now full of the phase's blocks
        with objarena.paused():
            kept = kinds(200, 2)
    owned = {type(o).__name__ for group in kept for o in group if objarena.owns(o)}
    assert owned == set(), owned
    # Nothing kept pins the phase. (3.10 under pytest: one chunk stays
    # retained by a block escaped() does not see; the same phase run as a
    # script retains none. Not explained yet: issue 21's note.)
    assert phase.stats["chunks_retained"] <= (1 if sys.version_info < (3, 11) else 0), phase.stats
    assert kept[0][5] == 7.5 and kept[1][3] == (3, 2) and kept[3][4] == {"k": 4, "s": 2}


def test_nested_pause_and_strict_scope_report_no_escape():
    cache = {}
    with objarena.scope(strict=True):
        for i in range(3):
            junk = kinds(500, i)
            del junk
            with objarena.paused():
                cache[i] = (float(i) + 0.25, (i, i + 1), {"v": i})
    assert cache[2] == (2.25, (2, 3), {"v": 2})


def test_outside_a_scope_paused_changes_nothing():
    with objarena.paused():
        x = [1.5, (1, 2)]
    assert not objarena.owns(x) and not objarena.owns(x[0])
