"""objarena.version_support() and the import-time layout check
(pyext/layout_check.c): on every interpreter of the matrix this build reads
the freelists and collection counts it was compiled for, and where the
running interpreter's layout is not the compiled one (a 3.14.0-3.14.4
interpreter under a 3.14.5+ build, an offset that moved) it says so once,
counts it, and takes the safe path instead of reading a wrong offset.

No 3.14.0-3.14.4 interpreter can be had here, so the mismatch is driven by
objarena._objarena._layout_recheck(), which reruns the same check with a pretended
Py_Version or a pretended debug offset.
"""
import sys

import objarena
from objarena import _objarena

# lists in CPython's struct _Py_freelists (3.14: 39, 3.15: 41); 3.10-3.13 walk
# their own per-type layouts (freelists.c), at least 21 linked lists checked
FREELIST_LISTS = {(3, 14): 39, (3, 15): 41}


def test_this_interpreter_is_read_in_full():
    vs = objarena.version_support()
    assert vs["python"] == "%d.%d.%d" % sys.version_info[:3], vs
    assert vs["compiled_for"].split(".")[:2] == [str(v) for v in sys.version_info[:2]], vs
    assert vs["layout"] == "ok" and vs["reason"] == "" and vs["layout_mismatches"] == 0, vs
    assert vs["freelists"] and vs["gc_counts"] and vs["young_exit_collections"], vs
    assert vs["tested_version"] and not vs["free_threaded"], vs
    want = FREELIST_LISTS.get(sys.version_info[:2])
    assert vs["freelist_lists"] == want if want else vs["freelist_lists"] >= 21, vs


MISMATCH = """
import gc, sys, warnings, objarena
from objarena import _objarena

def phase_garbage(n):
    floats = [float(i) + 0.5 for i in range(n)]
    tuples = [(i, i + 1) for i in range(n)]
    lists = [[i] for i in range(n)]
    dicts = [{"k": i} for i in range(n)]
    del floats, tuples, lists, dicts

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    vs = _objarena._layout_recheck(**KWARGS)
    again = _objarena._layout_recheck(**KWARGS)
assert vs["layout"] == "mismatch" and vs["reason"] and vs["layout_detail"], vs
assert not vs["freelists"] and not vs["gc_counts"] and not vs["young_exit_collections"], vs
assert again["layout_mismatches"] == vs["layout_mismatches"] + 1, (vs, again)
warned = [w for w in caught if issubclass(w.category, RuntimeWarning) and "objarena" in str(w.message)]
assert len(warned) == 1, [str(w.message) for w in caught]            # once per process
assert _objarena._gc_counts()[0] is False                            # gc.get_stats() instead
for _ in range(5):
    with objarena.scope() as phase:
        phase_garbage(2000)
    st = phase.stats
    assert st["exit_collection"] == "full", st                        # not gen0/gen1 increments
    assert st["freelist_blocks_freed"] == 0, st                        # no walk
    assert st["chunks_retained"] == 0 and st["live_blocks_at_exit"] == 0, st
with objarena.scope(collect="young") as phase:                       # still no full collection
    phase_garbage(2000)
assert phase.stats["exit_collection"] in ("gen0", "gen1"), phase.stats
after = objarena.version_support()
assert after["freelist_walks_skipped"] >= 1, after
for _ in range(3):                                                   # poisoned child: reuse is safe
    phase_garbage(3000)
print("DONE", str(warned[0].message))
"""


def _mismatch(child, kwargs):
    result = child(MISMATCH.replace("KWARGS", repr(kwargs)))
    result.check()
    assert "DONE objarena:" in result.stdout, result.stdout + result.stderr
    return result.stdout


def test_a_moved_offset_is_reported_once_and_nothing_is_read_there(child):
    if sys.version_info >= (3, 14):
        out = _mismatch(child, {"perturb": "interpreter_state.gc"})
        assert "interpreter_state.gc" in out and "version_support" in out, out
    else:
        # 3.10-3.13 publish no gc offsets: the check is the minor version
        out = _mismatch(child, {"pretend_version": 0x030F02F0})
        assert "another minor version" in out, out


def test_an_incremental_collector_314_is_refused_by_version(child):
    if sys.version_info[:2] != (3, 14):
        return
    out = _mismatch(child, {"pretend_version": 0x030E02F0})  # 3.14.2
    assert "3.14.0-3.14.4" in out and "incremental collector" in out, out


def test_every_compared_offset_is_checked(child):
    if sys.version_info < (3, 14):
        return
    fields = ["interpreter_state.gc", "interpreter_state.sysdict", "interpreter_state.builtins",
              "interpreter_state.imports_modules", "interpreter_state.code_object_generation",
              "gc.size", "gc.collecting"]
    if sys.version_info >= (3, 15):
        fields += ["gc.generation_stats", "gc.generation_stats_size"]
    result = child("""
import warnings
from objarena import _objarena
warnings.simplefilter("ignore")
for field in %r:
    vs = _objarena._layout_recheck(perturb=field)
    assert vs["layout"] == "mismatch" and field in vs["layout_detail"], (field, vs)
vs = _objarena._layout_recheck()
assert vs["layout"] == "ok" and vs["freelists"] and vs["gc_counts"], vs
print("DONE")
""" % (fields,))
    result.check()
    assert "DONE" in result.stdout
