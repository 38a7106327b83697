"""Describe a CPython interpreter for the objarena build.

Used by python_configure.bzl (repository rules) and by ./bazelw, so both agree
on the interpreter tag.  Prints `key=value` lines (no JSON: Starlark-friendly).

Tag: cp<major><minor>[t]_<origin>, origin derived from sys.base_prefix so that
a venv gets the tag of its base interpreter and two installs of the same minor
version get different tags:
    /usr/bin/python3                          -> cp311_usr
    /root/.pyenv/versions/3.11.7/bin/python3  -> cp311_pyenv_3_11_7
    .cache/venvs/cp311_usr/bin/python         -> cp311_usr
"""
import os
import re
import sys
import sysconfig


def _sanitize(s):
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def origin(base_prefix):
    base_prefix = os.path.realpath(base_prefix)
    m = re.search(r"/\.pyenv/versions/([^/]+)$", base_prefix)
    if m:
        return "pyenv_" + _sanitize(m.group(1))
    return _sanitize(base_prefix) or "root"


def main():
    v = sysconfig.get_config_var
    gil_disabled = bool(v("Py_GIL_DISABLED"))
    tag = "cp%d%d%s_%s" % (
        sys.version_info[0],
        sys.version_info[1],
        "t" if gil_disabled else "",
        origin(sys.base_prefix),
    )
    libdir = v("LIBDIR") or os.path.join(sys.base_prefix, "lib")
    ldlibrary = v("LDLIBRARY") or ""
    multiarch = v("MULTIARCH") or ""
    # Locate the shared libpython: LIBDIR, LIBDIR/<multiarch>, base_prefix/lib.
    candidates = [libdir]
    if multiarch:
        candidates.append(os.path.join(libdir, multiarch))
        candidates.append(os.path.join(sys.base_prefix, "lib", multiarch))
    candidates.append(os.path.join(sys.base_prefix, "lib"))
    if not v("Py_ENABLE_SHARED") and v("LIBPL"):
        candidates.insert(0, v("LIBPL"))  # static-only build: libpythonX.Y.a
    found_libdir = libdir
    for d in candidates:
        if ldlibrary and os.path.exists(os.path.join(d, ldlibrary)):
            found_libdir = d
            break
    # Library name to pass to -l: LDLIBRARY is e.g. libpython3.11.so or
    # libpython3.11.a (static build) -> python3.11.
    m = re.match(r"lib(.+?)\.(so|a|dylib)", ldlibrary)
    libname = m.group(1) if m else "python%d.%d%s" % (
        sys.version_info[0], sys.version_info[1], v("ABIFLAGS") or "")
    libs = " ".join(x for x in [v("LIBS") or "", v("SYSLIBS") or ""] if x)
    # Keep only -l flags from LIBS/SYSLIBS (drop -L/-Wl,-rpath of build dirs).
    extra = []
    for tok in libs.split():
        if tok.startswith("-l") and tok not in extra:
            extra.append(tok)
    out = {
        "tag": tag,
        "executable": sys.executable,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "major_minor": "%d.%d" % sys.version_info[:2],
        "implementation": sys.implementation.name,
        "include": sysconfig.get_paths()["include"],
        "platinclude": sysconfig.get_paths()["platinclude"],
        "libdir": found_libdir,
        "ldlibrary": ldlibrary,
        "libname": libname,
        "shared": "1" if v("Py_ENABLE_SHARED") else "0",
        "extra_libs": " ".join(extra),
        "ext_suffix": v("EXT_SUFFIX") or ".so",
        "gil_disabled": "1" if gil_disabled else "0",
        "prefix": sys.prefix,
        "base_prefix": os.path.realpath(sys.base_prefix),
    }
    for k, val in out.items():
        print("%s=%s" % (k, val))


if __name__ == "__main__":
    main()
