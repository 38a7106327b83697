"""A pytest plugin that runs every unittest case once more, with no arena:
what re-running a suite's tests costs by itself (docs/benchmarks.md, the
pytest plugin's third round). Used to tell the cost of the objarena
plugin's repeats from the cost of running the tests again.

    PYTHONPATH=bench python -m pytest -p no:objarena -p pytest_rerun tests/test_unit.py

Cases named in OBJARENA_RERUN_SKIP (substrings, comma-separated; default
"NestedExpressionRandom", the tests whose later slowdown is measured) are
not run again. The summary line says how many ran again and their time.
"""
import os
import time
import unittest

import pytest

_SKIP = [s for s in os.environ.get("OBJARENA_RERUN_SKIP", "NestedExpressionRandom").split(",") if s]
_SPENT = [0.0, 0]


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    result = yield
    from _pytest.unittest import TestCaseFunction

    if isinstance(item, TestCaseFunction) and not any(s in item.name for s in _SKIP):
        t0 = time.perf_counter()
        item._testcase.run(unittest.TestResult())  # setUp, the method, tearDown, once more
        _SPENT[0] += time.perf_counter() - t0
        _SPENT[1] += 1
    return result


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"pytest_rerun: {_SPENT[1]} test(s) run again, {_SPENT[0]:.2f} s")
