"""pytest plugin: each test's body in its own objarena scope; what it leaks is reported.

    pytest --objarena                       # every test; leaks in the summary
    pytest --objarena --objarena-strict     # a test whose objects outlive it fails
    pytest --objarena --objarena-limit=50M  # MemoryError past 50 MiB in a test
    pytest --objarena-poison ...            # released memory PROT_NONE (debug)

Installed with objarena, the plugin is loaded through the ``pytest11`` entry
point and does nothing until ``--objarena`` (or ``objarena = true`` in the
ini file) turns it on; ``-p objarena.pytest_plugin`` also turns it on. The
``objarena`` marker is always registered, and a marked test gets its scope
with the marker's options whether or not the flag is given:

    @pytest.mark.objarena(strict=True)        # fails if objects of the test outlive it
    @pytest.mark.objarena(limit=50 * 2**20)   # MemoryError past 50 MiB held in the test's scope
    @pytest.mark.objarena(limit=2**20, chunk_size=2**16)   # other scope() options pass through

What is in the scope: the test function's body (the plugin wraps the
function pytest calls), not fixtures, pytest's hooks, capture or reports;
for unittest TestCase methods the method alone (pytest binds ``item.obj``
on the case: setUp and tearDown stay outside, as fixtures); for other items
(async cases, plugins' items) the item's ``runtest``.

Cost: per test, a scope and its statistics (``live_blocks_at_exit``), never a
heap walk. Tests whose scope left blocks live are candidates; the survivors
of every candidate whose verdict can be reported are found once, at the end
of the session, in one full collection and one walk of the gc's objects
(none at all if there is no such candidate; see docs/integrations.md).

Leak or cache: a cache fills once; a leak grows every time the code runs.
A candidate test's body runs twice more right away (once, if that repeat
left nothing), with the same fixtures, each time in a fresh scope (``--objarena-repeat``, within
``--objarena-repeat-budget`` of the tests' own time): at the end, a test
whose first run's objects and every repeat's objects are alive is a LEAK and
reported, with the module global, class attribute or cache that holds them;
one whose repeats did not all leave objects filled a cache (listed by
``--objarena-all``). See docs/integrations.md ("What counts as a leak").
"""
import functools
import gc
import inspect
import re
import sys
import time

import pytest

import objarena
from objarena import _objarena

