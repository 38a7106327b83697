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


# --- Async hazards (issue 22): a task scope's objects escaping past its exit.
# Each case runs twice: "poison" (released chunks PROT_NONE: a use of given-back
# memory faults) and "adopt" (no poison: later scopes allocate into the free
# lines of the retained chunks, right next to the survivors, so a survivor
# whose lines were wrongly counted free is overwritten and fails its field
# checks). Every survivor is checked field by field after its task's scope is
# released, again after more allocation, and again after half of them died.
ASYNC = """
import asyncio, os, traceback
import objarena.asyncio as oa
MODE = sys.argv[1]
assert (os.environ.get("OBJARENA_POISON") == "1") == (MODE == "poison")
SCOPES = {}

class Rec:
    pass

def make(tag, i):
    r = Rec()
    r.tag = fresh(tag + str(i))
    r.n = i
    r.f = i + 0.25
    r.big = 10 ** 30 + i
    r.t = (i, fresh("t" + str(i)), -i)
    r.l = [float(j) + i for j in range(i % 7 + 1)]
    r.d = {"k": fresh("k" + str(i)), "v": [i] * 3}
    r.b = bytes([i % 256]) * 33
    return r

def verify(r, tag, i):
    assert type(r) is Rec, type(r)
    assert r.tag == fresh(tag + str(i)), (r.tag, tag, i)
    assert r.n == i and r.f == i + 0.25 and r.big == 10 ** 30 + i, (r.n, r.f, r.big)
    assert r.t == (i, fresh("t" + str(i)), -i), r.t
    assert r.l[:i % 7 + 1] == [float(j) + i for j in range(i % 7 + 1)], r.l
    assert r.d["k"] == fresh("k" + str(i)) and r.d["v"] == [i] * 3, r.d
    assert r.b == bytes([i % 256]) * 33, r.b
    return 1

def churn(n=30000):
    # The running task's garbage: whole chunks of it are released at its exit.
    junk = [fresh(str(i)) for i in range(n)]
    return len(junk)

def task_scope(name):
    s = objarena.current_scope()
    assert s is not None and s.state == "active", s
    SCOPES[name] = s
    return s

def owned(r, s):
    # The record and its fields no freelist serves were allocated in s's arena.
    return all(objarena.arena_id_of(x) == s.arena_id for x in (r, r.tag, r.b, r.big))

def released(names, survivors, others=()):
    # names: scopes that kept at least `survivors` blocks; others: scopes
    # that may have kept nothing. All exited; together they gave memory
    # back: whole chunks, or the free pages of the chunks their survivors
    # keep (a task scope's small first chunk can leave every chunk holding
    # a survivor).
    gc.collect()
    given_back = 0
    for name in [*names, *others]:
        s = SCOPES[name]
        st = s.stats
        assert s.state == "exited", (name, s.state)
        given_back += st["chunks_released"] + (st["bytes_pages_released"] > 0)
        if name in names:
            assert st["chunks_retained"] >= 1 and st["live_blocks_at_exit"] >= survivors, (name, dict(st))
    assert given_back >= len(names), (given_back, {n: dict(SCOPES[n].stats) for n in [*names, *others]})
    info = objarena.info()
    assert info["arenas_live"] == 0 and info["retained_blocks"] >= survivors, info
    return info

async def more_tasks():
    oa.install()
    async def more():
        s = objarena.current_scope()
        for r in range(3):
            more = [make("again", i) for i in range(3000)]
            await asyncio.sleep(0)
        return s
    scopes = await asyncio.gather(*[more() for _ in range(8)])
    await asyncio.sleep(0)
    return sum(s.stats["chunks_adopted"] for s in scopes)

def reuse():
    # More allocation after the release: new scopes and task scopes
    # (adopting the retained chunks' free lines when not poisoned) and
    # plain objects.
    adopted = 0
    for r in range(3):
        with objarena.scope() as s:
            more = [make("again", i) for i in range(5000)]
            del more
        adopted += s.stats["chunks_adopted"]
    adopted += asyncio.run(more_tasks())
    plain = [make("plain", i) for i in range(3000)]
    gc.collect()
    return adopted

def after(check, drop, adopt=True):
    # Check, allocate more, check; drop half the survivors, allocate, check.
    check()
    adopted = reuse()
    # (after one reuse(): on 3.10 a code object first run in a scope keeps
    # its frame there, so reuse()'s first run retains blocks of its own)
    before = objarena.info()["retained_blocks"]
    check()
    drop()
    gc.collect()
    adopted += reuse()
    check()
    assert objarena.info()["retained_blocks"] < before, (before, objarena.info())   # the dead ones' blocks went
    assert MODE == "poison" or not adopt or adopted >= 1, adopted   # the survivors' chunks were written around
    print("adopted", adopted)


class Boom(Exception):  # what the async cases' tasks raise
    pass
"""


