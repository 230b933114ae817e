#!/usr/bin/env bash
# SkyTimelapse (25 fps; no identity loss): the three stages with the paper's settings. Usage: scripts/train_skytimelapse.sh DATA_DIR [GPUS]
exec "$(dirname "$0")/train_three_stages.sh" skytimelapse paper256 0 "$@"
