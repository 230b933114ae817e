#!/usr/bin/env bash
# The three StyleInV stages on SkyTimelapse (25 fps) with the paper's settings (configs/skytimelapse.yaml for stage 3).
# Usage: scripts/train_skytimelapse.sh DATA_DIR [GPUS]   (DATA_DIR from scripts/dataset_tool.py, 256x256 frames)
# Expected time on 8 A100s: stage 1 ~7.5 GPU-days, stage 2 ~1 GPU-day, stage 3 see docs/REPRODUCING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: $0 DATA_DIR [GPUS]}
gpus=${2:-8}
out=runs/skytimelapse
source scripts/venv.sh
# Stage 1 resumes its newest snapshot when there is one (rerun this script after an interruption).
resume=(); ls $out/*-paper256-*/network-snapshot-*.pt >/dev/null 2>&1 && resume=(--resume latest)
python train_stylegan.py --outdir $out --data "$data" --cfg paper256 --gpus $gpus --mirror --kimg 25000 "${resume[@]}"
stage1=$(ls -t $out/*-paper256-*/network-snapshot-*.pt | head -n 1)
python train_encoder.py --outdir $out --data "$data" --generator "$stage1" --gpus $gpus --batch $((8 * gpus)) \
    --kimg 4000 --id-weight 0 --init-backbone "${STYLEINV_IRSE50:-$HOME/.cache/styleinv/model_ir_se50.pth}"
stage2=$(ls -t $out/*-encoder-*/network-snapshot-*.pt | head -n 1)
python train_styleinv.py --outdir $out --data "$data" --cfg configs/skytimelapse.yaml --checkpoint "$stage2" --gpus $gpus
