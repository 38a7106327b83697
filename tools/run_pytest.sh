#!/usr/bin/env bash
# Test runner used by py_matrix_test (tools/build_defs.bzl).
#
#   run_pytest.sh --python /abs/python [--ext-package pkg] [--ext rel/T/[pkg/]mod.so]... \
#                 [--pythonpath rel/dir]... -- [pytest args / test files]
#
# Relative paths are relative to the runfiles root ($PWD in `bazel test`).
# Puts each --ext's directory (the one above --ext-package's, e.g. rel/T for
# rel/T/objarena/_objarena.so with --ext-package objarena) and each --pythonpath on PYTHONPATH and runs
# `python -m pytest -q -p no:cacheprovider ...`.  With OBJARENA_ASAN=1 (set by
# --config=asan) it LD_PRELOADs the ASan/UBSan runtimes into the
# (uninstrumented) interpreter.  pytest exit 5 (nothing collected) fails.
set -uo pipefail

python=""
ext_package=""
exts=()
pypaths=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) python="$2"; shift 2 ;;
    --ext) exts+=("$2"); shift 2 ;;
    --ext-package) ext_package="$2"; shift 2 ;;
    --pythonpath) pypaths+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [[ -z "$python" ]]; then
  echo "run_pytest.sh: --python is required" >&2
  exit 2
fi
if [[ ! -x "$python" ]]; then
  echo "run_pytest.sh: interpreter not found: $python (re-run ./bazelw to set up the venvs)" >&2
  exit 2
fi

root="$PWD"
abs() { case "$1" in /*) echo "$1" ;; *) echo "$root/$1" ;; esac; }

paths=()
for e in "${exts[@]+"${exts[@]}"}"; do
  d="$(dirname "$(abs "$e")")"
  if [[ -n "$ext_package" ]]; then
    if [[ "$d" != */"$ext_package" ]]; then
      echo "run_pytest.sh: --ext $e is not inside a directory $ext_package/" >&2
      exit 2
    fi
    d="${d%/"$ext_package"}"
  fi
  paths+=("$d")
done
for p in "${pypaths[@]+"${pypaths[@]}"}"; do
  paths+=("$(abs "$p")")
done
pp="$(IFS=:; echo "${paths[*]+"${paths[*]}"}")"
export PYTHONPATH="${pp}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPYCACHEPREFIX="${TEST_TMPDIR:-${TMPDIR:-/tmp}}/pycache"
export HOME="${HOME:-${TEST_TMPDIR:-/tmp}}"
unset PYTHONHOME

asan_args=()
if [[ "${OBJARENA_ASAN:-0}" == 1 ]]; then
  preload=()
  for lib in libasan.so libubsan.so; do
    f=""
    # Prefer the exact runtime the extension was linked against.
    for e in "${exts[@]+"${exts[@]}"}"; do
      f="$(ldd "$(abs "$e")" 2>/dev/null | awk -v l="${lib}" 'index($1, l) == 1 { print $3; exit }')"
      [[ -n "$f" ]] && break
    done
    if [[ -z "$f" || ! -e "$f" ]]; then
      f="$("${OBJARENA_CC:-gcc}" -print-file-name="$lib" 2>/dev/null || true)"
    fi
    if [[ -n "$f" && -e "$f" ]]; then
      preload+=("$(readlink -f "$f")")
    fi
  done
  if [[ ${#preload[@]} -eq 0 ]]; then
    echo "run_pytest.sh: OBJARENA_ASAN=1 but no libasan.so found" >&2
    exit 2
  fi
  export LD_PRELOAD="$(IFS=:; echo "${preload[*]}")${LD_PRELOAD:+:$LD_PRELOAD}"
  # CPython itself leaks at exit by design; keep leak checking off here.
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  # Route object allocations through malloc so ASan sees them.
  export PYTHONMALLOC=malloc
  # fd-level capture would swallow the sanitizer report when ASan aborts.
  asan_args=(--capture=sys)
fi

junit=()
if [[ -n "${XML_OUTPUT_FILE:-}" ]]; then
  junit=("--junitxml=${XML_OUTPUT_FILE}")
fi

"$python" -m pytest -q -p no:cacheprovider "${junit[@]+"${junit[@]}"}" \
  "${asan_args[@]+"${asan_args[@]}"}" "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "run_pytest.sh: pytest collected no tests (exit 5) -- treating as failure" >&2
fi
exit $rc
