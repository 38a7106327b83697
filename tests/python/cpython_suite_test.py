"""CPython's own unit tests, every test method inside its own objarena scope.

The library's promise is that nothing breaks: whatever a phase leaves behind
(caches, interned strings, type attribute caches, exceptions, module state)
stays valid, and the next phases allocate around it (adoption). CPython's test
suite is the widest set of such leftovers we can get. A test that fails only
under scopes is a bug of ours; one that fails without scopes too (a sandbox
without network, say) is not, so failures are re-run without scopes and
compared.

Needs the interpreter's `test` package (pyenv builds have it; Debian's python3
does not, and skips).
"""
import json
import sys

import pytest

from conftest import run_child

try:
    import test.test_dict  # noqa: F401

    HAVE_SUITE = True
except ImportError:
    HAVE_SUITE = False

# Varied and quick (~10 s together): containers, the parser and compiler,
# descriptors and classes, exceptions, regexes, json, typing machinery.
STR_TESTS = "test.test_str" if sys.version_info >= (3, 13) else "test.test_unicode"
MODULES = [
    "test.test_dict",
    "test.test_list",
    "test.test_set",
    "test.test_json",
    "test.test_re",
    "test.test_collections",
    "test.test_functools",
    "test.test_descr",
    "test.test_exceptions",
    "test.test_dataclasses",
    "test.test_ast",
    STR_TESTS,
]
# MEM capture puts list/set/dict storage in the arena too: more to outlive a phase.
MEM_MODULES = ["test.test_dict", "test.test_list", "test.test_set", "test.test_collections"]

RUNNER = r"""
import json, sys, unittest
import objarena

scope_kwargs = json.loads(sys.argv[1])
names = sys.argv[2:]
scoped = scope_kwargs is not None


class ScopedResult(unittest.TextTestResult):
    scopes = 0
    open_scopes = []

    def startTest(self, test):
        if scoped:
            scope = objarena.scope(**scope_kwargs)
            scope.__enter__()
            self.open_scopes.append(scope)
            ScopedResult.scopes += 1
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        # (3.12's runner may call stopTest without a startTest, for a class
        # whose setUpClass skipped)
        if self.open_scopes:
            self.open_scopes.pop().__exit__(None, None, None)


suite = unittest.TestSuite()
for name in names:
    suite.addTests(unittest.defaultTestLoader.loadTestsFromName(name))
result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0, resultclass=ScopedResult).run(suite)
info = objarena.info()
print(json.dumps({
    "run": result.testsRun,
    "bad": sorted(t.id() for t, _ in result.failures + result.errors),
    "scopes": ScopedResult.scopes,
    "chunks_adopted_total": info["chunks_adopted_total"],
}))
"""


def run_suite(names, scope_kwargs):
    # No poison: poisoned arenas never adopt, and adoption is what we want
    # exercised here (the hazard tests poison).
    out = run_child(
        RUNNER,
        poison=False,
        timeout=900,
        args=[json.dumps(scope_kwargs)] + list(names),
    )
    out.check()
    return json.loads(out.stdout.strip().splitlines()[-1])


# (A test that skips, not a module that does: run_pytest.sh fails a target
# that collects nothing.)
@pytest.mark.skipif(not HAVE_SUITE, reason="this interpreter has no CPython test suite (Lib/test)")
@pytest.mark.parametrize(
    "modules, scope_kwargs",
    [(MODULES, {}), (MEM_MODULES, {"domains": ["obj", "mem"], "reuse": False})],
    ids=["default", "mem-bump"],
)
def test_cpython_tests_pass_with_every_test_in_its_own_scope(modules, scope_kwargs):
    scoped = run_suite(modules, scope_kwargs)
    assert scoped["run"] > 500
    assert scoped["scopes"] >= scoped["run"] * 0.9
    # Later tests' scopes allocated around earlier tests' leftovers.
    assert scoped["chunks_adopted_total"] > scoped["run"] // 2
    if scoped["bad"]:
        plain = run_suite(scoped["bad"], None)
        assert sorted(set(scoped["bad"]) - set(plain["bad"])) == []
