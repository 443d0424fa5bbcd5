#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest, e.g. scripts/test.sh -k align.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${RACALNET_VENV:-.venv}
exec "$VENV/bin/python" -m pytest -n 2 --timeout 900 "$@"
