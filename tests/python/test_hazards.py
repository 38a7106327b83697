"""Every way CPython keeps pointers into a phase's memory behind the user's
back. Each test runs a child interpreter with OBJARENA_POISON=1: released
chunks become PROT_NONE, so an implementation that unmapped a chunk something
still reaches dies with SIGSEGV (or glibc's abort for a foreign free) instead
of passing by luck. Each child then uses the cached memory after the scope."""
import sys

import pytest

PRELUDE = """
import gc, sys, objarena
def fresh(tag):
    return f"{tag}-{'x' * 40}-{len(tag)}"
"""


def check(child, body, **kwargs):
    result = child(PRELUDE + body, **kwargs).check()
    assert "DONE" in result.stdout, result.stdout + result.stderr
    return result


def test_freelists_float_tuple_list_dict(child):
    check(child, """
with objarena.scope():
    for _ in range(3):
        floats = [float(i) + 0.5 for i in range(5000)]
        tuples = [(i, -i) for i in range(5000)]
        lists = [[i] for i in range(2000)]
        dicts = [{"k": i} for i in range(2000)]
        del floats, tuples, lists, dicts
# After the scope the freelists hand out their entries again.
total = 0.0
for i in range(100000):
    f = float(i) * 1.5; t = (i, f); l = [t]; d = {"a": l}
    total += d["a"][0][1]
print("DONE", total)
""")


def test_freelists_with_gc_disabled(child):
    # Freelists are cleared only by a full collection; the scope must run one
    # even when the user disabled gc (and leave it disabled).
    check(child, """
gc.disable()
with objarena.scope():
    junk = [(i, float(i)) for i in range(20000)]
    del junk
assert not gc.isenabled()
acc = sum(t[1] for t in [(i, float(i)) for i in range(20000)])
print("DONE", acc)
""")


def test_collect_false_still_never_unmaps_live_blocks(child):
    # Without the clean-up the freelists keep blocks alive: retained, not freed.
    check(child, """
with objarena.scope(collect=False) as phase:
    junk = [(i, float(i)) for i in range(20000)]
    del junk
print(phase.stats["chunks_retained"] >= 1)
acc = sum(t[1] for t in [(i, float(i)) for i in range(20000)])
print("DONE", acc)
""")


def test_slice_cache(child):
    check(child, """
data = list(range(100))
with objarena.scope():
    for i in range(1000):
        part = data[i % 50: i % 50 + 5]
s = 0
for i in range(1000):
    s += sum(data[i % 10: i % 10 + 3])
print("DONE", s)
""")


def test_type_attribute_cache(child):
    check(child, """
class Config:
    pass
obj = Config()
with objarena.scope():
    for i in range(500):
        name = "attr_" + str(i)
        setattr(Config, name, i)
        getattr(obj, name)
        getattr(Config, name)
print("DONE", sum(getattr(obj, "attr_" + str(i)) for i in range(500)))
""")


def test_interned_strings(child):
    check(child, """
with objarena.scope():
    names = [sys.intern("interned_" + str(i)) for i in range(2000)]
    d = {n: 1 for n in names}
    del names, d
again = [sys.intern("interned_" + str(i)) for i in range(2000)]
print("DONE", len(set(again)))
""")


def test_long_lived_dict_resized_in_scope(child):
    # Module globals and a class dict grow during the phase: their key tables
    # are reallocated from the arena (OBJ domain up to 3.12).
    check(child, """
class Registry:
    pass
g = globals()
with objarena.scope() as phase:
    for i in range(300):
        g["global_" + str(i)] = i
        setattr(Registry, "field_" + str(i), i)
print(phase.stats["chunks_retained"] >= 0)
print("DONE", sum(g["global_" + str(i)] for i in range(300)), Registry.field_299)
""")


def test_shared_key_instance_dicts(child):
    check(child, """
class Row:
    def __init__(self, i):
        self.a = i
rows = [Row(i) for i in range(10)]
with objarena.scope():
    tmp = [Row(i) for i in range(1000)]
    for r in tmp:
        r.extra_attribute_name = 1
    del tmp
later = [Row(i) for i in range(1000)]
for r in later:
    r.extra_attribute_name = 2
print("DONE", sum(r.a for r in rows + later))
""")


