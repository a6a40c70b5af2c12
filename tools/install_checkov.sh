#!/usr/bin/env sh
# Installs the pinned checkov into its own virtual environment under .tools/checkov.
# checkov pins many libraries (boto3, networkx, ...) at versions that clash with the app's,
# so it never goes into .venv. Idempotent: does nothing if the pinned version is present.
set -eu

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.tools/checkov"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ -x "$VENV/bin/checkov" ] && [ "$("$VENV/bin/checkov" --version 2>/dev/null)" = "$CHECKOV_VERSION" ]; then
    echo "checkov $CHECKOV_VERSION already installed in $VENV"
    exit 0
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
echo "checkov $("$VENV/bin/checkov" --version) installed in $VENV"
