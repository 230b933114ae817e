#!/usr/bin/env bash
# FaceForensics (faces, 30 fps; ArcFace identity loss in stage 2): the three stages with the paper's settings. Usage: scripts/train_faceforensics.sh DATA_DIR [GPUS]
exec "$(dirname "$0")/train_three_stages.sh" faceforensics paper256 0.1 "$@"
