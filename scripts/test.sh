#!/usr/bin/env bash
# Quick start 2/2: set up .venv if needed (the project with its `test` extra) and run the whole test
# suite in two steps: the fast tests, then the slow ones (real models, real data; pytest deselects
# them by default, see pyproject.toml). Both steps run; the exit status is non-zero if either fails.
# Arguments go to both steps (a path, -x, -k NAME ...). Real-data tests read the IKEA dataset from
# $SCENE_MATCHER_IKEA_DIR (default ../shared/ikea) and are skipped when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}

step() {  # pytest's status, with "no tests selected" (5) counted as a pass: a path may hold no slow test
  local status=0
  .venv/bin/python -m pytest -q -ra --durations=15 "$@" || status=$?
  [ "$status" -eq 5 ] && status=0
  return "$status"
}

echo "scene-matcher: step 1/2, the fast tests"
fast=0
step "$@" || fast=$?
echo "scene-matcher: step 2/2, the slow tests (-m slow)"
slow=0
step "$@" -m slow || slow=$?
echo "scene-matcher: fast tests exit $fast, slow tests exit $slow"
[ "$fast" -eq 0 ] && [ "$slow" -eq 0 ]
