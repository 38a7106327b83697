"""pytest plugin: every test body runs in its own scope; what it leaks is reported.

    pytest -p objarena.pytest_plugin

Each test's call (the test function, not its fixtures' setup and teardown)
runs inside ``objarena.scope()``: the plugin's hook is the innermost wrapper
of pytest's call hook, so pytest's capture, logging and reports run outside
it. A baseline, the most blocks an empty test left live at its scope's exit
(run three times through pytest's setup, call and teardown before the first
test), is subtracted from every test. A test that left more is checked once
its teardown and reports are done: after a full collection, objects of its
arena still alive (gc-tracked ones, and untracked ones they hold) are its
leak. The terminal summary lists those tests (count, bytes by
``sys.getsizeof``, top types) and the RSS each scope's exit gave back;
failed tests are not listed (what they leave is their exception).
``--objarena-all`` lists every test.

A marker makes a test fail on what it keeps or allocates:

    @pytest.mark.objarena(strict=True)        # fails if objects of the test outlive its call
    @pytest.mark.objarena(limit=50 * 2**20)   # MemoryError past 50 MiB held in the test's scope
    @pytest.mark.objarena(strict=True, limit=2**20, chunk_size=2**16)   # other scope() options pass through

Objects a test leaves in module globals, caches (``functools.lru_cache``,
``re``'s cache, interned strings), class attributes or session fixtures
escape; so do objects other threads take from the freelists while the test
runs (tests that start threads can be blamed for a few blocks). This is leak
detection at the cost of a scope per test, plus a full collection and a heap
walk for each test that left blocks live, not of a tracer.
"""
import gc
import os
import sys

import pytest

from objarena import _objarena

_REPORT_KEY = pytest.StashKey()
_PHASE_KEY = pytest.StashKey()
_BASELINE_KEY = pytest.StashKey()
_BASELINE_RUNS = 3
_TOP_TYPES = 3


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _size(n):
    if n < 1024:
        return f"{n:.0f} B"
    if n < 2**20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 2**20:.1f} MiB"


def find_survivors(arena_id, collect_first=False):
    """Live objects allocated in arena ``arena_id``: the gc-tracked ones, and
    untracked ones (strings, numbers, tuples and dicts of atoms...) that a
    gc-tracked object, an untracked container it holds, or another survivor
    refers to. Costs a walk of the gc's objects, and with ``collect_first`` a
    full collection before it: a scope's exit may collect only the young
    generations, so a test's garbage in cycles can still be there."""
    if collect_first:
        gc.collect()
    found = {}
    todo = []

    def visit(ref):
        if id(ref) not in found and _objarena.arena_id_of(ref) == arena_id:
            found[id(ref)] = ref
            todo.append(ref)
            return True
        return False

    for container in gc.get_objects():
        visit(container)
        for ref in gc.get_referents(container):
            if not visit(ref) and not gc.is_tracked(ref):
                # An untracked container outside the arena (a tuple of
                # strings the gc stopped tracking) can hold survivors.
                for inner in gc.get_referents(ref):
                    visit(inner)
    while todo:  # what survivors refer to
        for ref in gc.get_referents(todo.pop()):
            visit(ref)
    return list(found.values())


class TestScope:
    """One test's scope: what it gave back at exit and what outlived the test."""

    __test__ = False  # not a test class, whatever pytest's collection rules say

    def __init__(self, nodeid, phase, rss_given_back, baseline, failed):
        stats = phase.stats
        self.nodeid = nodeid
        self.blocks = max(0, stats.get("live_blocks_at_exit", 0) - baseline)
        self.released = stats.get("bytes_released", 0) + stats.get("bytes_pages_released", 0)
        self.rss_given_back = rss_given_back
        self.failed = failed
        self.survivors = {}  # type name -> count, alive after the test's teardown
        self.survivor_bytes = 0

    def settle(self, phase):
        # After teardown and reporting, what pytest held for the test (log
        # records, the exception) is gone; what is left outlives the test.
        if not self.blocks or self.failed:
            return
        for obj in find_survivors(phase.arena_id, collect_first=True):
            name = type(obj).__qualname__
            self.survivors[name] = self.survivors.get(name, 0) + 1
            self.survivor_bytes += sys.getsizeof(obj)

    @property
    def leaked(self):
        return bool(self.survivors)

    def line(self):
        top = sorted(self.survivors.items(), key=lambda kv: -kv[1])[:_TOP_TYPES]
        kinds = ", ".join(f"{name} {n}" for name, n in top) or "-"
        return (
            f"{self.nodeid}: {self.blocks} block(s) live at scope exit; alive after teardown: "
            f"{sum(self.survivors.values())} object(s), {_size(self.survivor_bytes)} ({kinds}); "
            f"{_size(self.rss_given_back)} RSS given back"
        )


