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

Modes (docs/cpython-suite.md has the figures):
- CI (default): MODULES with every test in its own scope, POISON_MODULES again
  with poison on, MEM_MODULES with the MEM domain captured in bump mode.
- Long: OBJARENA_CPYTHON_SUITE=long runs LONG_MODULES (every module the
  hardening issue names, test_asyncio included) with poison off and on.
- Whole suite: `python cpython_suite_test.py --all [--poison] [--jobs N]
  [--timeout S] [--markdown FILE]` (objarena importable) runs every module of
  Lib/test, one child per module, re-runs each failing module without scopes
  and prints, per module, the tests run, passed, and the failures seen only
  with scopes.
"""
import json
import os
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
# The quick half of the modules the hardening issue added (~20 s together on
# 3.11 with scopes, on a busy 2-core machine): numbers, bytes, tuples,
# generators, classes, the gc, csv, enum and typing machinery.
MODULES += [
    "test.test_bytes",
    "test.test_float",
    "test.test_long",
    "test.test_tuple",
    "test.test_gc",
    "test.test_generators",
    "test.test_class",
    "test.test_csv",
    "test.test_enum",
    "test.test_typing",
]
# Again with poison on (released memory PROT_NONE, no adoption): a quick set
# of containers, numbers and class machinery (~10 s).
POISON_MODULES = [
    "test.test_dict",
    "test.test_list",
    "test.test_set",
    "test.test_float",
    "test.test_tuple",
    "test.test_generators",
    "test.test_class",
    "test.test_enum",
    "test.test_typing",
    "test.test_descr",
]
# The slow half (over a minute together; test_asyncio alone runs for many
# minutes without scopes): only in the long mode, with everything above.
SLOW_MODULES = [
    "test.test_compile",
    "test.test_itertools",
    "test.test_pickle",
    "test.test_weakref",
    "test.test_threading",
    "test.test_tracemalloc",
    "test.test_decimal",
    "test.test_asyncio",
]
LONG_MODULES = MODULES + SLOW_MODULES
LONG = os.environ.get("OBJARENA_CPYTHON_SUITE") == "long"
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
skipped_modules = []
for name in names:
    try:
        suite.addTests(unittest.defaultTestLoader.loadTestsFromName(name))
    except unittest.SkipTest:  # (a module that skips itself at import: no dbm.gnu, say)
        skipped_modules.append(name)
result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0, resultclass=ScopedResult).run(suite)
info = objarena.info()
print(json.dumps({
    "run": result.testsRun,
    "bad": sorted(t.id() for t, _ in result.failures + result.errors),
    "scopes": ScopedResult.scopes,
    "chunks_adopted_total": info["chunks_adopted_total"],
    "quarantined_bytes": info["quarantined_bytes"],
    "skipped_modules": skipped_modules,
}))
"""


def run_suite(names, scope_kwargs, timeout=900):
    # Poison only through scope_kwargs: poisoned arenas never adopt, and
    # adoption is what the unpoisoned runs exercise.
    out = run_child(
        RUNNER,
        poison=False,
        timeout=timeout,
        args=[json.dumps(scope_kwargs)] + list(names),
    )
    out.check()
    return json.loads(out.stdout.strip().splitlines()[-1])


CASES = [
    (LONG_MODULES if LONG else MODULES, {}),
    (LONG_MODULES if LONG else POISON_MODULES, {"poison": True}),
    (MEM_MODULES, {"domains": ["obj", "mem"], "reuse": False}),
]


# (A test that skips, not a module that does: run_pytest.sh fails a target
# that collects nothing.)
@pytest.mark.skipif(not HAVE_SUITE, reason="this interpreter has no CPython test suite (Lib/test)")
@pytest.mark.parametrize("modules, scope_kwargs", CASES, ids=["default", "poison", "mem-bump"])
def test_cpython_tests_pass_with_every_test_in_its_own_scope(modules, scope_kwargs):
    scoped = run_suite(modules, scope_kwargs, timeout=3600 if LONG else 900)
    assert scoped["run"] > 500
    assert scoped["scopes"] >= scoped["run"] * 0.9
    if not scope_kwargs.get("poison"):
        # Later tests' scopes allocated around earlier tests' leftovers.
        assert scoped["chunks_adopted_total"] > scoped["run"] // 2
    else:
        assert scoped["quarantined_bytes"] > 0
    if scoped["bad"]:
        # A subtest's id ("test_x [case]", "test_x (k=1)") cannot be selected
        # by name: rerun its test, whose plain run reports the same subtest ids
        # (3.15 from newer-pythons: test_ast's test_stdlib_validates fails its
        # [sitecustomize.py] subtest plainly too, a dangling Debian symlink).
        plain = run_suite(sorted({bad.split(" ")[0] for bad in scoped["bad"]}), None)
        assert sorted(set(scoped["bad"]) - set(plain["bad"])) == []


