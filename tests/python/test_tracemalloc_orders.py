"""Every order of tracemalloc and scopes, in child interpreters.

tracemalloc.stop() (and its stop during finalization, under -X tracemalloc or
PYTHONTRACEMALLOC) puts back the allocator it saved at start and then drops
its traces, decref'ing the filename strings it cached. A filename made inside
a scope is an arena block: if tracemalloc saved an allocator that does not
know arena blocks (pymalloc, under objarena's hook), that free aborts in libc
("free(): invalid pointer"). Each case here runs on every interpreter of the
matrix; on 3.10-3.12 the first ones aborted before objarena installed itself
under tracemalloc's hook.
"""
import pytest

PRELUDE = """
import gc, sys, objarena
def fresh(tag):
    return f"{tag}-{'x' * 40}-{len(tag)}"
def compile_in_scope(name):
    # a code object whose filename is a string made inside the scope; tracemalloc
    # caches that string for every trace made while running it
    ns = {}
    exec(compile("x = [object() for _ in range(10)]", name + str(len(sys.argv) * 12345), "exec"), ns)
    return ns["x"]
"""


def check(child, body, **kwargs):
    result = child(PRELUDE + body, **kwargs)
    assert result.returncode == 0, (
        f"child failed with {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert "DONE" in result.stdout, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("poison", [True, False])
def test_issue_reproduction_start_before_the_first_scope_then_stop(child, poison):
    check(child, """
import tracemalloc
tracemalloc.start()                 # before the first scope
with objarena.scope():
    x = compile_in_scope("file_")
keep = x; del x
tracemalloc.stop()                  # aborted here: free(): invalid pointer
print("DONE survived")
""", poison=poison)


def test_start_before_import_then_stop(child):
    result = child("""
import tracemalloc
tracemalloc.start(5)
import gc, sys, objarena
ns = {}
with objarena.scope() as phase:
    exec(compile("x = [object() for _ in range(10)]", "early_" + str(len(sys.argv)), "exec"), ns)
    made = [str(i) * 3 for i in range(2000)]
    assert objarena.owns(made[-1])
current, _ = tracemalloc.get_traced_memory()
assert current > 0
keep = ns["x"]
tracemalloc.stop()
del made, keep, ns
gc.collect()
print("DONE", objarena.info()["hook_on_top"])
""")
    result.check()
    assert "DONE True" in result.stdout


def test_tracemalloc_still_traces_scoped_allocations(child):
    # objarena sits under tracemalloc's hook: what a scope allocates is traced.
    check(child, """
import tracemalloc
tracemalloc.start()
with objarena.scope():
    kept = [fresh(str(i)) for i in range(5000)]
    assert objarena.owns(kept[-1])
snap = tracemalloc.take_snapshot()
traced = sum(s.size for s in snap.statistics("filename"))
assert traced > 5000 * 50, traced
assert objarena.info()["installed_under_tracemalloc"]
tracemalloc.stop()
del kept
gc.collect()
print("DONE")
""")


def test_x_tracemalloc_exit_after_scoped_code(child):
    check(child, """
with objarena.scope():
    x = compile_in_scope("xopt_")
    keep = [fresh(str(i)) for i in range(3000)]
sys.modules["__keep__"] = (x, keep)
print("DONE")
""", xopts=["tracemalloc"])


@pytest.mark.parametrize("frames", ["1", "5"])
def test_pythontracemalloc_imports_in_a_scope_then_exit(child, frames):
    check(child, """
with objarena.scope():
    import decimal, fractions, json, csv
    x = compile_in_scope("env_")
    d = decimal.Decimal("1.25") * 3
print("DONE", d, fractions.Fraction(1, 3))
""", env={"PYTHONTRACEMALLOC": frames})


def test_x_tracemalloc_explicit_stop_then_scopes_then_start_again(child):
    check(child, """
import tracemalloc
with objarena.scope():
    a = compile_in_scope("a_")
tracemalloc.stop()
with objarena.scope():
    b = compile_in_scope("b_")
tracemalloc.start()
with objarena.scope():
    c = compile_in_scope("c_")
    kept = [fresh(str(i)) for i in range(2000)]
tracemalloc.stop()
del a, b, c, kept
gc.collect()
tracemalloc.start()
print("DONE")
""", xopts=["tracemalloc"])


def test_stop_inside_a_scope_started_before_the_first_scope(child):
    check(child, """
import tracemalloc
tracemalloc.start()
with objarena.scope():
    x = compile_in_scope("in_")
    tracemalloc.stop()               # inside the scope
    y = [fresh(str(i)) for i in range(2000)]
    assert objarena.owns(y[-1])      # still capturing
del x, y
gc.collect()
print("DONE")
""")


def test_start_and_stop_many_times_around_scopes(child):
    check(child, """
import tracemalloc
keep = []
for i in range(6):
    if i % 2 == 0:
        tracemalloc.start()
    with objarena.scope():
        keep.append(compile_in_scope("loop%d_" % i))
        keep.append([fresh(str(j)) for j in range(500)])
    if i % 2 == 1:
        tracemalloc.stop()
    if i == 3:
        keep.clear(); gc.collect()
tracemalloc.start()
with objarena.scope(domains=("obj", "mem")):
    keep.append([[fresh(str(j))] * 4 for j in range(500)])
tracemalloc.stop()
keep.clear(); gc.collect()
print("DONE")
""")


def test_start_before_a_mem_domain_scope_with_debug_hooks(child):
    check(child, """
import tracemalloc
tracemalloc.start()
with objarena.scope(domains=("obj", "mem")):
    x = compile_in_scope("dbg_")
    kept = [[fresh(str(i))] * 10 for i in range(2000)]
tracemalloc.stop()
del x, kept
gc.collect()
print("DONE")
""", env={"PYTHONMALLOC": "debug"})
