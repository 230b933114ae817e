#!/usr/bin/env bash
# The three StyleInV stages with the paper's settings, used by scripts/train_<dataset>.sh:
#   scripts/train_three_stages.sh NAME STAGE1_CFG ID_WEIGHT DATA_DIR [GPUS]
# NAME picks configs/NAME.yaml for stage 3 and runs/NAME for the outputs. Rerun it after an interruption:
# stage 1 resumes its newest snapshot. Expected time on 8 A100s: stage 1 ~7.5 GPU-days, stage 2 ~1 GPU-day,
# stage 3 see docs/REPRODUCING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: $0 NAME STAGE1_CFG ID_WEIGHT DATA_DIR [GPUS]}
cfg=${2:?} id_weight=${3:?} data=${4:?usage: $0 NAME STAGE1_CFG ID_WEIGHT DATA_DIR [GPUS]} gpus=${5:-8}
out=runs/$name
source scripts/venv.sh
resume=(); ls $out/*-$cfg-*/network-snapshot-*.pt >/dev/null 2>&1 && resume=(--resume latest)
python train_stylegan.py --outdir $out --data "$data" --cfg $cfg --gpus $gpus --mirror --kimg 25000 "${resume[@]}"
stage1=$(ls -t $out/*-$cfg-*/network-snapshot-*.pt | head -n 1)
python train_encoder.py --outdir $out --data "$data" --generator "$stage1" --gpus $gpus --batch $((8 * gpus)) \
    --kimg 4000 --id-weight $id_weight --init-backbone "${STYLEINV_IRSE50:-$HOME/.cache/styleinv/model_ir_se50.pth}"
stage2=$(ls -t $out/*-encoder-*/network-snapshot-*.pt | head -n 1)
python train_styleinv.py --outdir $out --data "$data" --cfg configs/$name.yaml --checkpoint "$stage2" --gpus $gpus