# ---- the whole suite (by hand: --all) ----


def all_modules():
    """Every test module of the interpreter's Lib/test, as regrtest finds them."""
    import test

    names = []
    for entry in sorted(os.listdir(os.path.dirname(test.__file__))):
        base, ext = os.path.splitext(entry)
        if not base.startswith("test_"):
            continue
        path = os.path.join(os.path.dirname(test.__file__), entry)
        if ext == ".py" or (not ext and os.path.isfile(os.path.join(path, "__init__.py"))):
            names.append("test." + base)
    return names


def run_module(name, scope_kwargs, timeout):
    """One module in a child: its result dict, or {"error": ...} if the child
    crashed, hung or printed no result."""
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, json.dumps(scope_kwargs), name],
            capture_output=True, text=True, env=env, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": f"exit status {proc.returncode}: {proc.stderr.strip()[-300:]!r}"}


def compare_module(name, scope_kwargs, timeout):
    scoped = run_module(name, scope_kwargs, timeout)
    row = {"module": name, "scoped": scoped, "plain": None, "only_scoped": []}
    if "error" in scoped or scoped["bad"]:
        plain = run_module(name, None, timeout)
        row["plain"] = plain
        if "error" in scoped:
            row["only_scoped"] = [] if "error" in plain else [scoped["error"]]
        else:
            plain_bad = set(plain.get("bad", [])) if "error" not in plain else set()
            row["only_scoped"] = sorted(set(scoped["bad"]) - plain_bad) if "error" not in plain else []
    return row


def cell(result):
    if result is None:
        return ""
    if "error" in result:
        return " ".join(result["error"].replace("|", "/").split())[:80]
    if result.get("skipped_modules"):
        return "module skipped itself"
    return f"{result['run']} run, {result['run'] - len(result['bad'])} passed"


def main(argv):
    import argparse
    from concurrent.futures import ThreadPoolExecutor

    parser = argparse.ArgumentParser(description="CPython's test suite, every test in its own objarena scope")
    parser.add_argument("--all", action="store_true", help="every module of Lib/test (else the long list)")
    parser.add_argument("--poison", action="store_true", help="scopes with poison=True")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per module and run")
    parser.add_argument("--markdown", help="write the table here too")
    parser.add_argument("modules", nargs="*", help="modules to run instead")
    args = parser.parse_args(argv)
    names = args.modules or (all_modules() if args.all else LONG_MODULES)
    kwargs = {"poison": True} if args.poison else {}
    header = [
        f"Python {sys.version.split()[0]}, scopes {json.dumps(kwargs)}, {len(names)} modules",
        "",
        "| module | with scopes | without scopes (failing modules only) | failures only with scopes |",
        "|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(lambda n: compare_module(n, kwargs, args.timeout), names):
            rows.append(row)
            line = f"| {row['module']} | {cell(row['scoped'])} | {cell(row['plain'])} | {', '.join(row['only_scoped'])} |"
            print(line, flush=True)
    ran = [r for r in rows if "error" not in r["scoped"]]
    summary = (
        f"\n{len(rows)} modules; {sum(r['scoped']['run'] for r in ran)} tests run with scopes, "
        f"{sum(r['scoped']['run'] - len(r['scoped']['bad']) for r in ran)} passed; "
        f"{sum(1 for r in rows if r['only_scoped'])} modules with failures only under scopes"
    )
    print(summary)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(header) + "\n")
            for row in rows:
                f.write(f"| {row['module']} | {cell(row['scoped'])} | {cell(row['plain'])} | {', '.join(row['only_scoped'])} |\n")
            f.write(summary + "\n")
    return 1 if any(r["only_scoped"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
