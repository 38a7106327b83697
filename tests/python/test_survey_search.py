"""The pytest plugin's two heap searches in C (issue 25): the survey walk
(_survey_edges: which objects live in given arenas, and what holds them) and
the holder names (_holder_paths: the shortest path from a module's globals
to an object). Each is checked against what it must find, against what it
must not, and on malformed input (an exception, never a crash)."""
import functools
import gc
import sys
import types

import pytest

import objarena
from objarena import _objarena


class Holder:
    pass


def made_in_a_scope():
    """An arena object of each kind the walk tells apart, and the arena."""
    with objarena.scope() as phase:
        tracked = Holder()                       # a tracked object (not from a freelist)
        untracked = "made-in-the-scope-%d" % 7   # a str: the gc does not track it
        inner = "held-by-an-untracked-tuple-%d" % 9
    arena = objarena.arena_id_of(tracked)
    assert arena and objarena.arena_id_of(untracked) == arena == objarena.arena_id_of(inner)
    assert phase is not None
    return arena, tracked, untracked, inner


def edges_of(obj, edges):
    return [(a, h) for o, a, h, _ in edges if o is obj]


def test_survey_edges_finds_arena_objects_and_their_holders():
    arena, tracked, untracked, inner = made_in_a_scope()
    holder = [tracked, untracked]                # outside the arena: the holder
    atoms = (inner, 1)                           # a tuple of atoms outside the arena...
    gc.collect()                                 # ...that the gc stops tracking
    assert not gc.is_tracked(atoms) and objarena.arena_id_of(atoms) != arena
    outer = [atoms]                              # a tracked list holds the untracked tuple
    edges = _objarena._survey_edges(gc.get_objects(), [arena], 1000)

    # The tracked arena object is found as itself (no holder) and as the
    # holder's referent.
    assert (arena, None) in edges_of(tracked, edges)
    assert any(h is holder for a, h in edges_of(tracked, edges))
    # The untracked str through the list that refers to it.
    assert [h for a, h in edges_of(untracked, edges)] == [holder]
    # Through the untracked tuple: its tracked holder is named, one level.
    assert any(h is outer for a, h in edges_of(inner, edges))
    for obj, a, h, ha in edges:
        assert a == arena == objarena.arena_id_of(obj)
        assert ha == (objarena.arena_id_of(h) if h is not None else 0)


def test_survey_edges_finds_nothing_of_other_arenas():
    arena, tracked, untracked, inner = made_in_a_scope()
    keep = [tracked, untracked, inner]
    assert _objarena._survey_edges(gc.get_objects(), [], 1000) == []
    assert _objarena._survey_edges(gc.get_objects(), [arena + 10**6], 1000) == []
    assert keep


def test_survey_edges_stops_at_the_cap_per_arena():
    # 50 objects of one arena, each held by two lists: with cap 10, ten
    # distinct objects are listed (with every edge found before the cap),
    # and none after; another arena's objects are not cut by it.
    with objarena.scope():
        many = [Holder() for _ in range(50)]
    with objarena.scope():
        few = [Holder() for _ in range(5)]
    a, b = objarena.arena_id_of(many[0]), objarena.arena_id_of(few[0])
    assert a and b and a != b
    first, second, others = list(many), list(many), list(few)
    edges = _objarena._survey_edges(gc.get_objects(), [a, b], 10)
    listed_a = {id(o) for o, arena, h, ha in edges if arena == a}
    listed_b = {id(o) for o, arena, h, ha in edges if arena == b}
    assert len(listed_a) == 10
    assert listed_b == {id(o) for o in few}
    uncapped = _objarena._survey_edges(gc.get_objects(), [a, b], 10**6)
    assert {id(o) for o, arena, h, ha in uncapped if arena == a} == {id(o) for o in many}
    assert not _objarena._survey_edges(gc.get_objects(), [a], 0)
    assert first and second and others


@pytest.mark.parametrize("args, error", [
    (((), [1], 10), TypeError),             # objects must be a list
    (([], 5, 10), TypeError),               # ids must be iterable
    (([], ["1"], 10), TypeError),           # ids must be ints
    (([], [-1], 10), OverflowError),        # and fit an arena id
    (([], [1], -1), ValueError),            # the cap is >= 0
    (([], [1]), TypeError),
])
def test_survey_edges_refuses_malformed_input(args, error):
    with pytest.raises(error):
        _objarena._survey_edges(*args)


# --------------------------------------------------------------- names
def make_module(name):
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    return mod


@pytest.fixture
def mod():
    m = make_module("objarena_names_probe")
    yield m
    del sys.modules["objarena_names_probe"]


