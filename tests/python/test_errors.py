"""Bad input and misuse get clear errors (issue 11, section 4)."""
import asyncio
import gc

import objarena
import pytest


def test_domains_takes_one_name_as_a_string_and_refuses_duplicates():
    assert objarena.scope(domains="obj").domains == ("obj",)
    assert objarena.scope(domains=["obj", "mem"]).domains == ("obj", "mem")
    with pytest.raises(ValueError, match="named twice"):
        objarena.scope(domains=["obj", "obj"])
    with pytest.raises(ValueError, match="include"):
        objarena.scope(domains="mem")
    with pytest.raises(ValueError, match="unknown domain"):
        objarena.scope(domains="raw")


def test_pool_scope_refuses_another_pool():
    with objarena.Pool() as pool, objarena.Pool() as other:
        with pytest.raises(TypeError, match="takes no pool="):
            pool.scope(pool=other)
        with pool.scope(limit=2**24) as phase:
            data = [str(i) for i in range(100)]
        assert phase.stats["exited"] and len(data) == 100


@pytest.mark.parametrize("value, reserved_mib", [("4G", 4096), ("2GiB", 2048), ("1073741824", 1024),
                                                 ("1048576K", 1024)])
def test_reserve_bytes_take_units(child, value, reserved_mib):
    result = child("""
import objarena
with objarena.scope():
    pass
print("DONE", objarena.info()["reserve_bytes"] >> 20)
""", env={"OBJARENA_RESERVE_BYTES": value}).check()
    assert f"DONE {reserved_mib}" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("value, message", [("300M", "at least 1 GiB"), ("12X", "expected bytes"),
                                            ("-5", "expected bytes"), ("4G5", "expected bytes")])
def test_reserve_bytes_that_cannot_be_used_are_an_error_not_a_silent_default(child, value, message):
    result = child(f"""
import objarena
try:
    with objarena.scope():
        pass
except ValueError as e:
    print("DONE", e)
""", env={"OBJARENA_RESERVE_BYTES": value}).check()
    assert "DONE OBJARENA_RESERVE_BYTES=" in result.stdout and message in result.stdout, result.stdout


def test_escape_error_names_untracked_survivors():
    # Dicts of atomic values are not tracked by the gc; the list holding them is.
    holder = []
    with pytest.raises(objarena.EscapeError) as info:
        with objarena.scope(strict=True):
            holder.append([{"n": i} for i in range(200)])
            for d in holder[-1]:
                gc.collect(0)  # lets the gc untrack them
                break
    err = info.value
    assert err.blocks >= 100
    assert any(t is dict for t in err.types), err.types
    assert "dict:" in str(err), str(err)
    found = sum(err.types.values())
    assert found >= 100, (found, str(err))


def test_a_scope_held_across_an_await_says_scopes_are_per_thread():
    async def task(n):
        with objarena.scope():
            await asyncio.sleep(0.01 * n)
            return n

    async def main():
        return await asyncio.gather(task(1), task(2), return_exceptions=True)

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors, results
    assert all(isinstance(e, RuntimeError) for e in errors)
    assert any("per thread, not per task" in str(e) and "run_in_executor" in str(e) for e in errors), errors
    assert objarena.info()["scope_depth"] == 0
