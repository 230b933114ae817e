#!/usr/bin/env bash
# Sets up .venv (when missing) with the runtime and dev requirements, then runs the test suite.
# Extra arguments are passed to pytest, e.g. `scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
exec python -m pytest "$@"
