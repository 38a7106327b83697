"""`run` and `scoped`: call a function inside a fresh scope and copy its result out.

`scoped(fn, **options)` returns a `Scoped`: a small picklable object holding
the function and the scope options (validated at decoration). Pickling it
pickles the function by reference (plain pickle, as `ProcessPoolExecutor` and
`multiprocessing.Pool` use) or by value (cloudpickle, as Dask uses for
local functions), so `f2 = objarena.scoped(f)` under any name can be sent to
another process. Used as a decorator at module level, where the module's name
for the function is the `Scoped` itself, it pickles as a reference to that
name (so a process that receives it must be able to import that module: for a
script's `__main__` that holds for multiprocessing's spawn and fork and for a
Dask LocalCluster, not for remote Dask workers; there use
`objarena.dask.ScopePlugin` or keep the function in an importable module).

Coroutine, generator and async-generator functions are refused: scopes are per
thread and end when the call returns, while the body of such a function runs
later (when the coroutine is awaited or the generator iterated), outside the
scope, or worse, interleaved with other code on the same thread.
"""
import inspect
import pickle

from ._objarena import paused, scope

__all__ = ["Scoped", "run", "scoped"]


def run(fn, /, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` inside a fresh scope and return a copy of its result.

    The result is copied out with pickle while the scope is paused, the original
    is dropped, and only then does the scope exit: for a job that returns plain
    data (numbers, strings, lists, dicts, tuples...) nothing pins the arena and
    every chunk is released. A result that cannot be pickled raises TypeError
    (use ``with objarena.scope():`` to keep such results; they are retained).
    Exceptions raised by ``fn`` propagate unchanged.
    """
    return run_in(scope(), fn, args, kwargs)


def run_in(phase, fn, args, kwargs):
    """`run` with a scope object made by the caller (a pool scope, options...)."""
    with phase:
        result = fn(*args, **kwargs)
        with paused():
            try:
                data = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise TypeError(
                    f"objarena.run: the result of {getattr(fn, '__qualname__', fn)!r} cannot be "
                    f"copied out of the scope ({exc}); return picklable data or use objarena.scope()"
                ) from exc
        del result
    return pickle.loads(data)


def refuse_deferred_body(fn, what="objarena.scoped"):
    """TypeError for functions whose body runs after the call returns."""
    for test, kind, hint in (
        (inspect.iscoroutinefunction, "an async def function",
         "run the synchronous part in objarena.run(...) inside it, or await "
         "loop.run_in_executor(None, objarena.run, job, ...)"),
        (inspect.isasyncgenfunction, "an async generator function",
         "open a scope around the synchronous work inside it"),
        (inspect.isgeneratorfunction, "a generator function",
         "return a list instead, or open a scope around the work inside it"),
    ):
        if test(fn):
            raise TypeError(
                f"{what} cannot wrap {getattr(fn, '__qualname__', fn)!r}: it is {kind}, whose body "
                f"runs after the call returns (when it is awaited or iterated), outside the scope; "
                f"scopes are per thread and end with the call. Instead, {hint}."
            )


class Scoped:
    """``fn`` wrapped to run like :func:`run`, in a scope made with ``options``.

    Introspection follows ``functools.wraps``: ``__wrapped__``, ``__name__``,
    ``__qualname__``, ``__doc__``, ``__module__``. ``options`` is a read-only
    copy of the scope options.
    """

    def __init__(self, fn, options):
        if not callable(fn):
            raise TypeError(f"objarena.scoped needs a callable, not {type(fn).__name__}")
        refuse_deferred_body(fn)
        scope(**options)  # validate now, not at the first call
        self.__dict__.update(getattr(fn, "__dict__", {}))
        self.__wrapped__ = fn
        self._options = dict(options)
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            try:
                setattr(self, attr, getattr(fn, attr))
            except AttributeError:
                pass

    @property
    def options(self):
        return dict(self._options)

    def make_scope(self, options=None):
        """The scope one call runs in (subclasses may draw it from a pool)."""
        return scope(**(self._options if options is None else options))

    def run_in_scope(self, phase, args, kwargs):
        """One call of the function in ``phase`` (a scope not yet entered)."""
        return run_in(phase, self.__wrapped__, args, kwargs)

    def __call__(self, *args, **kwargs):
        return self.run_in_scope(self.make_scope(), args, kwargs)

    def __get__(self, obj, objtype=None):
        # Decorated methods bind like functions.
        if obj is None:
            return self
        import types

        return types.MethodType(self, obj)

    def __repr__(self):
        opts = "".join(f", {k}={v!r}" for k, v in self._options.items())
        return f"<objarena.scoped {getattr(self, '__qualname__', self.__wrapped__)!r}{opts}>"

    def __reduce__(self):
        if "pool" in self._options:
            raise TypeError(
                "objarena.scoped(..., pool=...) cannot be pickled: a Pool's warm memory belongs to "
                "one process (objarena.futures.ProcessPoolExecutor(pool=True) gives each worker its own)"
            )
        # Decorator at module level: the module's name for the function is
        # this object, so the function itself cannot be found by name; send
        # the name of this object instead (the receiving process imports the
        # module and finds the same decorated function; for __main__ that is
        # the script multiprocessing's spawn and Dask's LocalCluster re-import).
        module = getattr(self, "__module__", None)
        qualname = getattr(self, "__qualname__", None)
        if module and qualname and "<" not in qualname:
            import sys

            owner = sys.modules.get(module)
            for part in qualname.split("."):
                owner = getattr(owner, part, None)
            if owner is self:
                return (_by_name, (module, qualname))
        return (type(self), (self.__wrapped__, self._options))


def _by_name(module, qualname):
    import importlib

    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def scoped(fn=None, /, **options):
    """Decorator: run the function like :func:`run`, in a scope made with ``options``.

    ``@objarena.scoped`` or ``@objarena.scoped(limit=2**30, strict=True)``, or
    ``job2 = objarena.scoped(job, limit=2**30)``. Options are checked here, not
    at the first call. The result is picklable when the function is (so it can
    be sent to a process pool), unless ``pool=`` is given. Coroutine and
    generator functions are refused with TypeError: their body runs after the
    call returns, outside the scope.
    """
    scope(**options)  # validate before a decorator factory is returned

    def decorate(func):
        return Scoped(func, options)

    return decorate if fn is None else decorate(fn)
