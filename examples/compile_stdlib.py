"""Compiler-style work: `ast.parse` + `compile` every module of a standard
library package, one scope per package. The trees and code objects of a
package die with its scope; what a package keeps (names the compiler interns,
for one) is retained and reported.

    python examples/compile_stdlib.py              # a slice: 6 packages
    python examples/compile_stdlib.py --all        # every module of the installed stdlib (but test/, idlelib/...)
    python examples/compile_stdlib.py --packages json,email

Files are read inside the scope (reading is part of the job).
"""
import argparse
import ast
import json
import os
import sys
import sysconfig

import objarena

STDLIB = sysconfig.get_paths()["stdlib"]
# The default slice: packages present on every supported CPython (3.10-3.13), mid-sized.
SLICE = ["json", "email", "http", "logging", "concurrent", "xml"]
SKIP = {"test", "idlelib", "lib2to3", "site-packages", "tkinter", "turtledemo", "ensurepip"}


TOP_LEVEL = "(top level)"  # the modules outside any package (os.py, re/...), as one more "package"


def all_packages():
    return [TOP_LEVEL] + sorted(d for d in os.listdir(STDLIB)
                                if d not in SKIP and os.path.isfile(os.path.join(STDLIB, d, "__init__.py")))


def package_files(package):
    """Every .py file of one stdlib package (tests included if it ships them)."""
    if package == TOP_LEVEL:
        return sorted(os.path.join(STDLIB, n) for n in os.listdir(STDLIB) if n.endswith(".py"))
    files = []
    for root, dirs, names in os.walk(os.path.join(STDLIB, package)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
    return files


def make_batches(packages=None):
    """One (package name, file paths) pair per package."""
    return [(p, package_files(p)) for p in (packages or SLICE)]


def job(batch):
    """Parse and compile one package; return counts (plain data)."""
    package, paths = batch
    nodes = lines = code_bytes = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        tree = ast.parse(source, path)
        nodes += sum(1 for _ in ast.walk(tree))
        code = compile(tree, path, "exec")
        code_bytes += len(code.co_code)
        lines += source.count("\n")
    return {"package": package, "files": len(paths), "lines": lines, "nodes": nodes, "code_bytes": code_bytes}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="every module of the installed stdlib, by package")
    ap.add_argument("--packages", help="comma-separated package names (default: %s)" % ",".join(SLICE))
    ap.add_argument("--json", help="also write each package's counts and scope stats here")
    args = ap.parse_args(argv)
    packages = all_packages() if args.all else (args.packages.split(",") if args.packages else SLICE)

    job(("warm-up", [os.path.join(STDLIB, "keyword.py")]))  # lazily created interpreter state, outside scopes
    print(f"{'package':14s} {'files':>5s} {'lines':>7s} {'AST nodes':>9s}  {'released':>8s} {'chunks kept':>11s} "
          f"{'live blocks':>11s}")
    results = []
    for batch in make_batches(packages):
        with objarena.scope() as phase:
            r = job(batch)
            with objarena.paused():  # the printed line is not the phase's memory
                line = f"{r['package']:14s} {r['files']:5d} {r['lines']:7d} {r['nodes']:9d}"
                counts = json.dumps(r)
            del r  # keep nothing from the phase but the printed line
        st = phase.stats
        mapped = st["bytes_released"] + st["bytes_retained"]
        print(f"{line}  {st['bytes_released'] / mapped if mapped else 1:8.1%} {st['chunks_retained']:11d} "
              f"{st['live_blocks_at_exit']:11d}")
        results.append(dict(json.loads(counts), stats=dict(st)))
    print("released: share of the scope's chunk bytes unmapped at exit; chunks kept: chunks that hold a "
          "survivor (their free pages go back to the OS)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
