"""Reuse mode, MEM-domain capture, warm pools, page-granular release."""
import gc
import os
import sys

import pytest

import objarena


def fresh(tag):
    return f"{tag}-{'x' * 40}-{len(tag)}"


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def churn(n):
    acc = 0
    for i in range(n):
        rec = {"id": i, "name": fresh(str(i)), "pair": (i, str(i))}
        acc += len(rec["name"])
    return acc


def test_reuse_mode_keeps_a_temporaries_loop_flat():
    churn(1000)
    with objarena.scope(reuse=True) as reuse:
        churn(200_000)
    with objarena.scope(reuse=False) as bump:
        churn(200_000)
    assert reuse.stats["blocks_reused"] > 100_000
    assert bump.stats["blocks_reused"] == 0
    # Bump mode maps memory for every temporary; reuse mode for the working set.
    assert reuse.stats["peak_mapped"] * 10 < bump.stats["peak_mapped"]


def test_mem_domain_capture_takes_small_list_storage_only():
    with objarena.scope(domains=("obj",)) as obj_only:
        a = [[fresh(str(i))] for i in range(50_000)]
    with objarena.scope(domains=("obj", "mem")) as both:
        b = [[fresh(str(i))] for i in range(50_000)]
    assert objarena.info()["mem_hook_installed"]
    # Each inner list's item array (8 bytes, 16 with rounding) went through
    # PyMem_Malloc, and is captured: at most 512 bytes.
    assert both.stats["bytes_requested"] > obj_only.stats["bytes_requested"] + 300_000
    assert a[49_999] == b[49_999]
    # The outer list's item array grows past 512 bytes: it leaves the arena
    # for the saved allocator then (only its first few sizes were captured).
    with objarena.scope(domains=("obj",)) as flat_obj:
        c = [fresh(str(i)) for i in range(50_000)]
    with objarena.scope(domains=("obj", "mem")) as flat_both:
        d = [fresh(str(i)) for i in range(50_000)]
    assert 0 < flat_both.stats["bytes_requested"] - flat_obj.stats["bytes_requested"] < 4096
    assert c == d
    del a, b, c, d
    gc.collect()


@pytest.mark.parametrize("domains", [["obj", "mem", "disk"], ["mem"], ["obj", "obj"], "mem", [1]])
def test_bad_domains(domains):
    with pytest.raises((TypeError, ValueError)):
        objarena.scope(domains=domains)


def test_pool_reuses_warm_chunks_and_trim_gives_them_back():
    # (The default pool may hold a chunk an earlier test's survivor gave back
    # to it when it died: the process-wide count is compared past it.)
    objarena.collect()
    elsewhere = objarena.info()["warm_bytes"]
    with objarena.Pool(max_warm_bytes=64 * 2**20) as pool:
        with pool.scope() as first:
            churn(50_000)
            junk = [fresh(str(i)) for i in range(100_000)]
            del junk
        warm = pool.stats["warm_bytes"]
        assert warm > 0 and first.stats["chunks_parked"] > 0
        with pool.scope() as second:
            junk = [fresh(str(i)) for i in range(100_000)]
            del junk
        assert pool.stats["hits"] >= 1
        assert objarena.info()["warm_bytes"] - elsewhere == pool.stats["warm_bytes"]
        before = rss_kib()
        pool.trim()
        assert pool.stats["warm_bytes"] == 0
        assert rss_kib() < before
    assert pool.stats["closed"] is True
    with pytest.raises(ValueError):
        pool.scope()


def test_pool_stats_survive_close():
    # issue 23: Pool.stats read all zeros once the pool was closed (after `with Pool()`), so a job could not
    # report what its pool did; they now keep the counts, with the warm chunks close() gave back as trimmed
    with objarena.Pool(max_warm_bytes=64 * 2**20) as pool:
        for _ in range(3):
            with pool.scope():
                junk = [fresh(str(i)) for i in range(100_000)]
                del junk
        before = dict(pool.stats)
    after = dict(pool.stats)
    assert before["hits"] >= 1 and before["parked"] >= 1 and before["warm_bytes"] > 0
    assert after["closed"] is True and before["closed"] is False
    for key in ("hits", "misses", "parked", "retained_hits"):
        assert after[key] == before[key], key
    assert after["warm_bytes"] == 0 and after["warm_chunks"] == 0 and after["scopes_active"] == 0
    assert after["trimmed_bytes"] >= before["trimmed_bytes"] + before["warm_bytes"]
    assert "closed" in repr(pool) and f"hits={before['hits']}" in repr(pool)


def test_pool_cannot_close_while_a_scope_is_active():
    pool = objarena.Pool()
    s = pool.scope()
    with s:
        with objarena.paused():
            with pytest.raises(RuntimeError):
                pool.close()
    pool.close()
    pool.close()  # idempotent


