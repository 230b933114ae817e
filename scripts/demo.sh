#!/usr/bin/env bash
# Sets up .venv (when missing), then runs the whole StyleInV pipeline on synthetic moving sprites:
# stage 1 StyleGAN2 -> stage 2 encoder -> stage 3 StyleInV -> generated videos -> report (demo-out/).
# `scripts/demo.sh --data DIR` runs the same pipeline on your own video dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
exec python scripts/demo.py "$@"
