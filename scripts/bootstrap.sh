#!/usr/bin/env bash
# Create .venv in the repo root and install the project into it. Idempotent: re-installs only
# when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "scene-matcher: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
stamp=.venv/.scene-matcher-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "scene-matcher: installing the project and its dependencies into .venv (first run: several minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  echo "$wanted" > "$stamp"
fi