def test_frames_of_enclosing_functions(child):
    check(child, """
import logging, traceback
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
log = logging.getLogger("phase")
def outer():
    def inner():
        with objarena.scope():
            f = sys._getframe(1)
            log.info("in the phase %s", fresh("msg"))
            try:
                raise ValueError(fresh("caught"))
            except ValueError:
                tb = traceback.format_exc()
            return f.f_code.co_name
    name = inner()
    # the enclosing frames were materialized inside the scope; use them now
    return name, sys._getframe().f_lineno, traceback.format_stack()
print("DONE", outer()[0])
""")


def test_exception_escaping_the_with_block(child):
    check(child, """
try:
    with objarena.scope() as phase:
        raise ValueError(fresh("escaping") * 10)
except ValueError as e:
    err = e
print(phase.stats["chunks_retained"] >= 1)
import traceback
text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
assert fresh("escaping") in text
del err, text
gc.collect()
print("DONE")
""")


def test_import_inside_a_scope_then_use_it(child):
    check(child, """
assert "fractions" not in sys.modules
with objarena.scope() as phase:
    import fractions
    x = fractions.Fraction(3, 7)
print(phase.stats["chunks_retained"] >= 1)
total = sum(fractions.Fraction(i, i + 1) for i in range(1, 200))
import decimal
print("DONE", float(total))
""")


def test_re_lru_cache_warnings_abc_caches(child):
    check(child, """
import re, functools, warnings, collections.abc, abc
@functools.lru_cache(maxsize=None)
def square(n):
    return [n * n]
class Base(abc.ABC):
    pass
warnings.simplefilter("default")
with objarena.scope():
    pats = [re.compile(r"item-%d-([a-z]+)" % i) for i in range(50)]
    vals = [square(i) for i in range(500)]
    for i in range(5):
        warnings.warn(fresh("warning") + str(i))
    class Impl(Base):
        pass
    isinstance(Impl(), collections.abc.Sized)
    isinstance([], Base)
    del pats, vals
print("DONE", re.compile(r"item-7-([a-z]+)").match("item-7-abc").group(1),
      sum(square(i)[0] for i in range(500)), isinstance([], Base))
""")


def test_utf8_cache_of_long_lived_string(child):
    check(child, """
enc = "ütf-8-" + str(len(sys.argv))  # non-ASCII: its UTF-8 form is cached on first use
with objarena.scope():
    for _ in range(3):
        try:
            b"x".decode(enc)
        except LookupError:
            pass
try:
    b"x".decode(enc)
except LookupError as e:
    msg = str(e)
print("DONE", msg)
""")


def test_one_character_string_caches(child):
    check(child, """
with objarena.scope():
    chars = [chr(i) for i in range(256)]
    bs = [bytes([i]) for i in range(256)]
    del chars, bs
print("DONE", "".join(chr(i) for i in range(256))[200], bytes([200])[0])
""")


def test_async_generators_and_contexts(child):
    check(child, """
import asyncio, contextvars
var = contextvars.ContextVar("v", default=0)
async def agen(n):
    for i in range(n):
        yield i
async def main():
    total = 0
    async for i in agen(200):
        var.set(i)
        total += i
    return total
with objarena.scope():
    r = asyncio.run(main())
print("DONE", r, asyncio.run(main()), contextvars.copy_context().run(var.get))
""")


def test_generator_holds_a_scope_open(child):
    check(child, """
def batches():
    with objarena.scope() as phase:
        yield phase
        yield fresh("second")
gen = batches()
phase = next(gen)
outside = [fresh(str(i)) for i in range(1000)]   # captured: the scope is on this thread's stack
assert objarena.arena_id_of(outside[0]) == phase.arena_id
second = next(gen)
try:
    next(gen)
except StopIteration:
    pass
assert phase.state == "exited"
assert outside[999] == fresh("999") and second == fresh("second")
# A generator abandoned while another scope runs closes out of order: the
# error is reported, memory stays safe, the newer scope keeps working.
gen2 = batches()
p2 = next(gen2)
with objarena.scope() as newer:
    del gen2
    gc.collect()
    y = fresh("newer")
    assert objarena.arena_id_of(y) == newer.arena_id
print("DONE", len(outside), y)
""")


