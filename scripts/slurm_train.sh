#!/usr/bin/env bash
# Multi-node training under SLURM with torchrun: one task per node, one process per GPU.
#   sbatch --nodes=2 --gpus-per-node=8 scripts/slurm_train.sh train_styleinv.py --cfg configs/taichi.yaml \
#       --data data/taichi256 --checkpoint runs/<stage2>/network-snapshot-004000.pt --outdir runs
# Every train_*.py works the same way; --gpus is ignored under torchrun (the world size comes from it).
#SBATCH --job-name=styleinv
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
[ -x .venv/bin/python ] && source .venv/bin/activate
gpus_per_node=${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L | wc -l)}
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun \
    --nnodes="$SLURM_NNODES" --nproc_per_node="$gpus_per_node" \
    --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$head_node:29500" \
    "$@"
