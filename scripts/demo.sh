#!/usr/bin/env bash
# Quick start 1/2: set up .venv and run the main job on the embedded synthetic sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
exec .venv/bin/scene-matcher materialize "$@"
