"""objarena: run a phase of a Python job inside an arena and give its memory back at once.

    import objarena

    with objarena.scope() as phase:        # this thread's object allocations go to a fresh arena
        rows = parse(batch)
        totals = summarize(rows)           # (totals escapes: its memory is retained, and reported)
    print(phase.stats)

    result = objarena.run(job, batch)      # job(batch) in a scope; the result is copied out

What is freed: at scope exit every arena chunk in which no block is alive goes
back to the operating system at once. What is not: a chunk that still holds a
live block (an object that escaped the phase, or memory CPython cached) is
retained, untouched and valid, until its last block is freed; `phase.stats`
and `phase.escaped()` say how much, and `scope(strict=True)` raises
`EscapeError`. Nothing reachable is ever freed.
"""
import atexit as _atexit

# The extension is objarena/_objarena*.so. Under Bazel it is built into
# bazel-bin/pyext/<T>/objarena/ while these .py files stay in pyext/objarena/:
# extend_path joins both directories into one package (a no-op for a wheel).
from pkgutil import extend_path as _extend_path

__path__ = _extend_path(__path__, __name__)

from . import _objarena  # noqa: E402
from ._objarena import EscapeError, Pool, arena_id_of, collect, info, owns, paused, scope

from ._detach import detach
from ._wrap import Scoped, run, scoped

Scope = scope
Paused = paused

# Which CPython internals this build reads here, and why any is off
# (docs/reference.md, "version_support()").
from ._objarena import version_support  # noqa: E402

__all__ = [
    "EscapeError",
    "Pool",
    "Scope",
    "Scoped",
    "arena_id_of",
    "collect",
    "detach",
    "info",
    "owns",
    "paused",
    "run",
    "scope",
    "scoped",
    "version_support",
]
__version__ = "0.1.0"


def _guard_tracemalloc():
    # tracemalloc.start() stacks its hook on what is installed: outside
    # scopes that is objarena's thin pass-through, under which scopes could
    # not capture, so the guard installs the full hook first. tracemalloc.stop()
    # restores the allocator tracemalloc saved at start, over objarena's hook
    # if tracemalloc was started first: the guard re-installs the hook at once.
    import _tracemalloc
    import sys

    start, stop = _objarena._guard_tracemalloc(_tracemalloc.start, _tracemalloc.stop)
    _tracemalloc.start, _tracemalloc.stop = start, stop
    tm = sys.modules.get("tracemalloc")
    if tm is not None:
        tm.start, tm.stop = start, stop


_guard_tracemalloc()
_atexit.register(_objarena._at_exit)