def check_async(child, mode, body):
    return check(child, ASYNC + body, args=[mode], poison=(mode == "poison"))


ASYNC_MODES = pytest.mark.parametrize("mode", ["poison", "adopt"])


@ASYNC_MODES
def test_async_objects_escape_into_another_task(child, mode):
    # A producer task hands records through an asyncio.Queue and a module
    # global; the consumer uses (and extends) them only after the producer's
    # scope has exited and its garbage chunks are gone.
    check_async(child, mode, """
SHARED = {}
N = 600

async def producer(q):
    s = task_scope("producer")
    for i in range(N):
        r = make("q", i)
        assert owned(r, s)
        await q.put(r)            # maxsize 8: suspends, the consumer runs between our steps
        if i % 100 == 99:
            churn()
    SHARED["last"] = make("shared", N)
    SHARED["list"] = [make("shared", i) for i in range(50)]
    await q.put(None)
    churn()

async def consumer(q, go):
    task_scope("consumer")
    got = []
    while True:
        r = await q.get()
        if r is None:
            break
        got.append(r)
    await go.wait()
    assert SCOPES["producer"].state == "exited"
    churn()
    assert sum(verify(r, "q", i) for i, r in enumerate(got)) == N
    for i, r in enumerate(got):    # survivors of one arena now point into another's
        r.l.append(-1.5 - i)
        r.d["new"] = fresh("new" + str(i))
        r.extra = (fresh("x" + str(i)), float(i) / 3)
    verify(SHARED["last"], "shared", N)
    return got

async def main():
    oa.install()
    q = asyncio.Queue(maxsize=8)
    go = asyncio.Event()
    p = asyncio.create_task(producer(q))
    c = asyncio.create_task(consumer(q, go))
    await p
    await asyncio.sleep(0)
    assert SCOPES["producer"].state == "exited"
    gc.collect()
    go.set()
    return await c

got = asyncio.run(main())
released(["producer", "consumer"], 50)

def check_all():
    for i, r in enumerate(got):
        if r is None:
            continue
        verify(r, "q", i)
        assert r.l[-1] == -1.5 - i and r.d["new"] == fresh("new" + str(i)), (r.l, r.d)
        assert r.extra == (fresh("x" + str(i)), float(i) / 3), r.extra
    verify(SHARED["last"], "shared", N)
    assert sum(verify(r, "shared", i) for i, r in enumerate(SHARED.get("list", []))) in (0, 50)
def drop():
    got[::2] = [None] * len(got[::2])
    del SHARED["list"]
after(check_all, drop)
print("DONE", sum(r is not None for r in got))
""")


