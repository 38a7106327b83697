"""objarena.detach(obj): a deep copy of an object graph outside every arena,
so a side-effect cache keeps no arena page (docs/reference.md, "detach").

The copies are checked field by field in a child whose released chunks are
poisoned (PROT_NONE): a copy that still pointed into the phase's memory
would crash the child or differ."""
import threading

import objarena
import pytest

DETACH_CHILD = r"""
import gc, sys
import objarena

class Record:                       # defined outside the scope: pickles by reference
    def __init__(self, key, payload):
        self.key, self.payload = key, payload

class Slotted:
    __slots__ = ("a", "b")
    def __init__(self, a, b):
        self.a, self.b = a, b
    def __getstate__(self):
        return (None, {"a": self.a, "b": self.b})

def build(i):
    shared = ["shared", str(i) * 3]
    row = {
        "s": "name-" + str(i), "u": "\u00e9\u20ac-" + str(i), "b": ("bytes-" + str(i)).encode(),
        "i": 10**30 + i, "small": i % 5, "f": i + 0.25, "neg0": -0.0, "c": complex(i, -1.5),
        "t": True, "n": None, "tup": (i, str(i), (i * 2,)), "fs": frozenset({str(i), i}),
        "set": {str(i), i + 1}, "nested": [[i], {"k": [str(i)]}],
        "sa": shared, "sb": shared, "rec": Record(str(i), [i, str(i)]), "slot": Slotted(str(i), i),
    }
    row["self"] = row                                  # a cycle
    row["tcycle"] = ([row],)                           # a cycle through a tuple
    return row

def expect(c, i):
    assert c["s"] == "name-" + str(i) and c["u"] == "\u00e9\u20ac-" + str(i)
    assert c["b"] == ("bytes-" + str(i)).encode() and c["i"] == 10**30 + i and c["small"] == i % 5
    assert c["f"] == i + 0.25 and str(c["neg0"]) == "-0.0" and c["c"] == complex(i, -1.5)
    assert c["t"] is True and c["n"] is None
    assert c["tup"] == (i, str(i), (i * 2,)) and c["fs"] == frozenset({str(i), i}) and c["set"] == {str(i), i + 1}
    assert c["nested"] == [[i], {"k": [str(i)]}]
    assert c["sa"] == ["shared", str(i) * 3] and c["sa"] is c["sb"]         # shared substructure kept
    assert c["self"] is c and c["tcycle"][0][0] is c                     # cycles kept
    assert type(c["rec"]) is Record and c["rec"].key == str(i) and c["rec"].payload == [i, str(i)]
    assert type(c["slot"]) is Slotted and c["slot"].a == str(i) and c["slot"].b == i
    assert list(c) == ["s", "u", "b", "i", "small", "f", "neg0", "c", "t", "n", "tup", "fs", "set", "nested",
                       "sa", "sb", "rec", "slot", "self", "tcycle"]          # order kept

def owned_anywhere(obj):
    seen, todo, owned = set(), [obj], []
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if objarena.owns(o):
            owned.append(type(o).__name__)
        todo.extend(gc.get_referents(o))
        if isinstance(o, (Record,)):
            todo.append(o.__dict__)
    return owned

# paused() empties the freelists of arena blocks where this build reads them
# (3.10-3.13; 3.14/3.15: issue 20's walker); elsewhere a copied float may
# still come from a freelisted arena block, so only the fields are checked.
FREELISTS = objarena._objarena._freelists_check_layout() > 0
objarena.detach(build(0))  # warm lazily made state (codec lookups, slot names) outside the scopes
CACHE = {}
def tasks():  # locals, not new module globals (whose dict would grow in the arena)
    for task in range(5):
        with objarena.scope(strict=FREELISTS, poison=True) as phase:
            rows = [build(task * 100 + j) for j in range(200)]
            original = rows[7]
            copy = objarena.detach(original)
            assert copy is not original and copy["sa"] is not original["sa"]
            with objarena.paused():     # the cache's own growth (its keys table) outside the arena too
                CACHE[task] = copy
            del rows, original, copy
        assert phase.stats["chunks_retained"] == 0 or not FREELISTS, phase.stats
tasks()
objarena.collect()
for task, c in CACHE.items():
    expect(c, task * 100 + 7)
    assert owned_anywhere(c) == [] or not FREELISTS, owned_anywhere(c)
print("DETACHED", len(CACHE), objarena.info()["retained_chunks"])
"""


def test_copies_survive_the_release_of_their_scope_field_by_field(child):
    result = child(DETACH_CHILD).check()
    assert "DETACHED 5" in result.stdout, result.stdout + result.stderr


def test_without_detach_the_same_cache_would_pin_the_phase(child):
    # The control: keeping the original instead is an escape (strict raises).
    result = child("""
import objarena
CACHE = {}
try:
    with objarena.scope(strict=True):
        rows = [{"k": str(i), "v": [i]} for i in range(1000)]
        CACHE[0] = rows[7]
except objarena.EscapeError as e:
    print("ESCAPED", e.blocks > 0)
""").check()
    assert "ESCAPED True" in result.stdout, result.stdout + result.stderr


def test_refusals_raise_type_error_and_name_the_type():
    def outside():
        return 1

    with objarena.scope():
        with pytest.raises(TypeError, match="made inside a scope"):
            objarena.detach({"f": lambda: 1})
        with pytest.raises(TypeError, match="does not pickle"):
            objarena.detach([threading.Lock()])
        with pytest.raises(TypeError, match="does not pickle"):
            objarena.detach((i for i in range(3)))

        class Local:
            pass

        with pytest.raises(TypeError, match="made inside a scope"):
            objarena.detach(Local())
        assert objarena.detach({"f": outside})["f"] is outside  # made outside: shared by reference


def test_outside_a_scope_it_is_a_deep_copy():
    shared = [1, 2]
    data = {"a": shared, "b": shared, "t": (shared,)}
    data["self"] = data
    c = objarena.detach(data)
    assert c == {"a": [1, 2], "b": [1, 2], "t": ([1, 2],), "self": c}
    assert c is not data and c["a"] is not shared and c["a"] is c["b"] is c["t"][0] and c["self"] is c


def test_too_deep_a_graph_raises_recursion_error():
    deep = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        objarena.detach(deep)