def test_scope_of_a_closed_pool_cannot_be_entered():
    pool = objarena.Pool()
    s = pool.scope()
    pool.close()
    with pytest.raises(ValueError, match="closed"):
        s.__enter__()
    assert not objarena.info()["capturing"]


def test_pool_options_are_validated():
    with pytest.raises(ValueError):
        objarena.Pool(chunk_size=3 * 65536)
    with pytest.raises(TypeError):
        objarena.Pool(max_warm_bytes="1G")
    with pytest.raises(TypeError):
        objarena.scope(pool="not a pool")
    with pytest.raises(ValueError):
        objarena.Pool(chunk_size=2**21).scope(chunk_size=2**20)


def test_survivors_pin_pages_not_chunks():
    kept = []
    with objarena.scope(reuse=False, domains=("obj", "mem")) as phase:
        items = [(i, str(i), [i]) for i in range(200_000)]
        kept.extend(items[::1000])
        del items
    st = phase.stats
    assert st["chunks_retained"] >= 10
    # Nearly every page of the retained chunks went back to the OS.
    assert st["bytes_pages_released"] > 0.9 * st["bytes_retained"]
    assert [k[1] for k in kept[:3]] == ["0", "1000", "2000"]


class Box:
    """A gc-tracked object no freelist serves: always made in the scope."""

    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name, self.value = name, value


@pytest.mark.parametrize("reuse", [True, False])
def test_later_phases_allocate_around_earlier_survivors(reuse):
    """Adoption: each phase keeps one object, and the next phase bump-allocates
    into the free pages of the chunk that object pins, instead of mapping a new
    chunk (300 phases used to retain 300 chunks: with one scope per request, a
    worker ran out of region after reserve/1 MiB requests)."""
    kept, phases = [], []
    before = objarena.info()
    for i in range(300):
        with objarena.scope(reuse=reuse) as phase:
            garbage = [str(j) * 3 for j in range(2000)]
            kept.append(Box(fresh(str(i)), garbage[7]))
            del garbage
        phases.append(phase)
    after = objarena.info()
    assert after["chunks_adopted_total"] - before["chunks_adopted_total"] >= 250
    # (about 1 chunk per 7 phases: a chunk leaves the pool of candidates once
    # its survivors leave no 256 KiB run of free pages)
    assert after["retained_chunks"] - before["retained_chunks"] <= 100
    assert sum(p.stats["chunks_adopted"] for p in phases) >= 250
    # Every survivor is intact and still counted as its own phase's: a later
    # phase that adopted its chunk neither reports it as escaped nor owns it.
    for i, (item, phase) in enumerate(zip(kept, phases)):
        assert item.name == fresh(str(i)) and item.value == "777"
        assert objarena.arena_id_of(item) == objarena.arena_id_of(item.name) == phase.arena_id
    assert max(p.stats["live_blocks_at_exit"] for p in phases) <= 10
    escaped = phases[-1].escaped()
    assert escaped[Box] == [kept[-1]]
    kept.clear()
    gc.collect()
    # With the survivors gone their chunks are handed back (nothing else in them).
    assert objarena.info()["retained_chunks"] <= before["retained_chunks"] + 2


def test_adopt_false_maps_fresh_chunks():
    kept = []
    before = objarena.info()
    for i in range(20):
        with objarena.scope(adopt=False) as phase:
            kept.append(Box(fresh(str(i)), [str(j) for j in range(2000)][7]))
        assert phase.stats["chunks_adopted"] == 0
    after = objarena.info()
    assert after["chunks_adopted_total"] == before["chunks_adopted_total"]
    assert after["retained_chunks"] - before["retained_chunks"] >= 15  # ~one per phase, as before adoption
    assert [k.name for k in kept] == [fresh(str(i)) for i in range(20)]


