"""objarena.pytest_plugin run by real pytest (pytester) on a small suite: a
test that leaks, clean tests, a test over a byte budget and strict tests;
outcomes and the summary lines are checked."""
import re

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import pytest

CACHE = []


def test_empty():
    pass


def test_clean():
    rows = [{"id": i, "name": "r%d" % i} for i in range(20000)]
    assert len(rows) == 20000


def test_leaks():
    CACHE.extend({"id": i} for i in range(1000))


@pytest.mark.objarena(limit=2**20)
def test_over_budget():
    rows = [{"id": i, "name": "r%d" % i} for i in range(100000)]


@pytest.mark.objarena(strict=True)
def test_strict_leak():
    CACHE.append(tuple("kept-%d" % i for i in range(50)))


@pytest.mark.objarena(strict=True)
def test_strict_clean():
    assert sum(len(str(i)) for i in range(10000)) > 0
"""


@pytest.fixture
def suite_result(pytester):
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest_subprocess("-p", "objarena.pytest_plugin", "-p", "no:cacheprovider")


def test_outcomes(suite_result):
    suite_result.assert_outcomes(passed=4, failed=2)
    out = suite_result.stdout.str()
    assert re.search(r"FAILED test_suite.py::test_over_budget - MemoryError", out), out
    assert re.search(r"FAILED test_suite.py::test_strict_leak - Failed: objarena strict: \d+ block", out), out


def test_summary_lists_the_leak_and_not_the_clean_tests(suite_result):
    out = suite_result.stdout.str()
    summary = out[out.index("objarena: objects that outlived their test"):]
    leak = re.search(r"test_suite.py::test_leaks: (\d+) block\(s\) live at scope exit; alive after teardown: "
                     r"(\d+) object\(s\), ([\d.]+) KiB \(dict (\d+)", summary)
    assert leak, summary
    # Of the 1000 dicts, those CPython's dict freelist served are not arena blocks.
    assert int(leak.group(1)) >= 900 and int(leak.group(2)) >= 900 and float(leak.group(3)) > 50
    assert 900 <= int(leak.group(4)) <= 1000
    assert "test_suite.py::test_strict_leak:" in summary
    for clean in ("test_empty", "test_clean", "test_strict_clean", "test_over_budget"):
        assert f"test_suite.py::{clean}:" not in summary, summary
    total = re.search(r"objarena: 6 test\(s\) in scopes, 2 leaked; ([\d.]+) (KiB|MiB) released, .* RSS given back; "
                      r"baseline (\d+) block\(s\) per test subtracted", summary)
    assert total, summary


def test_all_option_lists_every_test_with_what_it_gave_back(pytester):
    pytester.makepyfile(test_suite=SUITE)
    out = pytester.runpytest_subprocess("-p", "objarena.pytest_plugin", "-p", "no:cacheprovider", "--objarena-all",
                             "-k", "clean").stdout.str()
    line = re.search(r"test_suite.py::test_clean: \d+ block\(s\) live at scope exit; alive after teardown: 0 object\(s\)"
                     r".*; ([\d.]+) (KiB|MiB) RSS given back", out)
    assert line, out


def test_bad_marker_options_fail_the_test(pytester):
    pytester.makepyfile(test_bad="""
import pytest

@pytest.mark.objarena(chunk_size=3)
def test_bad_chunk():
    pass
""")
    result = pytester.runpytest_subprocess("-p", "objarena.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError*chunk_size*"])