_STATE_KEY = pytest.StashKey()
_TOP = 3
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text):
    """'1048576', '512K', '50M', '2GiB' -> bytes (powers of 1024)."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"objarena: size {text!r} is not bytes or a number with K/M/G/T")
    return int(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower())


def _size(n):
    if n < 1024:
        return f"{n:.0f} B"
    if n < 2**20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 2**20:.1f} MiB"


# ---------------------------------------------------------------- survey
def survey(arenas, first_modules=(), named=True):
    """Objects alive now in the given arenas, after a full collection, in one
    walk of the gc's objects: {arena_id: {"objects", "bytes", "types",
    "holders"}}. With named=False the holders are left as [(object, refs)]
    for name_holders() to name later (naming walks module globals: only
    what is reported needs it). Survivors are the gc-tracked objects of these arenas, the
    untracked ones (str, int, tuples of atoms...) that a tracked object or an
    untracked container it holds refers to, and what survivors refer to.
    Holders are the objects outside the survivor's arena that refer to it
    (named where a module global, class attribute or function's cache holds
    it). Blocks held only by C code are not found (they are counted in the
    scope's live_blocks_at_exit)."""
    arenas = set(arenas)
    out = {}
    if not arenas:
        return out
    gc.collect()
    arena_of = objarena.arena_id_of
    get_referents = gc.get_referents
    found = {}  # id(obj) -> arena (obj kept alive in `keep` meanwhile)
    keep = []
    holders = {}  # arena -> {id(holder): [holder, count]}
    counts = dict.fromkeys(arenas, 0)  # objects found per arena, up to cap
    cap = max(_SURVEY_MIN, min(_SURVEY_CAP, _SURVEY_TOTAL // len(arenas)))

    def add(obj, a, holder, holder_arena):
        n = counts[a]
        if n >= cap:  # enough to describe it: the rest is not looked at
            return
        if holder is not None and holder_arena != a:
            h = holders.setdefault(a, {})
            entry = h.get(id(holder))
            if entry is None:
                h[id(holder)] = [holder, 1]
            else:
                entry[1] += 1
        if id(obj) not in found:
            counts[a] = n + 1
            found[id(obj)] = a
            keep.append(obj)

    # One walk of the gc's objects in C (survey_walk.h): each object in the
    # arenas, each reference into them (through an untracked container
    # outside them too, such as a tuple of strings the gc stopped tracking),
    # in the order a Python walk with get_referents() would find them, and
    # none into an arena past the cap (add() would drop them).
    for obj, a, holder, holder_arena in _objarena._survey_edges(gc.get_objects(), arenas, cap):
        add(obj, a, holder, holder_arena)
    i = 0
    while i < len(keep):  # what survivors refer to
        obj = keep[i]
        i += 1
        for ref in get_referents(obj):
            ra = arena_of(ref)
            if ra in arenas:
                add(ref, ra, obj, found[id(obj)])
    for obj in keep:
        a = found[id(obj)]
        rec = out.get(a)
        if rec is None:
            rec = out[a] = {"objects": 0, "bytes": 0, "types": {}, "holders": [], "capped": counts[a] >= cap}
        rec["objects"] += 1
        try:
            rec["bytes"] += sys.getsizeof(obj)
        except TypeError:
            pass
        name = type(obj).__qualname__
        rec["types"][name] = rec["types"].get(name, 0) + 1
    for a, hs in holders.items():
        if a in out:
            out[a]["holders"] = [(h, n) for h, n in sorted(hs.values(), key=lambda e: -e[1])[:_TOP]]
    del keep, holders, found
    if named:
        name_holders(out.items(), first_modules)
    return out


def name_holders(recs, first_modules=()):
    """Replaces the holder objects of survey records [(arena_id, record)]
    by their names, in one walk for all of them."""
    recs = list(recs)
    named = _name_holders({id(h): h for _, rec in recs for h, _ in rec["holders"]}, first_modules)
    for a, rec in recs:
        # In place: the list may be shared with a result already made.
        rec["holders"][:] = [(_holder_name(h, a, named), n) for h, n in rec["holders"]]


_REPORTED = ("leak", "survivors")  # verdicts reported by default
_REPEAT_FLOOR = 0.1  # seconds of repeats always allowed (a small suite's first tests)
# Survivors looked at per arena: a test that left more is described by a
# sample ("at least"), so the survey's cost stays near one walk of the heap.
_SURVEY_CAP = 5000
_SURVEY_TOTAL = 200_000
_SURVEY_MIN = 200
_NAME_DEPTH = 3
_NAME_BUDGET = 200_000  # objects visited at most while naming holders


def _name_holders(wanted, first_modules=()):
    """{id: (kind, name)} for the wanted holders reachable from a module's
    globals in a few steps through containers (a module global, an item of
    one, a class's dict, an instance's attributes, a function's lru_cache):
    breadth first, from the test modules first (deeper), then from every
    module, so a holder gets its shortest name. Bounded by _NAME_BUDGET
    objects visited. The search is in C (holder_names.h, which lists the
    steps); only the names of what it finds are made here."""
    if not wanted:
        return {}
    passes = []
    for modnames, depth in (([m for m in first_modules if m in sys.modules], _NAME_DEPTH + 1),
                            (list(sys.modules), _NAME_DEPTH)):
        roots = []
        for modname in modnames:
            d = getattr(sys.modules.get(modname), "__dict__", None)
            if isinstance(d, dict) and isinstance(modname, str):
                roots.append((d, modname))
        passes.append((roots, depth))
    paths = _objarena._holder_paths(passes, set(wanted), _NAME_BUDGET)
    return {i: (kind, _path_name(module, steps)) for i, (kind, module, steps) in paths.items()}


def _short_repr(key, width):
    # A long key keeps both ends: a path's tail (the file) and its closing
    # quote say more than its head alone, which read as a whole key.
    text = repr(key)
    if len(text) <= width:
        return text
    head = width // 3
    return f"{text[:head]}...{text[-(width - head - 3):]}"


def _path_name(module, steps):
    name = module
    for how, key in steps:
        if how == ".":
            name = f"{name}.{key}"
        elif how == "[]":
            name = f"{name}[{_short_repr(key, 30)}]"
        elif how == "lru":
            name = f"{name} (its lru_cache)"
        # "=": a class's or an instance's dict takes its owner's name
    return name


def _holder_name(holder, arena, named):
    kind, name = named.get(id(holder), (None, None))
    if isinstance(holder, dict):
        # Which of its keys holds the survivor.
        for key, value in list(holder.items()):
            if objarena.arena_id_of(value) == arena or objarena.arena_id_of(key) == arena:
                if name is None:
                    return f"a dict's [{_short_repr(key, 40)}]"
                if kind in ("module", "attrs") and isinstance(key, str):
                    return f"{name}.{key}"
                return f"{name}[{_short_repr(key, 40)}]"
    if name is not None:
        return f"{name} ({type(holder).__qualname__})"
    return f"a {type(holder).__qualname__} (not reachable from a module global)"


# ---------------------------------------------------------------- state
class _State:
    def __init__(self, config):
        def ini(name):
            return config.getini(name)

        self.enabled = bool(
            config.getoption("objarena") or ini("objarena")
            or "objarena.pytest_plugin" in (config.getoption("plugins", None) or [])
        )
        self.strict = bool(config.getoption("objarena_strict") or ini("objarena_strict"))
        self.poison = bool(config.getoption("objarena_poison") or ini("objarena_poison"))
        limit = config.getoption("objarena_limit") or ini("objarena_limit") or None
        try:
            self.limit = parse_size(limit) if limit else None
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.show_all = bool(config.getoption("objarena_all"))
        self.repeat = config.getoption("objarena_repeat")
        self.repeat_budget = config.getoption("objarena_repeat_budget")
        self.body_seconds = 0.0  # time of the tests' calls (first runs)
        self.tests = 0  # tests run in a scope
        self.failed = 0  # of which failed (not checked)
        self.candidates = {}  # arena_id -> record (a dict) of tests that left blocks live
        self.records = []  # all records of candidates, in order
        self.surveyed = False
        self.results = []
        self.repeats = 0  # repeat runs
        self.repeat_seconds = 0.0
        self.survey_seconds = 0.0
        self.worker_results = []

    def scope_options(self, marker):
        # trim_malloc=False: no malloc_trim per test. The exit collection
        # stays "auto": "young" skips taking the arena's blocks off CPython's
        # freelists, and on 3.14 the plugin's own records then came from a
        # test's arena and were reported as that test's leak.
        options = {"trim_malloc": False}
        if self.limit:
            options["limit"] = self.limit
        if self.poison:
            options["poison"] = True
        strict = self.strict
        if marker is not None:
            options.update(marker.kwargs)
            strict = bool(options.pop("strict", strict))
        return options, strict


def pytest_addoption(parser):
    group = parser.getgroup("objarena", "objarena: a scope per test, leaks reported")
    group.addoption("--objarena", action="store_true", default=False,
                    help="run each test's body in its own objarena scope and report what it leaks")
    group.addoption("--objarena-strict", action="store_true", default=False,
                    help="fail a test whose objects outlive it (implies a collection and walk per such test)")
    group.addoption("--objarena-limit", metavar="SIZE", default=None,
                    help="per-test limit of the scope (bytes, or 512K, 50M, 2G): MemoryError past it")
    group.addoption("--objarena-poison", action="store_true", default=False,
                    help="released memory becomes PROT_NONE (debug use-after-release)")
    group.addoption("--objarena-all", action="store_true", default=False,
                    help="list every test whose objects survived, caches and warm-ups too")
    group.addoption("--objarena-repeat", type=int, default=2, metavar="N",
                    help="run a test that left objects N more times: a leak is objects of every repeat "
                         "alive at the end (growth), a cache is not (default 2; 0: report every survivor)")
    group.addoption("--objarena-repeat-budget", type=float, default=0.1, metavar="SHARE",
                    help="repeats take at most this share of the tests' own time, plus 0.1 s (default 0.1; 0: no "
                         "repeats); a test past it is not repeated and not reported (--objarena-all lists it)")
    parser.addini("objarena", type="bool", default=False, help="objarena: turn the plugin on (as --objarena)")
    parser.addini("objarena_strict", type="bool", default=False, help="objarena: as --objarena-strict")
    parser.addini("objarena_limit", default="", help="objarena: as --objarena-limit")
    parser.addini("objarena_poison", type="bool", default=False, help="objarena: as --objarena-poison")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "objarena(strict=False, limit=None, **scope_options): run the test's body in an objarena "
        "scope with these options (with or without --objarena); strict fails the test if its "
        "objects outlive it",
    )
    config.stash[_STATE_KEY] = _State(config)


def _plain_function(item):
    # A pytest Function whose runtest calls item.obj through pytest_pyfunc_call
    # (not a unittest TestCaseFunction, not an async test).
    return (isinstance(item, pytest.Function) and type(item).runtest is pytest.Function.runtest
            and not inspect.iscoroutinefunction(item.obj) and not inspect.isasyncgenfunction(item.obj))


def _unittest_method(item):
    # A unittest TestCase's method run by pytest's TestCaseFunction, whose
    # runtest binds item.obj on the instance before unittest calls it (so a
    # wrapper there runs the method alone: setUp, tearDown, unittest's and
    # pytest's bookkeeping stay outside the scope, as fixtures do).
    try:
        from _pytest.unittest import TestCaseFunction
    except ImportError:  # a pytest without it: the whole runtest is scoped
        return False
    return (isinstance(item, TestCaseFunction) and type(item).runtest is TestCaseFunction.runtest
            and not inspect.iscoroutinefunction(item.obj))


def _in_scope(fn, phase):
    # `with phase: return fn(*args, **kwargs)`, called from C: a Python
    # wrapper's frame would move every frame of the test on CPython's data
    # stack, and a test recursing around a stack chunk's edge would then map
    # and unmap a chunk at every crossing (pyparsing's random nested
    # expression tests: 4x the mmap calls, +40% time, with the wrapper
    # alone; call_in.h). The function's attributes are copied over, as a
    # decorator would: unittest reads @expectedFailure's and @skip's marks
    # off the method it calls, which is this wrapper.
    return functools.update_wrapper(functools.partial(_objarena._call_in, phase, fn), fn)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    # trylast: the innermost wrapper. For plain functions the scope is entered
    # in a wrapper around the test function itself, so fixtures, pluggy and
    # pytest's own bookkeeping stay outside it.
    state = item.config.stash.get(_STATE_KEY, None)
    marker = item.get_closest_marker("objarena")
    if state is None or (not state.enabled and marker is None):
        return (yield)
    options, strict = state.scope_options(marker)
    phase = objarena.scope(**options)  # a bad option fails the test with its error
    failed = True
    t0 = time.perf_counter()
    try:
        if _plain_function(item) or _unittest_method(item):
            fn = item.obj
            item.obj = _in_scope(fn, phase)
            try:
                result = yield
            finally:
                item.obj = fn
        else:
            with phase:
                result = yield
        failed = False
    finally:
        _record(item, state, phase, failed, time.perf_counter() - t0)
    if strict:
        _check_strict(item, phase)
    return result


def _record(item, state, phase, failed, seconds):
    if phase.state != "exited":
        return
    state.tests += 1
    state.body_seconds += seconds
    if failed:
        state.failed += 1  # what a failed test leaves is its exception: not checked
        return
    blocks = phase.stats.get("live_blocks_at_exit", 0)
    if not blocks:
        return
    rec = {"nodeid": item.nodeid, "blocks": blocks, "arena": phase.arena_id,
           "modname": _modname(item), "repeat": None}
    state.candidates[phase.arena_id] = rec
    state.records.append(rec)
    if state.enabled and state.repeat > 0:
        # The repeats' time is kept within a share of the tests' own time: a
        # test that would go past it is not repeated ("unchecked").
        allowed = state.repeat_budget * state.body_seconds + (_REPEAT_FLOOR if state.repeat_budget > 0 else 0)
        if state.repeat_seconds + state.repeat * seconds > allowed:
            rec["repeat"] = "budget"
            return
        _repeat(item, state, rec, options_marker=item.get_closest_marker("objarena"))


def _rerunner(item):
    """A callable that runs the item's body once more, in the given scope,
    with its fixtures as set up now, or None."""
    if _plain_function(item):
        fn = item.obj
        funcargs = item.funcargs
        args = {name: funcargs[name] for name in item._fixtureinfo.argnames}
        return lambda phase: _in_scope(fn, phase)(**args)
    testcase = getattr(item, "_testcase", None)  # unittest: setUp, the method, tearDown, cleanups
    if testcase is None or not hasattr(testcase, "run"):
        return None
    import unittest

    method = getattr(item, "name", None) if _unittest_method(item) else None
    fn = item.obj

    def run_case(phase):
        result = unittest.TestResult()
        if method is None:
            with phase:
                testcase.run(result)
        else:  # the method alone in the scope, as in the first run
            setattr(testcase, method, _in_scope(fn, phase))
            try:
                testcase.run(result)
            finally:
                delattr(testcase, method)
        if not result.wasSuccessful() or result.skipped or phase.state != "exited":
            raise AssertionError("objarena: the repeat failed")
    return run_case


def _repeat(item, state, rec, options_marker):
    """Run the test body again in fresh scopes, while its fixtures are still
    set up: what a repeat leaves is growth (a leak); a first run whose
    repeats leave nothing filled a cache or warmed something up."""
    again = _rerunner(item)
    if again is None:
        return
    options, _ = state.scope_options(options_marker)
    left = []
    t0 = time.perf_counter()
    try:
        _repeat_runs(state, rec, options, again, left)
    finally:
        state.repeats += 1
        state.repeat_seconds += time.perf_counter() - t0


def _repeat_runs(state, rec, options, again, left):
    for _ in range(state.repeat):
        phase = objarena.scope(**options)
        try:
            again(phase)
        except BaseException:  # noqa: B036 - a repeat that fails tells nothing
            rec["repeat"] = "failed"
            return
        left.append(phase.stats.get("live_blocks_at_exit", 0))
        if not left[-1]:
            # A repeat that left nothing settles it (a cache, not growth):
            # the verdict needs every repeat to leave objects, so the rest
            # would not change it.
            break
        state.candidates[phase.arena_id] = {"repeat_of": rec, "arena": phase.arena_id}
    rec["repeat"] = left


def _modname(item):
    module = getattr(item, "module", None)
    return getattr(module, "__name__", None)


def _check_strict(item, phase):
    if phase.state != "exited" or not phase.stats.get("live_blocks_at_exit", 0):
        return
    found = survey([phase.arena_id], [_modname(item)]).get(phase.arena_id)
    if not found:
        return
    pytest.fail(f"objarena strict: objects made by the test outlived it: {_describe(found)}", pytrace=False)


def _describe(found):
    top = sorted(found["types"].items(), key=lambda kv: -kv[1])[:_TOP]
    kinds = ", ".join(f"{name} {n}" for name, n in top)
    held = "; ".join(f"{name}" + (f" ({n})" if n > 1 else "") for name, n in found["holders"]) or "C code or nothing found"
    return f"{found['objects']} object(s), {_size(found['bytes'])} ({kinds}); held by {held}"


# ---------------------------------------------------------------- session end
def _may_report(rec):
    # A first run's record whose verdict may be "leak" or "survivors": every
    # repeat left blocks, or it was not repeated because it cannot be.
    repeats = rec["repeat"]
    if isinstance(repeats, list):
        return bool(repeats) and all(repeats)
    return repeats is None


def _classify(state):
    """One survey for every candidate arena (first runs and repeats), then a
    verdict per test whose objects survive: "leak" (its repeats' objects
    survive too: growth), "cache" (its repeats left nothing: it filled a
    cache or warmed something up once), or "survivors" (not repeated:
    --objarena-repeat=0, or an item whose body cannot be run alone). Returns
    plain dicts (xdist sends them to the controller)."""
    modules = sorted({r["modname"] for r in state.records if r["modname"]})
    # Only arenas whose verdict can be reported are surveyed (all with
    # --objarena-all): a test whose repeat left nothing filled a cache and
    # one past the budget is unchecked, whatever is alive now; with no
    # arena left to look at, no collection and no walk run at all.
    wanted = {a for a, cand in state.candidates.items() if state.show_all or _may_report(cand.get("repeat_of", cand))}
    found = survey(wanted, modules, named=False)
    again = {}  # id(first run's record) -> [objects its repeats left, repeats that left some]
    for arena, cand in state.candidates.items():
        first = cand.get("repeat_of")
        if first is not None:
            n = found.get(arena, {}).get("objects", 0)
            entry = again.setdefault(id(first), [0, 0])
            entry[0] += n
            entry[1] += bool(n)
    out = []
    shown = []  # (arena, survey record) of what the report names
    for rec in state.records:
        repeats = rec["repeat"]
        f = found.get(rec["arena"])
        if f is None and rec["arena"] not in wanted:
            # Not surveyed: its verdict is known from the repeats alone.
            if not isinstance(repeats, list) and repeats not in ("budget", "failed"):
                continue
            f = {"objects": None, "bytes": 0, "types": {}, "holders": [], "capped": False}
        if f is None:
            continue  # nothing of it alive now: freed later, or held by C code only
        left = None
        if isinstance(repeats, list):
            # Growth: every repeat left objects that are still alive.
            left, growing = again.get(id(rec), (0, 0))
            verdict = "leak" if repeats and growing == len(repeats) else "cache"
        elif repeats in ("budget", "failed"):
            verdict = "unchecked"  # could have been told apart, was not: not reported by default
        else:
            verdict = "survivors"  # --objarena-repeat=0, or no body to repeat
        if verdict in _REPORTED or state.show_all:
            shown.append((rec["arena"], f))
        out.append({
            "nodeid": rec["nodeid"], "verdict": verdict, "objects": f["objects"], "bytes": f["bytes"],
            "types": sorted(f["types"].items(), key=lambda kv: -kv[1])[:_TOP],
            "holders": f["holders"], "repeats": len(repeats) if isinstance(repeats, list) else 0,
            "repeat_objects": left, "capped": f["capped"], "why": repeats if isinstance(repeats, str) else None,
        })
    # Only what is shown is named (a walk from module globals); the rest
    # drop their holders.
    name_holders(shown, modules)
    for r in out:
        if r["verdict"] not in _REPORTED and not state.show_all:
            r["holders"] = []
    state.candidates.clear()
    state.records.clear()
    return out


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    state = session.config.stash.get(_STATE_KEY, None)
    if state is None or state.surveyed:
        return
    state.surveyed = True
    t0 = time.perf_counter()
    state.results = _classify(state)
    state.survey_seconds = time.perf_counter() - t0
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput["objarena"] = {"tests": state.tests, "failed": state.failed, "results": state.results,
                                    "repeats": state.repeats, "repeat_seconds": state.repeat_seconds,
                                    "survey_seconds": state.survey_seconds}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # xdist's controller: gather what each worker found.
    state = node.config.stash.get(_STATE_KEY, None)
    data = getattr(node, "workeroutput", {}).get("objarena")
    if state is None or not data:
        return
    state.tests += data["tests"]
    state.failed += data["failed"]
    state.worker_results.extend(data["results"])
    state.repeats += data["repeats"]
    state.repeat_seconds += data["repeat_seconds"]
    state.survey_seconds += data["survey_seconds"]


def _line(r):
    kinds = ", ".join(f"{name} {n}" for name, n in r["types"])
    held = "; ".join(name + (f" ({n} refs)" if n > 1 else "") for name, n in r["holders"]) or "not found (C code)"
    at_least = "at least " if r["capped"] else ""
    text = f"{r['nodeid']}: {at_least}{r['objects']} object(s), {at_least}{_size(r['bytes'])} ({kinds}); held by {held}"
    if r["verdict"] == "leak":
        text += f"; each of its {r['repeats']} repeat(s) left more ({r['repeat_objects']} in all)"
    elif r["verdict"] == "cache":
        text += "; its repeats did not all leave more (a cache filled once)"
    elif r["verdict"] == "unchecked":
        text += ("; not repeated (past --objarena-repeat-budget)" if r["why"] == "budget"
                 else "; its repeat failed (cannot tell)")
    return text


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash.get(_STATE_KEY, None)
    if state is None or not state.tests:
        return
    results = getattr(state, "results", []) + state.worker_results
    reported = [r for r in results if r["verdict"] in _REPORTED]
    caches = [r for r in results if r["verdict"] == "cache"]
    unchecked = [r for r in results if r["verdict"] == "unchecked"]
    tr = terminalreporter
    if reported or (state.show_all and results):
        tr.write_sep("=", "objarena: objects that outlived their test")
        for r in reported:
            tr.write_line(("LEAK " if r["verdict"] == "leak" else "") + _line(r))
        if state.show_all:
            for r in caches + unchecked:
                tr.write_line(r["verdict"] + " " + _line(r))
    left = sum(r["bytes"] for r in reported)
    tr.write_line(
        f"objarena: {state.tests} test(s) in scopes, {len(reported)} reported ({_size(left)} left alive); "
        f"{len(caches)} left objects that a repeat did not (a cache filled once, or a warm-up), "
        f"{len(unchecked)} left objects but were not repeated "
        f"(neither reported; --objarena-all lists those still alive); {state.failed} failed (not checked)"
    )
    tr.write_line(
        f"objarena: cost: {state.repeats} test(s) run again ({state.repeat_seconds:.2f} s), "
        f"one survey of the survivors at the end ({state.survey_seconds:.2f} s)"
    )
