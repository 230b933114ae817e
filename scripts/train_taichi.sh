#!/usr/bin/env bash
# TaiChi-HD (25 fps; no-noise stage-1 G, no identity loss): the three stages with the paper's settings. Usage: scripts/train_taichi.sh DATA_DIR [GPUS]
exec "$(dirname "$0")/train_three_stages.sh" taichi paper256_nn 0 "$@"