@ASYNC_MODES
def test_async_objects_escape_into_the_loop(child, mode):
    # A task leaves its objects with the event loop: timer handles and their
    # arguments (call_later), ready callbacks (call_soon), a reader callback
    # with a closure (add_reader), the loop's exception handler (a closure),
    # an attribute of the loop. The loop runs them after the task's scope exited.
    check_async(child, mode, """
import socket
FIRED = {"later": [], "soon": [], "reader": [], "handler": []}

def fired(kind, i, r):
    assert objarena.current_scope() is None
    if kind == "later":
        assert SCOPES["scheduler"].state == "exited"
    verify(r, kind, i)
    FIRED[kind].append((i, r))

def on_readable(sock, r, closure):
    assert SCOPES["scheduler"].state == "exited"
    assert sock.recv(16) == b"x"
    asyncio.get_running_loop().remove_reader(sock.fileno())
    verify(r, "reader", 0)
    FIRED["reader"].append((0, r, closure()))

def handler_for(r, words):
    def handler(loop, context):
        verify(r, "handler", 0)
        assert words == [fresh("w" + str(i)) for i in range(20)]
        FIRED["handler"].append((0, r, str(context.get("exception"))))
    return handler

async def scheduler(sock):
    task_scope("scheduler")
    loop = asyncio.get_running_loop()
    for i in range(200):
        loop.call_later(0.05 + (i % 5) * 0.01, fired, "later", i, make("later", i))
        loop.call_soon(fired, "soon", i, make("soon", i))
        if i % 50 == 49:
            churn()
    loop.objarena_attr = [make("attr", i) for i in range(100)]
    payload = make("closure", 7)
    loop.add_reader(sock.fileno(), on_readable, sock, make("reader", 0), lambda: payload)
    loop.set_exception_handler(handler_for(make("handler", 0), [fresh("w" + str(i)) for i in range(20)]))
    churn()

def raiser():
    raise KeyError(fresh("from-a-callback"))

async def main():
    oa.install()
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    await asyncio.create_task(scheduler(a))
    await asyncio.sleep(0)
    assert SCOPES["scheduler"].state == "exited"
    gc.collect()
    churn()
    b.send(b"x")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(FIRED["later"]) == 200 and FIRED["reader"]:
            break
    loop.call_soon(raiser)
    await asyncio.sleep(0.01)
    assert [len(v) for v in FIRED.values()] == [200, 200, 1, 1], {k: len(v) for k, v in FIRED.items()}
    assert fresh("from-a-callback") in FIRED["handler"][0][2]
    attr = loop.objarena_attr
    loop.set_exception_handler(None)
    a.close(); b.close()
    return attr

attr = asyncio.run(main())
released(["scheduler"], 100)

def check_all():
    for kind in ("later", "soon"):
        assert len({i for i, _ in FIRED[kind]}) == len(FIRED[kind])
        for i, r in FIRED[kind]:
            verify(r, kind, i)
    _, r, p = FIRED["reader"][0]
    verify(r, "reader", 0)
    verify(p, "closure", 7)
    verify(FIRED["handler"][0][1], "handler", 0)
    assert sum(verify(r, "attr", i) for i, r in enumerate(attr)) == len(attr) >= 50
def drop():
    FIRED["later"].sort(key=lambda e: e[0])
    del FIRED["later"][100:], FIRED["soon"][:150], attr[50:]
after(check_all, drop)
print("DONE")
""")


