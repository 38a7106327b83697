"""objarena.dask.ScopePlugin on real distributed LocalClusters: every task in
its own scope, counted per worker, results correct, worker memory given back
where a plain worker keeps it, and a clean shutdown."""
import os
import threading

import pytest

distributed = pytest.importorskip("distributed")

import objarena  # noqa: E402
from objarena.dask import PLUGIN_NAME, ScopePlugin, cluster_stats  # noqa: E402

KEPT = []  # one tuple per big task stays in the worker, as a cache would keep it

# Under ASan (OBJARENA_ASAN=1, PYTHONMALLOC=malloc) freed memory sits in ASan's
# quarantine, so RSS measures ASan, not the arena: seen there, plain workers
# +428 MiB and scoped +73 MiB in the process-pool test. RSS is not checked then.
ASAN = os.environ.get("OBJARENA_ASAN") == "1"


def small(i):
    return sum(float(x) for x in range(i % 50))


def build(n_objects):
    rows = [{"id": i, "v": (i, float(i))} for i in range(n_objects // 4)]
    KEPT.append(rows[len(rows) // 2]["v"])
    return sum(r["id"] for r in rows)


def make_lock():
    return threading.Lock()


def type_name(obj):
    return type(obj).__name__


def process_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def expected_small(i):
    return sum(float(x) for x in range(i % 50))


def expected_build(n_objects):
    n = n_objects // 4
    return n * (n - 1) // 2


def cluster(**kwargs):
    return distributed.LocalCluster(processes=True, dashboard_address=":0", scheduler_port=0,
                                    silence_logs=40, **kwargs)


def run_batch(client, n_small, n_big):
    """Runs the tasks; returns per-worker RSS growth (MiB) over the big tasks."""
    smalls = client.gather(client.map(small, range(n_small)))
    assert smalls == [expected_small(i) for i in range(n_small)]
    client.gather(client.map(build, [4000] * 4, pure=False))  # first big-ish tasks: lazy state
    before = client.run(process_rss)
    bigs = client.gather(client.map(build, [200_000] * n_big, pure=False))
    assert bigs == [expected_build(200_000)] * n_big
    after = client.run(process_rss)
    return {addr: (after[addr] - before[addr]) / 2**20 for addr in before}


def test_two_worker_processes_scope_every_task_and_give_memory_back():
    with cluster(n_workers=2, threads_per_worker=1) as lc, distributed.Client(lc) as client:
        pids = list(client.run(os.getpid).values())
        # The same workers, plain first, then with the plugin.
        plain = run_batch(client, 20, 12)
        client.register_plugin(ScopePlugin(limit=32 * 2**20))
        scoped = run_batch(client, 200, 12)
        print(f"worker RSS growth over 12 big tasks: plain {plain}, scoped {scoped} (MiB)")

        stats = cluster_stats(client)
        assert sum(s["tasks"] for s in stats.values()) == 200 + 4 + 12
        assert all(s["tasks"] > 0 and s["tasks_failed"] == 0 for s in stats.values())
        assert all(s["results_kept"] == 0 for s in stats.values())
        assert all(s["bytes_released"] + s["bytes_pages_released"] > 12 * 2**20 for s in stats.values())
        if not ASAN:
            assert max(scoped.values()) < 4.0, (plain, scoped)
            assert sum(plain.values()) > sum(scoped.values()) + 8.0, (plain, scoped)

        # A task over the limit fails with MemoryError; the worker goes on.
        with pytest.raises(MemoryError):
            client.submit(build, 600_000, pure=False).result()
        # A result pickle cannot copy stays in the worker (counted) and is usable downstream.
        lock = client.submit(make_lock)
        assert client.submit(type_name, lock).result() == "lock"
        stats = cluster_stats(client)
        assert sum(s["results_kept"] for s in stats.values()) == 1
        assert sum(s["tasks_failed"] for s in stats.values()) == 1
    # Clean shutdown: the worker processes are gone.
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_two_threads_per_worker_get_a_scope_per_task():
    with cluster(n_workers=1, threads_per_worker=2) as lc, distributed.Client(lc) as client:
        client.register_plugin(ScopePlugin(warm_pool=True))
        depths = client.gather(client.map(lambda i: objarena.info()["scope_depth"], range(20)))
        scoped = run_batch(client, 100, 8)
        print(f"2-thread worker RSS growth over 8 big tasks: {scoped} (MiB)")
        (stats,) = cluster_stats(client).values()
        assert stats["registered"] is True
        # Removing the plugin puts a plain pool back.
        client.unregister_worker_plugin(PLUGIN_NAME)
        assert client.submit(lambda: objarena.info()["scope_depth"]).result() == 0
        # issue 23: cluster_stats said {addr: None} here
        assert list(cluster_stats(client).values()) == [{"registered": False}]
    assert depths == [1] * 20
    assert stats["tasks"] == 20 + 100 + 4 + 8 and stats["tasks_failed"] == 0
    # The worker's pool keeps memory warm between tasks: empty chunks parked,
    # or retained chunks whose free pages stay resident (the big tasks keep
    # rows, so with two threads the last exits can leave no empty chunk:
    # warm_bytes 0 in one CI run on 3.11).
    assert stats["warm_bytes"] + stats["warm_retained_bytes"] > 0, stats
    if not ASAN:
        # the warm chunks and the retained chunks' resident free pages, nothing else
        assert max(scoped.values()) - (stats["warm_bytes"] + stats["warm_retained_bytes"]) / 2**20 < 4.0


def test_plugin_options_are_checked_on_the_client():
    with pytest.raises(ValueError, match="would fail every task") as err:
        ScopePlugin(strict=True)
    # issue 23: the message recommended objarena.scoped(fn, strict=True), which fails tasks on Dask workers too
    assert "scoped(" not in str(err.value) and "cluster_stats" in str(err.value)
    with pytest.raises(ValueError):
        ScopePlugin(chunk_size=3)
    with pytest.raises(TypeError):
        ScopePlugin(no_such_option=1)
