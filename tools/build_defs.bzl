"""objarena build macros.

    load("//tools:build_defs.bzl", "OBJARENA_COPTS", "py_extension_matrix",
         "py_matrix_test", "cc_embed_test_matrix", "objarena_cc_test")

The Python matrix (@pythons//:defs.bzl, PYTHONS) comes from OBJARENA_PYTHONS,
which ./bazelw sets to one venv per installed CPython 3.10-3.15.  Each entry
has .tag (e.g. "cp311_usr", "cp311_pyenv_3_11_7"), .bin, .version,
.ext_suffix, .gil_disabled.
"""

load("@pythons//:defs.bzl", "PYTHONS")

OBJARENA_WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]

# C code of the project (the global --conlyopt=-std=c11 is repeated here so
# the flags are right even without .bazelrc).
OBJARENA_COPTS = ["-std=c11"] + OBJARENA_WARNINGS + [
    "-O2",
    "-fvisibility=hidden",
]

# C++ (GoogleTest) tests.
OBJARENA_CXX_COPTS = ["-std=c++17"] + OBJARENA_WARNINGS + ["-O2"]

GTEST_MAIN = "@com_google_googletest//:gtest_main"

def python_tags():
    """The interpreter tags of the matrix, e.g. ["cp310_pyenv_3_10_13", ...]."""
    return [p.tag for p in PYTHONS]

def _ext_label(ext, tag):
    """":foo" / "//pkg:foo" / "//pkg" (-> //pkg:pkg) -> per-interpreter filegroup."""
    if ":" not in ext:
        ext = ext + ":" + ext.rsplit("/", 1)[-1]
    return "%s_%s" % (ext, tag)

def py_extension_matrix(
        name,
        srcs,
        hdrs = [],
        deps = [],
        copts = [],
        defines = [],
        linkopts = [],
        tags = [],
        testonly = None,
        visibility = None,
        package = ""):
    """Builds CPython extension module `name` (PyInit_<name>) per interpreter.

    For each interpreter tag T in PYTHONS:
      :T/<package>/<name><ext_suffix>  cc_binary(linkshared) ->
                             bazel-bin/<pkg>/T/<package>/<name><ext_suffix>
                             (bazel-bin/<pkg>/T is what goes on PYTHONPATH;
                             with package = "objarena" the module imports as
                             objarena._objarena)
      :<name>_T              filegroup with just that .so
    and :<name>, a filegroup with all of them.

    srcs/hdrs are compiled once per interpreter against its headers
    (@pythons//:T_headers); deps must not include Python.h (they are built
    once), e.g. //arena.  libpython is not linked (symbols come from the
    interpreter).
    """
    all_sos = []
    for p in PYTHONS:
        so = "%s/%s%s%s" % (p.tag, package + "/" if package else "", name, p.ext_suffix)
        native.cc_binary(
            name = so,
            srcs = srcs + hdrs,
            deps = deps + ["@pythons//:%s_headers" % p.tag],
            copts = OBJARENA_COPTS + copts,
            defines = defines,
            linkopts = linkopts,
            linkshared = 1,
            linkstatic = 1,
            tags = tags + ["python_" + p.tag],
            testonly = testonly,
            visibility = ["//visibility:private"],
        )
        native.filegroup(
            name = "%s_%s" % (name, p.tag),
            srcs = [":" + so],
            tags = tags,
            testonly = testonly,
            visibility = visibility,
        )
        all_sos.append(":" + so)
    native.filegroup(
        name = name,
        srcs = all_sos,
        tags = tags,
        testonly = testonly,
        visibility = visibility,
    )

def py_matrix_test(
        name,
        srcs,
        ext,
        data = [],
        args = [],
        imports = [],
        size = "medium",
        timeout = None,
        tags = [],
        flaky = None,
        shard_count = None,
        visibility = None,
        ext_package = ""):
    """Runs pytest on `srcs` once per interpreter.

    Creates :<name>_<T> (sh_test running tools/run_pytest.sh:
    `<T's python> -m pytest <srcs> -q -p no:cacheprovider <args>`) for every
    tag T, tagged python_<T> and python_minor_<major.minor> (e.g.
    python_minor_3.14: .ci/run filters the sanitizer run with it), and
    test_suite :<name> with all of them.

    ext:     label (or list of labels) of py_extension_matrix target(s), e.g.
             "//pyext:objarena"; T's build of each goes on PYTHONPATH.
    ext_package: the Python package the extensions were built into
             (py_extension_matrix's `package`, e.g. "objarena"): the
             directory above it goes on PYTHONPATH.
    imports: extra PYTHONPATH dirs, relative to this package ("." = package
             dir); their .py files must be in `data`.
    args:    extra pytest arguments (after the test files).
    pytest exit 5 (no tests collected) is a failure.
    """
    exts = [ext] if type(ext) == type("") else ext
    pkg = native.package_name()
    tests = []
    for p in PYTHONS:
        ext_targets = [_ext_label(e, p.tag) for e in exts]
        runner_args = ["--python", p.bin]
        if ext_package:
            runner_args += ["--ext-package", ext_package]
        for e in ext_targets:
            runner_args += ["--ext", "$(rootpath %s)" % e]
        for imp in imports:
            d = pkg if imp in (".", "") else (pkg + "/" + imp if pkg else imp)
            runner_args += ["--pythonpath", d or "."]
        runner_args.append("--")
        runner_args += ["$(rootpath %s)" % s for s in srcs]
        tname = "%s_%s" % (name, p.tag)
        native.sh_test(
            name = tname,
            srcs = ["//tools:run_pytest.sh"],
            args = runner_args + args,
            data = srcs + data + ext_targets,
            size = size,
            timeout = timeout,
            tags = tags + ["python_" + p.tag, "python_minor_" + p.major_minor],
            flaky = flaky,
            shard_count = shard_count,
            visibility = visibility,
        )
        tests.append(":" + tname)
    native.test_suite(
        name = name,
        tests = tests,
        tags = tags,
        visibility = visibility,
    )