@ASYNC_MODES
def test_async_objects_escape_into_a_futures_result(child, mode):
    # Futures made outside the task get the task's result and exception; a
    # future made inside the task (its memory the task's) is handed out
    # through another. One waiter already waits; another awaits only after
    # the setter's scope has been released.
    check_async(child, mode, """
async def setter(out, exc, handoff):
    task_scope("setter")
    churn()
    inner = asyncio.get_running_loop().create_future()
    assert objarena.arena_id_of(inner) == SCOPES["setter"].arena_id
    handoff.set_result(inner)
    seen = make("callback", 0)
    out.add_done_callback(lambda f: seen.l.append(len(f.result()["recs"])))
    out.set_result({"recs": [make("fut", i) for i in range(300)], "name": fresh("result")})
    exc.set_exception(Boom(make("futexc", 0), [fresh("arg" + str(i)) for i in range(20)]))
    await asyncio.sleep(0)
    inner.set_result(tuple(make("inner", i) for i in range(100)))
    churn()
    return seen

async def early(out):
    task_scope("early")
    res = await out              # suspended before the result is set
    churn()
    return res

async def late(out, exc, handoff, go):
    task_scope("late")
    await go.wait()
    assert SCOPES["setter"].state == "exited"
    res = await out
    try:
        await exc
    except Boom as e:
        caught = e
    inner = await handoff
    inner_res = await inner
    churn()
    return res, caught, inner_res

async def main():
    oa.install()
    loop = asyncio.get_running_loop()
    out, exc, handoff = loop.create_future(), loop.create_future(), loop.create_future()
    go = asyncio.Event()
    e = asyncio.create_task(early(out))
    l = asyncio.create_task(late(out, exc, handoff, go))
    await asyncio.sleep(0)
    s = asyncio.create_task(setter(out, exc, handoff))
    seen = await s
    await asyncio.sleep(0)
    assert SCOPES["setter"].state == "exited"
    gc.collect()
    go.set()
    res_early = await e
    res, caught, inner_res = await l
    assert res is res_early is out.result()
    return seen, res, caught, inner_res, out, exc

seen, res, caught, inner_res, out, exc = asyncio.run(main())
released(["setter"], 100, others=["early", "late"])

def check_all():
    verify(seen, "callback", 0)
    assert seen.l[-1] == 300, seen.l
    recs = res["recs"]
    assert res["name"] == fresh("result")
    for i, r in enumerate(recs):
        if r is not None:
            verify(r, "fut", i)
    verify(caught.args[0], "futexc", 0)
    assert caught.args[1] == [fresh("arg" + str(i)) for i in range(20)]
    assert exc.exception() is caught
    text = "".join(traceback.format_exception(type(caught), caught, caught.__traceback__))
    assert "Boom" in text, text
    assert sum(verify(r, "inner", i) for i, r in enumerate(inner_res)) == 100
def drop():
    res["recs"][::2] = [None] * 150
after(check_all, drop)
print("DONE")
""")


@ASYNC_MODES
def test_async_exception_caught_by_another_task(child, mode):
    # Tasks fail with an exception chained to one raised deep in their own
    # frames; another task catches them (await of the task, and gather with
    # return_exceptions) and everything is read after the failing tasks'
    # scopes are released: args, cause, notes, the traceback's frames and
    # their locals.
    check_async(child, mode, """
def deep(n, k):
    if n == 0:
        local_payload = [make("local", i) for i in range(20)]
        raise Boom(make("arg", k), {"k": fresh("kw" + str(k))}, [fresh(str(i)) for i in range(50)])
    return deep(n - 1, k)

async def fails(k):
    task_scope("fails" + str(k))
    data = [make("data", i) for i in range(50)]
    churn()
    await asyncio.sleep(0)
    try:
        deep(5, k)
    except Boom as e:
        wrapped = ValueError(fresh("wrapped" + str(k)))
        if hasattr(wrapped, "add_note"):
            wrapped.add_note(fresh("note" + str(k)))
        churn()
        raise wrapped from e

async def catcher(tasks):
    task_scope("catcher")
    caught = []
    try:
        await tasks[0]
    except ValueError as e:
        caught.append(e)
    caught += await asyncio.gather(*tasks[1:], return_exceptions=True)
    await asyncio.sleep(0)
    assert all(SCOPES["fails" + str(k)].state == "exited" for k in range(len(tasks)))
    gc.collect()
    churn()
    for k, e in enumerate(caught):
        check_exc(e, k)
    return caught

def frames(tb):
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next

def check_exc(e, k):
    assert type(e) is ValueError and str(e) == fresh("wrapped" + str(k)), e
    if hasattr(e, "add_note"):
        assert e.__notes__ == [fresh("note" + str(k))], e.__notes__
    cause = e.__cause__
    assert type(cause) is Boom and e.__suppress_context__
    verify(cause.args[0], "arg", k)
    assert cause.args[1] == {"k": fresh("kw" + str(k))}
    assert cause.args[2] == [fresh(str(i)) for i in range(50)]
    fs = list(frames(cause.__traceback__))
    assert [f.f_code.co_name for f in fs] == ["fails"] + ["deep"] * 6, [f.f_code.co_name for f in fs]
    assert sum(verify(r, "data", i) for i, r in enumerate(fs[0].f_locals["data"])) == 50
    assert fs[-1].f_locals["n"] == 0 and fs[-1].f_locals["k"] == k
    assert sum(verify(r, "local", i) for i, r in enumerate(fs[-1].f_locals["local_payload"])) == 20
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    assert fresh("wrapped" + str(k)) in text and "Boom" in text and "in deep" in text, text

async def main():
    oa.install()
    tasks = [asyncio.create_task(fails(k)) for k in range(6)]
    c = asyncio.create_task(catcher(tasks))
    caught = await c
    for t in tasks:
        assert t.exception() is caught[tasks.index(t)]
    return caught

caught = asyncio.run(main())
released(["fails" + str(k) for k in range(6)] + ["catcher"], 20)

def check_all():
    for k, e in enumerate(caught):
        if e is not None:
            check_exc(e, k)
def drop():
    caught[::2] = [None] * 3
after(check_all, drop)
print("DONE")
""")


