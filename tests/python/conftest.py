"""Shared helpers: most hazards run in a child interpreter, where a crash
(SIGSEGV from poisoned memory, glibc's abort on a foreign free) is the failure
mode and must not take the test runner down with it."""
import os
import subprocess
import sys
import textwrap

import pytest


class Child:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def check(self):
        assert self.returncode == 0, (
            f"child failed with {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )
        return self


def run_child(code, *, env=None, xopts=(), poison=True, timeout=180, args=()):
    """Runs `code` in a fresh interpreter (this one) with objarena importable.

    poison=True sets OBJARENA_POISON=1: every released chunk becomes
    PROT_NONE, so any use of memory objarena gave back faults at once.
    args become the child's sys.argv[1:]."""
    # glibc's malloc tunables (MALLOC_TRIM_THRESHOLD_...) change what the heap
    # keeps; distributed's Nanny sets MALLOC_TRIM_THRESHOLD_ in this process's
    # environment for good once a LocalCluster started here. A child gets them
    # only when its test asks.
    full_env = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") and k.endswith("_"))}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if poison:
        full_env["OBJARENA_POISON"] = "1"
    full_env.update(env or {})
    argv = [sys.executable]
    for x in xopts:
        argv += ["-X", x]
    argv += ["-c", textwrap.dedent(code), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=timeout)
    return Child(proc)


@pytest.fixture
def child():
    return run_child


def pytest_collection_modifyitems(config, items):
    """Bazel's test sharding (shard_count in tests/python/BUILD): shard i of
    n runs the i-th of n contiguous slices of the collected tests, so a
    module's fixtures are set up in at most two shards. Under ASan one
    interpreter's whole suite took longer than a test's 900 s timeout on a
    loaded machine (the CI on record, stop 28: 3.13.0 timed out at ~91%)."""
    total = int(os.environ.get("TEST_TOTAL_SHARDS", "1") or 1)
    if total <= 1:
        return
    index = int(os.environ.get("TEST_SHARD_INDEX", "0"))
    status = os.environ.get("TEST_SHARD_STATUS_FILE")
    if status:  # tells Bazel this runner honours sharding
        open(status, "a").close()
    start, stop = len(items) * index // total, len(items) * (index + 1) // total
    keep = items[start:stop]
    config.hook.pytest_deselected(items=items[:start] + items[stop:])
    items[:] = keep
