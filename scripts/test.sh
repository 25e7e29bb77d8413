#!/usr/bin/env bash
# Quick start 2/2: set up .venv if needed and run the whole test suite (slow tests included).
# Real-data tests read the IKEA dataset from $SCENE_MATCHER_IKEA_DIR (default ../shared/ikea) and
# are skipped when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
exec .venv/bin/python -m pytest -q -ra --durations=15 "$@"