# Interpreters whose libpython a program of this machine's toolchain cannot
# link: ../shared/tools/newer-pythons installs 3.14 and 3.15 from Debian
# unstable, on a newer glibc that only their own interpreter binary is
# pointed at (an extension loaded by that interpreter works; an embedding
# program linked against libpython3.1X.so does not load). Their embedding
# tests are replaced by a test that prints why and passes; the extension,
# pytest suites and the CPython suite run on them as on the others.
EMBED_UNSUPPORTED = {
    "3.14": "libpython3.14 from newer-pythons needs a newer glibc than this toolchain links against",
    "3.15": "libpython3.15 from newer-pythons needs a newer glibc than this toolchain links against",
}

def _embed_skip_test(tname, p, size, tags, visibility):
    native.genrule(
        name = tname + "_skip_sh",
        outs = [tname + "_skip.sh"],
        cmd = "printf '%%s\\n' '#!/bin/sh' 'echo \"SKIPPED %s (%s %s): %s\"' > $@" % (
            tname,
            p.tag,
            p.version,
            EMBED_UNSUPPORTED[p.major_minor],
        ),
        testonly = 1,
        visibility = ["//visibility:private"],
    )
    native.sh_test(
        name = tname,
        srcs = [":" + tname + "_skip.sh"],
        size = size,
        tags = tags + ["python_" + p.tag, "python_minor_" + p.major_minor, "embed_skipped"],
        visibility = visibility,
    )

def cc_embed_test_matrix(
        name,
        srcs,
        deps = [],
        lib_srcs = [],
        lib_hdrs = [],
        lib_copts = [],
        copts = [],
        defines = [],
        linkopts = [],
        data = [],
        args = [],
        size = "small",
        timeout = None,
        tags = [],
        visibility = None):
    """GoogleTest tests that embed CPython, once per interpreter.

    For every tag T: cc_test :<name>_<T> = srcs (C++17, gtest_main) linked
    with @pythons//:T_embed (libpython of T, rpath set) + deps; and a
    test_suite :<name>.

    lib_srcs/lib_hdrs: C sources that include Python.h; they are compiled per
    interpreter into cc_library :<name>_<T>_lib (OBJARENA_COPTS + lib_copts)
    against T's headers.  deps: Python-independent libraries (e.g. //arena).
    The embed library defines OBJARENA_PYTHON_EXECUTABLE (T's python path, a
    string literal) and OBJARENA_PYTHON_TAG; set PyConfig.program_name to
    OBJARENA_PYTHON_EXECUTABLE before Py_InitializeFromConfig to get T's
    sys.prefix/site-packages (plain Py_Initialize() also works).
    """
    tests = []
    for p in PYTHONS:
        tname = "%s_%s" % (name, p.tag)
        if p.major_minor in EMBED_UNSUPPORTED:
            _embed_skip_test(tname, p, size, tags, visibility)
            tests.append(":" + tname)
            continue
        embed = "@pythons//:%s_embed" % p.tag
        test_deps = []
        if lib_srcs or lib_hdrs:
            native.cc_library(
                name = tname + "_lib",
                srcs = lib_srcs,
                hdrs = lib_hdrs,
                copts = OBJARENA_COPTS + lib_copts,
                defines = defines,
                deps = deps + [embed],
                testonly = 1,
                tags = tags,
                visibility = ["//visibility:private"],
            )
            test_deps.append(":" + tname + "_lib")
        native.cc_test(
            name = tname,
            srcs = srcs,
            copts = OBJARENA_CXX_COPTS + copts,
            defines = defines,
            linkopts = linkopts,
            deps = test_deps + deps + [embed, GTEST_MAIN],
            linkstatic = 1,
            data = data,
            args = args,
            size = size,
            timeout = timeout,
            tags = tags + ["python_" + p.tag, "python_minor_" + p.major_minor],
            visibility = visibility,
        )
        tests.append(":" + tname)
    native.test_suite(
        name = name,
        tests = tests,
        tags = tags,
        visibility = visibility,
    )

def objarena_cc_test(name, srcs, deps = [], copts = [], linkstatic = 1, **kwargs):
    """Plain GoogleTest cc_test (no Python) with the project's C++ flags.

    linkstatic=1 matters: OBJARENA_COPTS has -fvisibility=hidden, so deps
    linked as shared libraries (cc_test's default) would hide their symbols.
    """
    native.cc_test(
        name = name,
        srcs = srcs,
        copts = OBJARENA_CXX_COPTS + copts,
        deps = deps + [GTEST_MAIN],
        linkstatic = linkstatic,
        **kwargs
    )
