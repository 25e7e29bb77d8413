#!/usr/bin/env bash
# Create .venv in the repo root and install the project into it, with the optional extra named by
# the first argument (scripts/test.sh: `test`; scripts/demo.sh: none). Idempotent: re-installs only
# when pyproject.toml changed since the last install or the extra asked for is not installed yet.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-}
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "scene-matcher: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
# The stamp holds the hash of pyproject.toml installed and the extra installed with it, if any.
stamp=.venv/.scene-matcher-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed="" installed_extra=""
if [ -f "$stamp" ]; then
  read -r installed installed_extra < "$stamp" || true
fi
if [ "$installed" = "$wanted" ] && { [ -z "$extra" ] || [ "$installed_extra" = "$extra" ]; }; then
  exit 0  # up to date; a plain request is also met by an install with an extra
fi
echo "scene-matcher: installing the project${extra:+ with its $extra extra} and its dependencies into .venv (first run: several minutes)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extra:+[$extra]}"
echo "$wanted $extra" > "$stamp"