class Report:
    def __init__(self):
        self.baseline_blocks = None
        self.baseline_runs = []
        self.tests = []


def _empty_test():
    pass


def pytest_addoption(parser):
    group = parser.getgroup("objarena")
    group.addoption("--objarena-all", action="store_true",
                    help="objarena: list every test in the summary, not only those whose objects escaped")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "objarena(strict=False, limit=None, **scope_options): run the test in an objarena scope "
        "with these options; strict fails the test if blocks escape it (beyond pytest's baseline)",
    )
    config.stash[_REPORT_KEY] = Report()


def _measure_baseline(item, report):
    # An empty test run through pytest's own setup, call and teardown (without
    # reports), a few times: the most its scope leaves is pytest's per-test
    # bookkeeping, subtracted from every test.
    from _pytest.runner import runtestprotocol

    for i in range(_BASELINE_RUNS):
        empty = pytest.Function.from_parent(item.parent, name=f"objarena_baseline_{i}", callobj=_empty_test)
        empty.stash[_BASELINE_KEY] = True
        runtestprotocol(empty, log=False, nextitem=item)
    report.baseline_blocks = max(report.baseline_runs, default=0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    report = item.config.stash[_REPORT_KEY]
    if report.baseline_blocks is None and isinstance(item, pytest.Function):
        _measure_baseline(item, report)
    try:
        return (yield)
    finally:
        # Survivors are looked for once the test's teardown and reports are done.
        entry = item.stash.get(_PHASE_KEY, None)
        if entry is not None:
            phase, record = entry
            record.settle(phase)
            del item.stash[_PHASE_KEY]


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    # trylast: the innermost wrapper, so pytest's capture, logging and
    # reporting wrappers run outside the scope.
    report = item.config.stash[_REPORT_KEY]
    marker = item.get_closest_marker("objarena")
    options = dict(marker.kwargs) if marker else {}
    strict = bool(options.pop("strict", False))  # checked here, against the baseline
    phase = _objarena.scope(**options)  # a bad marker option fails the test with its error
    pause = _objarena.paused()  # made outside: a test that hit its limit leaves no room inside
    error = outcome = rss_in = None
    with phase:
        try:
            outcome = yield
        except BaseException as exc:  # noqa: B036 - re-raised below
            error = exc
        try:
            with pause:
                rss_in = _rss()
        except MemoryError:
            pass
    if item.stash.get(_BASELINE_KEY, False):
        report.baseline_runs.append(phase.stats.get("live_blocks_at_exit", 0))
        return outcome
    given_back = max(0, rss_in - _rss()) if rss_in is not None else 0
    record = TestScope(item.nodeid, phase, given_back, report.baseline_blocks or 0, error is not None)
    report.tests.append(record)
    item.stash[_PHASE_KEY] = (phase, record)
    if error is not None:
        raise error
    if strict and record.blocks:
        survivors = find_survivors(phase.arena_id, collect_first=True)
        kinds = {}
        for obj in survivors:
            kinds[type(obj).__qualname__] = kinds.get(type(obj).__qualname__, 0) + 1
        del survivors
        if not kinds:
            return outcome
        pytest.fail(
            f"objarena strict: {record.blocks} block(s) outlived the test beyond pytest's baseline; "
            f"alive after a full collection: {kinds}",
            pytrace=False,
        )
    return outcome


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    report = config.stash.get(_REPORT_KEY, None)
    if report is None or not report.tests:
        return
    leaked = [t for t in report.tests if t.leaked]
    shown = report.tests if config.getoption("objarena_all") else leaked
    tr = terminalreporter
    tr.write_sep("=", "objarena: objects that outlived their test")
    for record in shown:
        tr.write_line(record.line())
    released = sum(t.released for t in report.tests)
    given_back = sum(t.rss_given_back for t in report.tests)
    tr.write_line(
        f"objarena: {len(report.tests)} test(s) in scopes, {len(leaked)} leaked; "
        f"{_size(released)} released, {_size(given_back)} RSS given back; "
        f"baseline {report.baseline_blocks} block(s) per test subtracted"
    )
