#!/usr/bin/env bash
# DeeperForensics (faces, 30 fps; ArcFace identity loss in stage 2): the three stages with the paper's settings. Usage: scripts/train_deeperforensics.sh DATA_DIR [GPUS]
exec "$(dirname "$0")/train_three_stages.sh" deeperforensics paper256 0.1 "$@"
