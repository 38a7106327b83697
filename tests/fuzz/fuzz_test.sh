#!/usr/bin/env bash
# Bazel test wrapper: builds and runs a fuzz target with run_fuzzer.sh for
# OBJARENA_FUZZ_SECONDS (default 60) seconds from the runfiles.
# Skipped under --config=asan (the fuzzer is ASan+UBSan-built already: a
# second run would only spend CI time) and --config=tsan.
set -euo pipefail
if [[ "${OBJARENA_ASAN:-0}" == 1 || "${OBJARENA_TSAN:-0}" == 1 ]]; then
  echo "fuzz_test: skipped under a sanitizer config (the fuzzer is always built with ASan+UBSan)"
  exit 0
fi
exec tests/fuzz/run_fuzzer.sh --time "${OBJARENA_FUZZ_SECONDS:-60}" "$@"