def test_threads_allocate_while_another_thread_is_in_a_scope(child):
    check(child, """
import threading
stop = False
handed = []
lock = threading.Lock()
def worker():
    n = 0
    while not stop:
        junk = [fresh(str(i)) for i in range(200)]
        with lock:
            while handed:
                obj = handed.pop()   # arena objects freed on another thread
                n += len(obj)
        del junk
threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
with objarena.scope() as phase:
    for round in range(200):
        items = [fresh(str(i)) for i in range(300)]
        with lock:
            handed.extend(items[::10])
        del items
stop = True
for t in threads:
    t.join()
handed.clear()
print("DONE", phase.stats["blocks_allocated"] > 60000)
""")


def test_objects_handed_between_threads_and_freed_after_the_scope(child):
    check(child, """
import threading, queue
q = queue.Queue()
with objarena.scope() as phase:
    for i in range(5000):
        q.put({"i": i, "s": fresh(str(i))})
results = []
def consumer():
    while True:
        item = q.get()
        if item is None:
            break
        results.append(len(item["s"]))
t = threading.Thread(target=consumer)
t.start()
q.put(None)
t.join()
before = objarena.info()["retained_chunks"]
del results[:]
gc.collect()
print("DONE", phase.stats["chunks_retained"] >= 1, objarena.info()["retained_chunks"] <= before)
""")


def test_fork_inside_a_scope(child):
    check(child, """
import os
with objarena.scope() as phase:
    data = [fresh(str(i)) for i in range(10000)]
    pid = os.fork()
    if pid == 0:
        more = [fresh(str(i)) for i in range(10000)]
        ok = data[5] == fresh("5") and more[7] == fresh("7")
        os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
# the child inherited the scope; the parent's copy is unaffected
pid = os.fork()
if pid == 0:
    os._exit(0 if data[9999] == fresh("9999") else 4)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0
print("DONE", len(data))
""")


def test_limit_raises_memory_error_then_recovers(child):
    check(child, """
caught = False
try:
    with objarena.scope(limit=8 * 2**20) as phase:
        hog = []
        while True:
            hog.append(fresh(str(len(hog))) * 4)
except MemoryError:
    caught = True
assert caught
st = phase.stats
assert st["alloc_failures"] >= 1 and st["peak_mapped"] <= 8 * 2**20, st
del hog
after = [fresh(str(i)) * 4 for i in range(200000)]   # far past the old limit
with objarena.scope(limit=8 * 2**20) as again:
    small = [fresh(str(i)) for i in range(1000)]
print("DONE", len(after), len(small))
""")


def test_region_exhausted_inside_a_scope_falls_back_to_the_saved_allocator(child):
    # A 1 GiB region and a phase that keeps 1.1 GiB: running out of objarena's
    # address space is objarena's problem, not the program's. The blocks the
    # region cannot hold come from the saved allocator (and are not freed with
    # the phase); nothing raises, nothing is lost. `limit` still raises (above).
    # (No poison: a poisoned region never reuses the address space freed here.)
    check(child, """
keep = []
with objarena.scope() as phase:
    grown = bytearray(b"g" * 100)   # its buffer is an arena block: the region has room
    for i in range(1100):
        keep.append(bytes([i % 251]) * (1 << 20))
    before = phase.stats["alloc_fallbacks"]
    for _ in range(16):
        grown += bytes(grown)       # to 6.5 MB, past the region's end (hook_test checks the realloc move)
    assert phase.stats["alloc_fallbacks"] > before
st = phase.stats
assert st["alloc_fallbacks"] >= 100 and st["alloc_fallbacks"] <= st["alloc_failures"], st
assert objarena.owns(keep[0]) and not objarena.owns(keep[-1])
assert all(len(b) == 1 << 20 and b[0] == b[-1] == i % 251 for i, b in enumerate(keep))
assert len(grown) == 100 << 16 and grown.count(b"g") == len(grown)
del keep
with objarena.scope() as later:           # the region has room again
    again = [fresh(str(i)) for i in range(1000)]
assert later.stats["alloc_failures"] == 0 and objarena.owns(again[0])
print("DONE", len(again))
""", env={"OBJARENA_RESERVE_BYTES": str(1 << 30)}, poison=False)


