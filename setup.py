"""Builds objarena for pip: the `objarena` package (pyext/objarena/) with its
C extension `objarena._objarena` (arena/ + pyext/) inside it.

Metadata lives in pyproject.toml. The C flags are Bazel's OBJARENA_COPTS
(tools/build_defs.bzl); keep the two in sync.
"""
import glob
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# tools/build_defs.bzl: OBJARENA_COPTS = ["-std=c11"] + OBJARENA_WARNINGS + ["-O2", "-fvisibility=hidden"]
OBJARENA_COPTS = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O2",
    "-fvisibility=hidden",
]


def _rel_glob(pattern):
    # Paths relative to setup.py (what setuptools wants), sorted for
    # reproducible builds.
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def _sources():
    arena = _rel_glob("arena/*.c")
    if not arena:
        raise RuntimeError("objarena: arena/*.c not found next to setup.py")
    # pyext/*.c: the hook and scopes (the C API); pyext/module/*.c: the
    # Python module over it (pyext/BUILD compiles the same files).
    return arena + _rel_glob("pyext/*.c") + _rel_glob("pyext/module/*.c")


setup(
    packages=["objarena"],
    package_dir={"objarena": "pyext/objarena"},
    package_data={"objarena": ["__init__.pyi", "py.typed"]},
    include_package_data=False,
    ext_modules=[
        Extension(
            "objarena._objarena",
            sources=_sources(),
            depends=_rel_glob("arena/*.h") + _rel_glob("pyext/*.h") + _rel_glob("pyext/module/*.h"),
            include_dirs=["."],
            extra_compile_args=OBJARENA_COPTS,
            extra_link_args=["-lpthread"],  # //arena linkopts
        )
    ],
    zip_safe=False,
    # pip builds in the source tree, where build/ may hold objects compiled
    # with other flags (a sanitizer build, another checkout's state):
    # setuptools would link them as "up to date". Always compile afresh.
    options={"build_ext": {"force": True}},
)
