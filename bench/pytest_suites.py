"""The objarena pytest plugin on third-party test suites: time and reports.

    python bench/pytest_suites.py --python /work/venvs/311/bin/python --python /work/venvs/313/bin/python
    python bench/pytest_suites.py --suites regex,msgpack --runs 3

For each interpreter the command makes a venv under --workdir (kept between
runs), installs pytest, objarena from this checkout and the pinned packages
below, and takes each project's own tests from its source distribution
(pyparsing, regex, msgpack) or its installed package (networkx). Then it runs
every suite plain (`-p no:objarena`) and with `--objarena`, alternating the
two --runs times, and prints per suite: the min-of-N wall time of each, their
ratio, the outcomes of both runs (they must match) and the share of tests the
plugin reported as leaking. Side by side in one run: the machine's load
applies to both (the load average is printed).

Issue 25's targets: ratio <= 1.3 and <= 5% of tests reported on every suite.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

PINS = {
    "pyparsing": "pyparsing==3.2.5",
    "regex": "regex==2026.9.29",
    "msgpack": "msgpack==1.1.2",
    "networkx": "networkx==3.6.1",
}
# What each suite runs, relative to its directory under the workdir.
SUITES = {
    # tests/ and examples/ from the sdist; test_diagram needs railroad-diagrams
    # and test_matplotlib_cases matplotlib's mathtext grammar: left out.
    "pyparsing": ["tests", "--ignore=tests/test_diagram.py", "--ignore=tests/test_matplotlib_cases.py"],
    # test_main runs unittest.main(), which parses pytest's argv: left out.
    "regex": ["test_regex.py", "--deselect=test_regex.py::test_main"],
    "msgpack": ["test"],
    # The installed package's own tests, a subset the size of the others:
    # graph classes and shortest paths (what examples/graph_batches.py uses).
    "networkx": ["--pyargs", "networkx.classes", "networkx.algorithms.shortest_paths"],
}


def sh(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def setup_venv(python, workdir):
    tag = subprocess.run([python, "-c", "import sys; print('%d%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    venv = os.path.join(workdir, f"venv{tag}")
    vpy = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, "objarena-suites.txt")
    want = " ".join(sorted(PINS.values()))
    pip = [vpy, "-m", "pip"]
    if not os.path.exists(os.path.join(venv, "bin", "pip")) and os.path.exists(vpy):
        pip = [python, "-m", "pip", "--python", vpy]  # made --without-pip (below)
    if not (os.path.exists(stamp) and open(stamp).read() == want):
        try:
            sh([python, "-m", "venv", "--clear", venv])
        except subprocess.CalledProcessError:
            # An interpreter without ensurepip (a source build): the venv
            # gets no pip of its own; the given interpreter's pip installs
            # into it (pip >= 22.3).
            sh([python, "-m", "venv", "--clear", "--without-pip", venv])
            pip = [python, "-m", "pip", "--python", vpy]
        sh([*pip, "install", "-q", "pytest", *PINS.values()])
        with open(stamp, "w") as f:
            f.write(want)
    # objarena from this checkout, every time (the plugin is what is measured),
    # built from a copy: pip builds in the source tree, and two interpreters'
    # builds (or a developer's) in one tree collide in build/.
    src = os.path.join(workdir, f"objarena-src{tag}")
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "bazel-*", "__pycache__"))
    sh([*pip, "install", "-q", "--no-deps", "--force-reinstall", src])
    return tag, vpy, pip


def setup_sources(pip, workdir):
    """Each project's test files from its sdist, in a directory of their own
    (not next to the project's source, which would shadow the installed
    package)."""
    src = os.path.join(workdir, "sdists")
    os.makedirs(src, exist_ok=True)
    for name in ("pyparsing", "regex", "msgpack"):
        dest = os.path.join(workdir, "suites", name)
        if os.path.isdir(dest):
            continue
        pin = PINS[name]
        version = pin.split("==")[1]
        tgz = os.path.join(src, f"{name}-{version}.tar.gz")
        if not os.path.exists(tgz):
            sh([*pip, "download", "-q", "--no-deps", "--no-binary", ":all:", pin, "-d", src])
        top = f"{name}-{version}"
        with tarfile.open(tgz) as tar:
            tar.extractall(src, filter="data") if sys.version_info >= (3, 12) else tar.extractall(src)
        os.makedirs(dest)
        if name == "pyparsing":
            shutil.copytree(os.path.join(src, top, "tests"), os.path.join(dest, "tests"))
            shutil.copytree(os.path.join(src, top, "examples"), os.path.join(dest, "examples"))
        elif name == "regex":
            shutil.copy(os.path.join(src, top, "regex", "tests", "test_regex.py"), dest)
        else:
            shutil.copytree(os.path.join(src, top, "test"), os.path.join(dest, "test"))
    os.makedirs(os.path.join(workdir, "suites", "networkx"), exist_ok=True)


SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed|error|skipped).*?) in ([\d.]+)s", re.M)
REPORTED = re.compile(r"objarena: (\d+) test\(s\) in scopes, (\d+) reported")


def run_suite(vpy, workdir, name, plugin, extra):
    cwd = os.path.join(workdir, "suites", name)
    args = [vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES[name], *extra]
    args += ["--objarena"] if plugin else ["-p", "no:objarena"]
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = proc.stdout
    m = SUMMARY.findall(out)
    outcome = m[-1][0] if m else f"exit {proc.returncode}"
    rep = REPORTED.search(out)
    if plugin and rep is None:
        tail = "\n".join(out.splitlines()[-30:])
        raise SystemExit(f"{name}: no objarena summary in the plugin run:\n{tail}\n{proc.stderr[-2000:]}")
    return wall, outcome, (int(rep.group(1)), int(rep.group(2))) if rep else None, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", help="interpreter(s) to run under (default: this one)")
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--runs", type=int, default=2, help="alternating runs of each variant (min is kept)")
    ap.add_argument("--workdir", default=os.environ.get("OBJARENA_SUITES_DIR", "/tmp/objarena-suites"))
    ap.add_argument("--keep-output", action="store_true", help="write each run's output under the workdir")
    ap.add_argument("--setup-only", action="store_true", help="make the venvs and suites, run nothing")
    ap.add_argument("pytest_args", nargs="*", help="passed to every run (after --)")
    ns = ap.parse_args()
    os.makedirs(ns.workdir, exist_ok=True)
    rows = []
    for python in ns.python or [sys.executable]:
        tag, vpy, pip = setup_venv(python, ns.workdir)
        setup_sources(pip, ns.workdir)
        if ns.setup_only:
            continue
        for name in ns.suites.split(","):
            best = {False: None, True: None}
            outcomes = {}
            reported = None
            for i in range(ns.runs):
                for plugin in (False, True) if i % 2 == 0 else (True, False):
                    wall, outcome, rep, out = run_suite(vpy, ns.workdir, name, plugin, ns.pytest_args)
                    best[plugin] = wall if best[plugin] is None else min(best[plugin], wall)
                    outcomes[plugin] = outcome
                    if rep:
                        reported = rep
                    if ns.keep_output:
                        with open(os.path.join(ns.workdir, f"{name}-{tag}-{'plugin' if plugin else 'plain'}-{i}.txt"), "w") as f:
                            f.write(out)
                    print(f"  {tag} {name} {'plugin' if plugin else 'plain '} {wall:7.2f}s  {outcome}", flush=True)
            rows.append((tag, name, best[False], best[True], outcomes[False], outcomes[True], reported))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); min of {ns.runs} runs")
    print(f"{'py':>4} {'suite':10} {'plain s':>8} {'plugin s':>9} {'ratio':>6} {'reported':>14}  outcomes (plain | plugin)")
    for tag, name, plain, plug, o0, o1, rep in rows:
        shown = f"{rep[1]}/{rep[0]} ({100 * rep[1] / max(rep[0], 1):.1f}%)" if rep else "-"
        same = "" if re.sub(r" in .*", "", o0) == re.sub(r" in .*", "", o1) else "  OUTCOMES DIFFER"
        print(f"{tag:>4} {name:10} {plain:8.2f} {plug:9.2f} {plug / plain:5.2f}x {shown:>14}  {o0} | {o1}{same}")


if __name__ == "__main__":
    main()
