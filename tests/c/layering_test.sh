#!/usr/bin/env bash
# The arena library's layering (arena/README.md): every file of arena/
# includes only the headers of the layers below its own, so the exit path
# (and every other path) reads top-down and no file calls back up.
#
#   tests/c/layering_test.sh arena/*.c arena/*.h     (Bazel passes //arena:sources)
#
# Fails, naming the file and the include, when a file includes a header of
# its own or a higher layer (other than its own header), or when a file is
# in no layer (a new file must be given one here and in arena/README.md).
set -u

# Layer of each header, bottom (0: leaves that include no internal header)
# to top. A .c file has its header's layer; TOP files implement the public
# API on everything below and are included by no one.
declare -A LAYER=(
  [arena.h]=0 [assert.h]=0 [os_mem.h]=0 [size_class.h]=0 [slots.h]=0 [testing.h]=0 [track.h]=0
  [region.h]=1
  [pages.h]=2
  [chunk.h]=3
  [retained.h]=4
  [pool.h]=5
  [arena_state.h]=6
  [adopt.h]=7
)
TOP=8
declare -A TOP_FILES=([alloc.c]=1 [free.c]=1 [arena.c]=1)
# Leaf .c files without a header of their own: they implement arena.h
# functions on no internal header (env.c: the strict parser of environment
# values, which region.c and pool.c call).
declare -A LEAF_FILES=([env.c]=1)

if [ "$#" -eq 0 ]; then
  here="$(cd "$(dirname "$0")/../.." && pwd)"
  set -- "$here"/arena/*.c "$here"/arena/*.h
fi

failures=0
fail() { echo "layering: $*"; failures=$((failures + 1)); }

for path in "$@"; do
  file="$(basename "$path")"
  case "$file" in *.c|*.h) ;; *) continue ;; esac
  if [[ "$file" == *.h ]]; then
    own="${LAYER[$file]:-}"
    [ -n "$own" ] || { fail "$file is in no layer"; continue; }
  elif [ -n "${TOP_FILES[$file]:-}" ]; then
    own=$TOP
  elif [ -n "${LEAF_FILES[$file]:-}" ]; then
    own=0
  else
    own="${LAYER[${file%.c}.h]:-}"
    [ -n "$own" ] || { fail "$file is in no layer (no header of a layer, not a top file)"; continue; }
  fi
  while IFS= read -r inc; do
    [ -n "$inc" ] || continue
    lvl="${LAYER[$inc]:-}"
    if [ -z "$lvl" ]; then
      fail "$file includes arena/$inc, which is in no layer"
      continue
    fi
    if [[ "$file" == *.c && "$inc" == "${file%.c}.h" ]]; then
      continue  # its own header
    fi
    if [ "$lvl" -eq 0 ] && { [ "$own" -gt 0 ] || [[ "$file" == *.c ]]; }; then
      continue  # the leaves, from any layer above them (and a leaf's .c: os_mem.c uses testing.h)
    fi
    if [ "$lvl" -ge "$own" ]; then
      fail "$file (layer $own) includes arena/$inc (layer $lvl): a file may include only lower layers"
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"arena\/\([^"]*\)".*/\1/p' "$path")
done

if [ "$failures" -ne 0 ]; then
  echo "layering: $failures violation(s); see arena/README.md"
  exit 1
fi
echo "layering: $# files, every include points to a lower layer"