def test_interpreter_exit_with_survivors(child):
    # Survivors are freed during Py_Finalize, through the hook that stays installed.
    check(child, """
class Node:
    def __init__(self, v):
        self.v = v
        self.peer = self
keep = []
for round in range(3):
    with objarena.scope():
        keep.append([Node(fresh(str(i))) for i in range(2000)])
sys.modules["__keep__"] = keep
print("DONE")
""")


@pytest.mark.parametrize("mode", ["debug", "malloc", "pymalloc_debug"])
def test_other_allocators_underneath(child, mode):
    check(child, """
with objarena.scope() as phase:
    data = [{"k": fresh(str(i))} for i in range(20000)]
    kept = data[::1000]
    del data
acc = sum(len(d["k"]) for d in kept)
extra = [fresh(str(i)) for i in range(20000)]
print("DONE", acc, phase.stats["chunks_released"] > 0)
""", env={"PYTHONMALLOC": mode})


def test_tracemalloc_started_after_objarena(child):
    check(child, """
import tracemalloc
with objarena.scope():
    pass                                   # hook installed first
assert objarena.info()["hook_face"] == "thin"   # outside scopes
tracemalloc.start()                        # guarded: wraps the full face, not the thin one
assert objarena.info()["hook_face"] == "full" and not objarena.info()["hook_on_top"]
with objarena.scope() as phase:
    kept = [fresh(str(i)) for i in range(5000)]
    assert objarena.owns(kept[-1])         # captured through tracemalloc's hook
info = objarena.info()                     # tracemalloc still wraps us; outside scopes the
assert info["hook_face"] == "thin" and not info["hook_on_top"], info   # face in its slot is thin
snap = tracemalloc.take_snapshot()
tracemalloc.stop()
info = objarena.info()
assert info["hook_on_top"] and info["chain_repairs"] == 0, info
assert info["hook_face"] == "thin", info    # on top again, no scope: thin
del kept
gc.collect()
print("DONE", len(snap.traces) > 0)
""")


def test_tracemalloc_started_before_objarena_then_stopped(child):
    check(child, """
import tracemalloc
tracemalloc.start()
with objarena.scope() as phase:
    kept = [fresh(str(i)) for i in range(5000)]
info = objarena.info()                     # installed into tracemalloc's saved slot, not over it
assert info["installed_under_tracemalloc"] and not info["installed_over_tracemalloc"], info
tracemalloc.stop()                         # restores what it saved: our hook
info = objarena.info()
assert info["hook_on_top"] and info["chain_repairs"] == 0, info
del kept                                   # arena blocks must not reach pymalloc's free
gc.collect()
with objarena.scope():
    more = [fresh(str(i)) for i in range(5000)]
del more
tracemalloc.start(); tracemalloc.stop()
print("DONE", objarena.info()["hook_on_top"])
""")


def test_a_stale_copy_of_the_full_face_restored_after_a_chain_repair(child):
    # A hook stacked over our full face saved it (with the ctx of what we
    # forwarded to then: tracemalloc's). tracemalloc stops, we repair the
    # chain (now forwarding to the debug hooks), and the stacked hook
    # uninstalls by restoring what it saved. Forwarding with the ctx of that
    # stale copy would hand the debug hooks tracemalloc's ctx: "bad ID".
    check(child, """
import ctypes, tracemalloc
try:
    import _testcapi
except ImportError:
    print("DONE no _testcapi")
    sys.exit(0)

class Allocator(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]

PYMEM_DOMAIN_OBJ = 2
tracemalloc.start()
# A foreign hook over tracemalloc's (CPython's test allocator, set never to
# fail): tracemalloc's slot is not on top, so objarena installs over both and
# tracemalloc.stop() takes it out of the chain, to be repaired.
_testcapi.set_nomemory(2**31 - 1)
with objarena.scope():
    stale = Allocator()
    ctypes.pythonapi.PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, ctypes.byref(stale))
tracemalloc.stop()
with objarena.scope():                       # the chain is repaired on entry
    kept = [fresh(str(i)) for i in range(1000)]
assert objarena.info()["chain_repairs"] >= 1
ctypes.pythonapi.PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, ctypes.byref(stale))
junk = [fresh(str(i)) for i in range(20000)]  # forwarded through the stale copy
del junk, kept
gc.collect()
print("DONE")
""", env={"PYTHONMALLOC": "debug"})