TRIM_CHILD = """
import sys
import objarena

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

option = {"default": {}, "on": {"trim_malloc": True}, "off": {"trim_malloc": False}}[sys.argv[1]]
pool = objarena.Pool() if sys.argv[2] == "pool" else None
if pool:
    option["pool"] = pool
# A 24 MB list array comes from malloc's mmap; its free raises glibc's mmap
# (and trim) threshold, so the second one comes from the heap, whose free
# memory glibc then keeps.
with objarena.scope(**option):
    big = [None] * 3_000_000
    del big
    big = [None] * 3_000_000
    big[-1] = 1
    del big
print(rss_kib())
if pool:
    pool.trim()
    print(rss_kib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
@pytest.mark.skipif(os.environ.get("OBJARENA_ASAN") == "1",
                    reason="under ASan malloc is ASan's: glibc's heap holds nothing to trim")
def test_scope_exit_hands_the_c_heap_back(child):
    def rss_after(option, pool="nopool"):
        return [int(x) for x in child(TRIM_CHILD, args=(option, pool)).check().stdout.split()]

    kept = rss_after("off")[0]
    assert rss_after("default")[0] < kept - 16 * 1024
    assert rss_after("on")[0] < kept - 16 * 1024
    # A pool's scope keeps memory warm on purpose; its trim() hands it back.
    pool_exit, pool_trimmed = rss_after("default", "pool")
    assert pool_exit > pool_trimmed + 16 * 1024
    assert rss_after("on", "pool")[0] < pool_exit - 16 * 1024


@pytest.mark.skipif(os.environ.get("OBJARENA_ASAN") == "1",
                    reason="under ASan glibc's heap is empty: its trims take no time to pace")
def test_scope_exits_trim_at_a_bounded_pace():
    # A worker opening a scope per short request must not spend its time in
    # malloc_trim: an exit trims only after 50 times the last trim's duration.
    before = objarena.info()
    for _ in range(300):
        with objarena.scope(collect=False):
            pass
    after = objarena.info()
    trims = after["malloc_trims"] - before["malloc_trims"]
    skipped = after["malloc_trims_skipped"] - before["malloc_trims_skipped"]
    assert trims + skipped == 300
    assert 1 <= trims < skipped
    with objarena.scope(collect=False, trim_malloc=False):
        pass
    assert objarena.info()["malloc_trims"] + objarena.info()["malloc_trims_skipped"] == (
        after["malloc_trims"] + after["malloc_trims_skipped"])


def test_trim_malloc_takes_a_bool():
    with pytest.raises(TypeError):
        objarena.scope(trim_malloc=1)
    assert objarena.scope(trim_malloc=None).state == "new"


def vm_flags_of(address):
    """The VmFlags of the /proc/self/smaps mapping holding address ("" if none)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and line.startswith("VmFlags:"):
                return line[len("VmFlags:"):]
    return ""


@pytest.mark.skipif(not os.path.exists("/sys/kernel/mm/transparent_hugepage"),
                    reason="no transparent huge pages in this kernel (MADV_HUGEPAGE is refused)")
def test_huge_pages_map_chunks_of_one_advised_huge_page():
    huge = 2 << 20
    with objarena.scope(huge_pages=True, adopt=False) as phase:
        assert f"chunk_size={huge}" in repr(phase)
        x = fresh("huge")
        assert objarena.arena_id_of(x) == phase.arena_id
        assert phase.stats["bytes_mapped"] == huge
        assert " hg" in vm_flags_of(id(x))
        del x
    with objarena.scope(chunk_size=huge, adopt=False):
        y = fresh("plain")
        flags = vm_flags_of(id(y))
        del y
    assert flags and " hg" not in flags

    with objarena.Pool(huge_pages=True) as pool:
        assert f"chunk_size={huge}" in repr(pool)
        with pool.scope(adopt=False) as phase:
            assert f"chunk_size={huge}" in repr(phase)
            z = fresh("pooled")
            assert phase.stats["bytes_mapped"] == huge
            assert " hg" in vm_flags_of(id(z))
            del z


def test_bad_chunk_sizes_are_reported_as_such_with_huge_pages_too():
    for make in (objarena.scope, objarena.Pool):
        with pytest.raises(ValueError, match="power of two"):
            make(huge_pages=True, chunk_size=12345)


@pytest.mark.parametrize("make", [
    lambda: objarena.scope(huge_pages=True, chunk_size=1 << 20),
    lambda: objarena.Pool(huge_pages=True, chunk_size=1 << 20),
    lambda: objarena.Pool().scope(huge_pages=True),
])
def test_huge_pages_need_chunks_of_a_huge_page(make):
    with pytest.raises(ValueError, match="huge page"):
        make()


def test_default_domains_follow_where_this_python_keeps_dict_keys():
    expected = ("obj", "mem") if sys.version_info >= (3, 13) else ("obj",)
    assert objarena.scope().domains == expected
    assert f"domains={expected!r}" in repr(objarena.scope())
    assert objarena.scope(domains=("obj",)).domains == ("obj",)
    assert objarena.scope(domains=["obj", "mem"]).domains == ("obj", "mem")
    with objarena.Pool() as pool:
        assert pool.scope().domains == expected
    # The default captures what the explicit spelling does: small list storage
    # (PyMem_Malloc) only where "mem" is in the default.
    with objarena.scope() as default:
        a = [[fresh(str(i))] for i in range(20_000)]
    with objarena.scope(domains=expected) as explicit:
        b = [[fresh(str(i))] for i in range(20_000)]
    with objarena.scope(domains=("obj",)) as obj_only:
        c = [[fresh(str(i))] for i in range(20_000)]
    gap = default.stats["bytes_requested"] - obj_only.stats["bytes_requested"]
    assert abs(default.stats["bytes_requested"] - explicit.stats["bytes_requested"]) < 4096
    if "mem" in expected:
        assert gap > 100_000
    else:
        assert abs(gap) < 4096
    assert a[-1] == b[-1] == c[-1]
    del a, b, c
    gc.collect()
