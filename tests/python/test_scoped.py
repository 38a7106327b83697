"""`objarena.scoped`: a wrapped function survives plain pickling (so it can go
to a process pool), keeps its options, and coroutine/generator functions are
refused at decoration."""
import concurrent.futures
import multiprocessing
import pickle

import pytest

import objarena


def build_rows(n):
    """Rows for the pickling tests."""
    return [{"i": i, "s": str(i)} for i in range(n)]


# The case functools.wraps broke: a wrapper under another name than the
# function's own, which plain pickle looked up by the function's name.
build_rows_in_scope = objarena.scoped(build_rows, limit=256 * 2**20)


@objarena.scoped(chunk_size=2**18)
def decorated_total(n):
    return sum(len(r["s"]) for r in build_rows(n))


def test_wrapper_under_another_name_round_trips_through_pickle():
    clone = pickle.loads(pickle.dumps(build_rows_in_scope))
    assert clone.__wrapped__ is build_rows
    assert clone.options == {"limit": 256 * 2**20}
    rows = clone(1000)
    assert rows[999] == {"i": 999, "s": "999"}
    assert not objarena.owns(rows) and not objarena.owns(rows[999])


def test_module_level_decorator_pickles_as_its_own_name():
    data = pickle.dumps(decorated_total)
    assert pickle.loads(data) is decorated_total
    assert decorated_total(100) == sum(len(str(i)) for i in range(100))


def test_wrapper_introspects_like_functools_wraps():
    assert build_rows_in_scope.__wrapped__ is build_rows
    assert build_rows_in_scope.__name__ == "build_rows"
    assert build_rows_in_scope.__doc__ == "Rows for the pickling tests."
    assert build_rows_in_scope.__module__ == __name__
    assert "limit=268435456" in repr(build_rows_in_scope)


def test_wrapper_runs_in_a_spawned_process_pool():
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        rows = pool.submit(build_rows_in_scope, 50).result(timeout=60)
        total = pool.submit(decorated_total, 50).result(timeout=60)
    assert rows[49] == {"i": 49, "s": "49"}
    assert total == sum(len(str(i)) for i in range(50))


def test_a_pool_scope_wrapper_refuses_pickling_with_a_reason():
    with objarena.Pool() as arena_pool:
        job = objarena.scoped(build_rows, pool=arena_pool)
        assert len(job(10)) == 10
        with pytest.raises(TypeError, match="Pool's warm memory belongs to one process"):
            pickle.dumps(job)


def test_decorated_method_binds():
    class Table:
        def __init__(self, n):
            self.n = n

        @objarena.scoped
        def rows(self):
            return build_rows(self.n)

    assert len(Table(7).rows()) == 7


async def _coroutine_job():
    return 1


async def _async_generator_job():
    yield 1


def _generator_job():
    yield 1


@pytest.mark.parametrize(
    "fn, kind",
    [
        (_coroutine_job, "an async def function"),
        (_async_generator_job, "an async generator function"),
        (_generator_job, "a generator function"),
    ],
)
def test_deferred_bodies_are_refused_at_decoration(fn, kind):
    with pytest.raises(TypeError, match=f"it is {kind}, whose body runs after the call returns"):
        objarena.scoped(fn)
    with pytest.raises(TypeError, match="scopes are per thread"):
        objarena.scoped(limit=2**30)(fn)


def test_options_are_checked_at_decoration():
    with pytest.raises(ValueError):
        objarena.scoped(build_rows, chunk_size=3)
    with pytest.raises(TypeError):
        objarena.scoped(build_rows, no_such_option=1)
    with pytest.raises(TypeError, match="needs a callable"):
        objarena.scoped(42)