def names(wanted, *passes, budget=200_000):
    return _objarena._holder_paths(list(passes), {id(w) for w in wanted}, budget)


def test_holder_paths_names_each_kind_of_step(mod):
    glob, item, attr, cls_attr, cached = [1], [[]], [2], [3], [4]
    mod.GLOBAL = glob
    mod.TABLE = {"not an identifier": item}
    mod.obj = Holder()
    mod.obj.field = attr
    mod.Cls = type("Cls", (), {"shared": cls_attr})

    @functools.lru_cache(maxsize=None)
    def memo(x):
        return cached
    memo(1)
    mod.memo = memo
    mod.seq = [None, (None, None, glob)]  # glob is nearer as a global: that name wins

    roots = [(mod.__dict__, mod.__name__)]
    found = names([glob, item, attr, cls_attr, cached, mod.__dict__], (roots, 3))
    n = mod.__name__
    assert found[id(glob)] == ("value", n, [(".", "GLOBAL")])
    assert found[id(item)] == ("value", n, [(".", "TABLE"), ("[]", "not an identifier")])
    assert found[id(attr)] == ("value", n, [(".", "obj"), ("=", None), (".", "field")])
    assert found[id(cls_attr)] == ("value", n, [(".", "Cls"), ("=", None), (".", "shared")])
    assert found[id(cached)][0] == "value"
    assert found[id(cached)][2][:2] == [(".", "memo"), ("lru", None)]
    assert found[id(mod.__dict__)] == ("module", n, [])
    # The plugin's names from those paths.
    from objarena.pytest_plugin import _path_name
    assert _path_name(*found[id(item)][1:]) == n + ".TABLE['not an identifier']"
    assert _path_name(*found[id(attr)][1:]) == n + ".obj.field"


def test_holder_paths_respects_depth_passes_and_budget(mod):
    deep = ["deep"]
    mod.a = [[[deep]]]  # a -> [0] -> [0] -> [0]: four steps
    roots = [(mod.__dict__, mod.__name__)]
    assert names([deep], (roots, 3)) == {}
    assert names([deep], (roots, 4))[id(deep)][2] == [(".", "a"), ("[]", 0), ("[]", 0), ("[]", 0)]
    # A later pass shares what earlier passes saw (the plugin's first pass,
    # from the test modules, is the deeper one): what the first pass saw
    # is not walked again.
    assert names([deep], (roots, 4), (roots, 4))[id(deep)][2][0] == (".", "a")
    assert names([deep], (roots, 1), (roots, 4)) == {}
    # No budget: nothing visited, nothing found.
    assert names([deep], (roots, 4), budget=0) == {}
    # Not reachable from the roots: not found.
    orphan = [deep]
    assert id(orphan) not in names([orphan], (roots, 4))


def test_holder_paths_only_first_1000_items_of_a_sequence(mod):
    target = ["t"]
    mod.big = [None] * 1000 + [target]
    roots = [(mod.__dict__, mod.__name__)]
    assert names([target], (roots, 3)) == {}
    mod.big.insert(0, target)
    assert names([target], (roots, 3))[id(target)][2] == [(".", "big"), ("[]", 0)]


def test_holder_paths_runs_no_user_code(mod):
    # A __dict__ property or __getattr__ on a holder is not called: the
    # instance's own dict is read (PyObject_GenericGetDict).
    calls = []

    class Tricky:
        @property
        def __dict__(self):
            calls.append("__dict__")
            return {}

        def __getattr__(self, name):
            calls.append(name)
            raise AttributeError(name)

    target = ["t"]
    t = Tricky()
    object.__setattr__(t, "x", target)
    mod.t = t
    found = names([target], ([(mod.__dict__, mod.__name__)], 3))
    assert calls == []
    assert found[id(target)][2] == [(".", "t"), ("=", None), (".", "x")]


@pytest.mark.parametrize("passes", [
    [([], 3, 4)],                     # a pass is (roots, depth)
    [[[], 3]],                        # ... a tuple
    [(({}, "m"), 3)],                 # roots a list
    [([({}, 5)], 3)],                 # a module name a str
    [([[{}, "m"]], 3)],               # a root a tuple
    [([([], "m")], 3)],               # a root's first item a dict
])
def test_holder_paths_refuses_malformed_input(passes):
    with pytest.raises(TypeError):
        _objarena._holder_paths(passes, set(), 10)
    with pytest.raises(TypeError):
        _objarena._holder_paths((), set(), 10)
    with pytest.raises(TypeError):
        _objarena._holder_paths([], {"x"}, 10)
