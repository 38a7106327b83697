"""Every ```python block of README.md and docs/*.md runs as written (issue 23:
the README's and the reference's snippets used undefined names, a data.csv,
and printed megabytes).

Each block runs in a fresh interpreter (conftest's child, with OBJARENA_POISON
on) in a temporary directory. A block that cannot run on its own is marked on
the line before it, with the reason, and is listed as skipped with it:

    <!-- snippet: not run (decorators of a test function; tests/python/test_pytest_plugin.py runs them) -->

Use that sparingly: a reader copies the blocks.
"""
import glob
import os
import re

import pytest

from conftest import run_child

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOT_RUN = re.compile(r"<!--\s*snippet:\s*not run\s*\((.+?)\)\s*-->")
FENCE = re.compile(r"^```python\s*$")


def snippets():
    """(id, code, reason-or-None) for every python block of README.md and docs/*.md."""
    out = []
    for path in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(path) as f:
            lines = f.read().splitlines()
        i = 0
        while i < len(lines):
            if FENCE.match(lines[i]):
                start = i
                j = i + 1
                while j < len(lines) and lines[j].strip() != "```":
                    j += 1
                prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
                m = NOT_RUN.search(prev)
                out.append((f"{os.path.relpath(path, ROOT)}:{start + 1}", "\n".join(lines[start + 1:j]),
                            m.group(1) if m else None))
                i = j
            i += 1
    return out


SNIPPETS = snippets()


def test_there_are_snippets():
    assert any(name.startswith("README.md:") for name, _, _ in SNIPPETS)


@pytest.mark.parametrize("name,code,reason", SNIPPETS, ids=[s[0] for s in SNIPPETS])
def test_snippet_runs(name, code, reason, tmp_path, monkeypatch):
    if reason is not None:
        pytest.skip(f"{name}: marked not run: {reason}")
    # run as a file, as a reader would (process pools re-import __main__ from it)
    (tmp_path / "snippet.py").write_text(code + "\n")
    monkeypatch.chdir(tmp_path)
    res = run_child("import runpy, sys; sys.argv = ['snippet.py']; sys.path.insert(0, '.'); "
                    "runpy.run_path('snippet.py', run_name='__main__')", timeout=300)
    if res.returncode != 0 and "ModuleNotFoundError: No module named 'distributed'" in res.stderr:
        pytest.skip(f"{name} needs distributed (requirements-dev.txt)")
    assert res.returncode == 0, f"{name} failed:\n{code}\n--- stdout\n{res.stdout[-2000:]}\n--- stderr\n{res.stderr[-3000:]}"
    # a snippet prints a line or a few, not megabytes (the old README's escaped() printed ~5 MB)
    assert len(res.stdout) < 20_000, f"{name} printed {len(res.stdout)} characters"
