#!/usr/bin/env bash
# Builds and runs objarena's libFuzzer targets (tests/fuzz/).
#
#   tools/fuzz [--time SECONDS] [--out DIR] [--build-only] [--merge] [--python PYTHON] [TARGET] [-- LIBFUZZER_ARGS...]
#
# TARGET: arena (the default; tests/fuzz/arena_fuzzer.cc against arena/*.c)
# or hook (tests/fuzz/hook_fuzzer.cc against pyext/*.c, the C API without the module in pyext/module/, and
# arena/*.c, embedding the CPython PYTHON: default
# $OBJARENA_FUZZ_PYTHON, else python3 on PATH; it needs its shared libpython,
# linked uninstrumented, and its headers).
# Builds with Debian's clang (clang-14; installed through tools/apt_install.sh
# when missing and running as root) with -fsanitize=fuzzer,address,undefined
# and ARENA_DEBUG=2 (the library's internal assertions on), into DIR
# (default: $TEST_TMPDIR or /tmp/objarena-fuzz). Then runs it for SECONDS
# (default 60) from the seed corpus tests/fuzz/TARGET.seeds (one input per
# line, hex; unpacked into DIR/seeds-TARGET): new inputs go to
# DIR/corpus-TARGET, crash reproducers to DIR/.
# Exit status: non-zero on a build failure or any finding (crash, leak,
# contract violation, timeout, OOM).
#
# --merge: instead of fuzzing, minimizes DIR/corpus-TARGET plus the seeds
# into tests/fuzz/TARGET.seeds (run by hand to refresh the committed seeds).
# Reproduce a finding: DIR/TARGET_fuzzer DIR/crash-<sha1>
#
# tools/fuzz calls this script. In Bazel (//tests/fuzz:arena_fuzz_test,
# :hook_fuzz_test) it runs from the test's runfiles and compiles the
# workspace's arena/*.c (and pyext/*.c).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
# In Bazel's runfiles only this package's files are present (arena/BUILD
# exports no sources): the workspace is where this script's symlink points.
if ! compgen -G "$root/arena/*.c" >/dev/null; then
  root="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
fi
time_s=60
out="${TEST_TMPDIR:-/tmp/objarena-fuzz}"
build_only=0
merge=0
target=arena
python="${OBJARENA_FUZZ_PYTHON:-python3}"
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --time) time_s="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --merge) merge=1; shift ;;
    --python) python="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) target="$1"; shift ;;
  esac
done

if [[ "$target" != arena && "$target" != hook ]]; then
  echo "tools/fuzz: unknown target '$target' (known: arena, hook)" >&2
  exit 2
fi

cc=clang-14
cxx=clang++-14
if ! command -v "$cxx" >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  # (tools/apt_install.sh is not in the Bazel test's runfiles: there a
  # missing clang fails the test with the message below)
  # shellcheck source=tools/apt_install.sh
  [[ -f "$root/tools/apt_install.sh" ]] && source "$root/tools/apt_install.sh"
  command -v apt_install_missing >/dev/null && apt_install_missing tools/fuzz clang-14 libclang-rt-14-dev || {
    echo "tools/fuzz: needs clang-14 and libclang-rt-14-dev (libFuzzer)" >&2
    exit 1
  }
fi

mkdir -p "$out"
bin="$out/${target}_fuzzer"
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -DARENA_DEBUG=2 -I"$root" -Wall -Wextra -Werror)
objs=()
srcs=("$root"/arena/*.c)
libs=(-lpthread)
objdir="$out/obj-$target"
if [[ $target == hook ]]; then
  # The interpreter: its real executable (not a pyenv shim; a venv's python
  # is fine), headers and shared libpython, from its own sysconfig.
  py_info="$("$python" -c 'import sys, sysconfig as s
v = s.get_config_var
print(sys.executable); print(s.get_paths()["include"]); print(v("LIBDIR")); print(v("LDVERSION") or v("VERSION"))
print(v("Py_ENABLE_SHARED") or 0); print(v("Py_GIL_DISABLED") or 0)')" || {
    echo "tools/fuzz: cannot run the interpreter '$python' (--python, OBJARENA_FUZZ_PYTHON)" >&2
    exit 1
  }
  { read -r py_exe; read -r py_inc; read -r py_libdir; read -r py_ldver; read -r py_shared; read -r py_nogil; } <<<"$py_info"
  if [[ "$py_shared" != 1 || "$py_nogil" == 1 || ! -f "$py_inc/Python.h" ]]; then
    echo "tools/fuzz: $py_exe needs a shared libpython (--enable-shared), a GIL build and its headers" >&2
    exit 1
  fi
  echo "tools/fuzz: embedding $py_exe (libpython$py_ldver from $py_libdir)" >&2
  flags+=(-isystem "$py_inc")
  srcs+=("$root"/pyext/*.c)  # the C API (the objarena._objarena module, pyext/module/, is not part of it)
  libs+=(-L"$py_libdir" -Wl,-rpath,"$py_libdir" -lpython"$py_ldver" -ldl -lm)
  extra_defs=(-DOBJARENA_FUZZ_PYTHON="\"$py_exe\"")
  objdir="$out/obj-hook-$(printf '%s' "$py_exe" | sha1sum | cut -c1-8)"
fi
mkdir -p "$objdir"
for src in "${srcs[@]}"; do
  obj="$objdir/$(basename "$(dirname "$src")")-$(basename "$src" .c).o"
  "$cc" -std=c11 "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  objs+=("$obj")
done
"$cxx" -std=c++17 "${flags[@]}" ${extra_defs[@]+"${extra_defs[@]}"} -fsanitize=fuzzer \
  "$root/tests/fuzz/${target}_fuzzer.cc" "${objs[@]}" "${libs[@]}" -o "$bin"
echo "tools/fuzz: built $bin" >&2
[[ $build_only == 1 ]] && exit 0

seeds_file="$root/tests/fuzz/$target.seeds"
seeds="$out/seeds-$target"
work="$out/corpus-$target"
rm -rf "$seeds" && mkdir -p "$seeds" "$work"
n=0
while IFS= read -r hex; do
  [[ -n "$hex" && "$hex" != \#* ]] || continue
  n=$((n + 1))
  printf '%s' "$hex" | xxd -r -p > "$seeds/seed-$n"
done < "$seeds_file"
common=(-rss_limit_mb=4096 -timeout=20 -print_final_stats=1 -artifact_prefix="$out/")

if [[ $merge == 1 ]]; then
  fresh="$out/merged-$target"
  rm -rf "$fresh" && mkdir -p "$fresh"
  "$bin" "${common[@]}" -merge=1 "$fresh" "$seeds" "$work"
  for f in "$fresh"/*; do xxd -p "$f" | tr -d '\n'; echo; done | sort > "$seeds_file"
  echo "tools/fuzz: $(wc -l < "$seeds_file") seeds in $seeds_file" >&2
  exit 0
fi

# (ASAN: the library maps and unmaps chunks with mmap; LeakSanitizer checks
# every malloc'd byte of the harness and the library at exit.)
exec "$bin" "${common[@]}" -max_total_time="$time_s" "${extra[@]+"${extra[@]}"}" "$work" "$seeds"
