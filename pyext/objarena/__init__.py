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
import functools as _functools
import pickle as _pickle

import _objarena
from _objarena import EscapeError, Pool, arena_id_of, collect, info, owns, paused, scope

Scope = scope
Paused = paused

__all__ = [
    "EscapeError",
    "Pool",
    "Scope",
    "arena_id_of",
    "collect",
    "info",
    "owns",
    "paused",
    "run",
    "scope",
    "scoped",
]
__version__ = "0.1.0"


def run(fn, /, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` inside a fresh scope and return a copy of its result.

    The result is copied out with pickle while the scope is paused, the original
    is dropped, and only then does the scope exit: for a job that returns plain
    data (numbers, strings, lists, dicts, tuples...) nothing pins the arena and
    every chunk is released. A result that cannot be pickled raises TypeError
    (use ``with objarena.scope():`` to keep such results; they are retained).
    Exceptions raised by ``fn`` propagate unchanged.
    """
    return _run_in(scope(), fn, args, kwargs)


def _run_in(phase, fn, args, kwargs):
    with phase:
        result = fn(*args, **kwargs)
        with paused():
            try:
                data = _pickle.dumps(result, _pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise TypeError(
                    f"objarena.run: the result of {getattr(fn, '__qualname__', fn)!r} cannot be "
                    f"copied out of the scope ({exc}); return picklable data or use objarena.scope()"
                ) from exc
        del result
    return _pickle.loads(data)


def scoped(fn=None, /, **options):
    """Decorator: run the function like :func:`run`, in a scope made with ``options``.

    ``@objarena.scoped`` or ``@objarena.scoped(limit=2**30, strict=True)``.
    """
    scope(**options)  # validate now, not at the first call

    def decorate(func):
        @_functools.wraps(func)
        def wrapper(*args, **kwargs):
            return _run_in(scope(**options), func, args, kwargs)

        return wrapper

    return decorate if fn is None else decorate(fn)


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