@ASYNC_MODES
def test_async_task_cancelled_mid_step(child, mode):
    # Tasks cancelled while suspended halfway through building their data,
    # one inside a nested `async with objarena.scope()` (two scopes unwind in
    # the CancelledError), one that cancels itself in the middle of a step
    # and catches and re-raises the CancelledError, one cancelled before its
    # first step. Their finally/except blocks keep the partial data in a
    # global; it is checked after every scope is released.
    check_async(child, mode, """
PARTIAL = {}

async def builder(name, started):
    task_scope(name)
    partial = []
    try:
        for i in range(100000):
            partial.append(make(name, i))
            if i % 25 == 24:
                churn(5000)
                if i == 99:
                    started.set()
                await asyncio.sleep(0)     # cancelled while suspended here
    finally:
        PARTIAL[name] = partial
        PARTIAL[name + "-exc"] = sys.exc_info()[1]
        PARTIAL[name + "-tail"] = make(name + "-tail", len(partial))   # made while unwinding
        churn(60000)                       # in chunks of its own: released

async def nested(name, started):
    task_scope(name)
    partial = []
    try:
        async with objarena.scope() as inner:
            SCOPES[name + "-inner"] = inner
            for i in range(100000):
                partial.append(make(name, i))
                if i % 25 == 24:
                    churn(5000)
                    if i == 99:
                        started.set()
                    await asyncio.sleep(0)
    finally:
        PARTIAL[name] = partial
        assert objarena.current_scope() is SCOPES[name]
        churn(60000)

async def cancels_itself(name):
    task_scope(name)
    partial = []
    try:
        for i in range(300):
            partial.append(make(name, i))
            if i == 150:
                asyncio.current_task().cancel(fresh("self-cancel"))
            if i % 50 == 49:
                churn(10000)
        await asyncio.sleep(0)             # the CancelledError comes in here
        raise AssertionError("not cancelled")
    except asyncio.CancelledError as e:
        PARTIAL[name] = partial
        PARTIAL[name + "-exc"] = e
        churn(60000)
        raise

async def main():
    oa.install()
    evs = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(builder("b0", evs[0])), asyncio.create_task(builder("b1", evs[1])),
             asyncio.create_task(nested("n0", evs[2])), asyncio.create_task(cancels_itself("self"))]
    never = asyncio.create_task(builder("never", asyncio.Event()))
    never.cancel()
    for ev in evs:
        await ev.wait()
    for _ in range(3):
        await asyncio.sleep(0)
    for t in tasks[:3]:
        t.cancel()
    for t in tasks + [never]:
        try:
            await t
        except asyncio.CancelledError:
            pass
        assert t.cancelled()
    await asyncio.sleep(0)
    assert "never" not in SCOPES and "never" not in PARTIAL
    try:
        tasks[3].result()
    except asyncio.CancelledError as e:
        msg = str(e)
    return msg

msg = asyncio.run(main())
print("self-cancel message", repr(msg)[:30])
released(["b0", "b1", "n0-inner", "self"], 100, others=["n0"])
for name in ("b0", "b1", "n0"):
    assert 100 <= len(PARTIAL[name]) < 100000, (name, len(PARTIAL[name]))
assert len(PARTIAL["self"]) == 300

def check_all():
    for name in ("b0", "b1", "n0", "self"):
        for i, r in enumerate(PARTIAL[name]):
            if r is not None:
                verify(r, name, i)
    for name in ("b0", "b1"):
        assert isinstance(PARTIAL[name + "-exc"], asyncio.CancelledError)
        verify(PARTIAL[name + "-tail"], name + "-tail", len(PARTIAL[name]))
    e = PARTIAL["self-exc"]
    assert isinstance(e, asyncio.CancelledError)
    assert e.args == (fresh("self-cancel"),), e.args   # the message, made in the task's scope
def drop():
    for name in ("b0", "b1", "n0", "self"):
        PARTIAL[name][1::2] = [None] * len(PARTIAL[name][1::2])
after(check_all, drop)
print("DONE")
""")


