#!/usr/bin/env bash
# `./bazelw run //:run_examples -- [args]`: the main job, run from the source
# tree (it keeps its venv and results under the checkout's .cache/, as
# ./tools/run_examples does).
set -euo pipefail
if [[ -z "${BUILD_WORKSPACE_DIRECTORY:-}" ]]; then
  echo "bazel_run_examples.sh: run it with ./bazelw run //:run_examples, or run ./tools/run_examples" >&2
  exit 2
fi
exec "$BUILD_WORKSPACE_DIRECTORY/tools/run_examples" "$@"