def test_tracemalloc_started_before_a_mem_domain_scope(child):
    # The MEM-domain hook is installed over tracemalloc too; stop() must
    # repair both chains before list storage from the arena is freed.
    check(child, """
import tracemalloc
tracemalloc.start()
with objarena.scope(domains=("obj", "mem")):
    kept = [[fresh(str(i))] * 10 for i in range(2000)]
tracemalloc.stop()
info = objarena.info()
assert info["hook_on_top"] and info["installed_under_tracemalloc"] and info["chain_repairs"] == 0, info
del kept
gc.collect()
print("DONE")
""")


def test_reuse_off_and_mem_domain_hazards(child):
    # The same caches as above with the other modes.
    check(child, """
import re, functools
class Config:
    pass
g = globals()
for opts in ({"reuse": False}, {"domains": ("obj", "mem")}, {"reuse": False, "domains": ("obj", "mem")}):
    with objarena.scope(**opts):
        floats = [float(i) + 0.5 for i in range(5000)]
        tuples = [(i, -i) for i in range(5000)]
        for i in range(200):
            g["g_" + str(i)] = [i]
            setattr(Config, "a_" + str(i), i)
        data = list(range(100))[3:40]
        re.compile("mode-%d" % len(opts))
        del floats, tuples
total = sum(float(i) * 1.5 for i in range(50000)) + sum(len(g["g_" + str(i)]) for i in range(200))
print("DONE", total, Config.a_199, list(range(10))[2:4])
""")


def test_tracemalloc_stopped_via_the_private_module(child):
    check(child, """
import _tracemalloc, tracemalloc
tracemalloc.start()
with objarena.scope():
    kept = [fresh(str(i)) for i in range(1000)]
_tracemalloc.stop()
assert objarena.info()["hook_on_top"]
del kept
print("DONE")
""")


def test_x_tracemalloc_interpreter_exit_with_live_scope_objects(child):
    # tracemalloc stops itself during finalization, restoring pymalloc; more
    # objects (ours among them) are freed after that.
    result = check(child, """
class Node:
    def __init__(self, v):
        self.v = v
with objarena.scope():
    keep = [Node(fresh(str(i))) for i in range(5000)]
sys.modules["__keep__"] = keep
print("DONE")
""", xopts=["tracemalloc"])
    assert result.returncode == 0


def test_tracemalloc_started_in_a_scope(child):
    check(child, """
import tracemalloc
with objarena.scope():
    tracemalloc.start()
    junk = [fresh(str(i)) for i in range(1000)]
    tracemalloc.stop()
    del junk
print("DONE", objarena.info()["hook_on_top"])
""")


def test_tracemalloc_imported_before_objarena_is_guarded_too(child):
    # The guard must patch the tracemalloc module that is already imported,
    # or its start() would stack tracemalloc on the thin face, under which
    # scopes cannot capture (entering one would raise RuntimeError).
    result = child("""
import sys
import tracemalloc
import objarena
with objarena.scope():
    pass
assert objarena.info()["hook_face"] == "thin"
tracemalloc.start()
with objarena.scope():
    obj = "x" * 100 + str(len(sys.argv))   # built at run time: a fresh block
    assert objarena.owns(obj)
tracemalloc.stop()
print("DONE", objarena.info()["hook_face"])
""")
    result.check()
    assert "DONE thin" in result.stdout, result.stdout + result.stderr


def test_full_pass_through_on_request(child):
    result = child("""
import objarena
with objarena.scope():
    assert objarena.info()["hook_face"] == "full"
print("DONE", objarena.info()["hook_face"])
""", env={"OBJARENA_PASSTHROUGH": "full"})
    result.check()
    assert "DONE full" in result.stdout, result.stdout + result.stderr