@ASYNC_MODES
def test_async_many_tasks_interleaved_with_freelist_reuse(child, mode):
    # 60 tasks free floats, tuples and dicts and take the ones the others
    # freed (CPython's freelists do not ask the allocator), keep some of what
    # they took, and exit in an interleaved order. test_task_scopes checks a
    # pair; here every survivor of every task is checked after all released.
    check_async(child, mode, """
import random
rng = random.Random(7)
N = 60
KEPT = {}

async def job(k, gates):
    task_scope(k)
    kept = []
    for round in range(4):
        xs = [float(k * 1000 + j) + 0.5 for j in range(300)]
        ts = [(k, j, fresh(str(j))) for j in range(300)]
        ds = [{"k": k, "j": j} for j in range(100)]
        kept += [xs[7 * round], ts[11 * round], ds[13 * round], make(str(k), round)]
        del xs, ts, ds                     # onto the freelists, for the next task's step
        await asyncio.sleep(0)
    churn(20000)
    await gates[k].wait()
    KEPT[k] = kept

def check_kept(k, kept):
    for round in range(4):
        x, t, d, r = kept[4 * round: 4 * round + 4]
        assert x == float(k * 1000 + 7 * round) + 0.5, x
        assert t == (k, 11 * round, fresh(str(11 * round))), t
        assert d == {"k": k, "j": 13 * round}, d
        verify(r, str(k), round)

async def main():
    oa.install()
    gates = [asyncio.Event() for _ in range(N)]
    tasks = [asyncio.create_task(job(k, gates)) for k in range(N)]
    order = list(range(N))
    rng.shuffle(order)
    for k in order:
        gates[k].set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)

asyncio.run(main())
released(list(range(N)), 4)
ids = {SCOPES[k].arena_id: k for k in range(N)}
foreign = sum(1 for k, kept in KEPT.items() for x in kept if ids.get(objarena.arena_id_of(x), k) != k)
print("kept from another task's arena", foreign)

def check_all():
    for k, kept in KEPT.items():
        if kept is not None:
            check_kept(k, kept)
def drop():
    for k in range(0, N, 2):
        KEPT[k] = None
# (the survivors sit in the tasks' 64 KiB first chunks: with adoption the later
# task scopes refill them, around the survivors)
after(check_all, drop)
print("DONE")
""")
