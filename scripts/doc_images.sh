#!/usr/bin/env bash
# Regenerates the strips in docs/images (used by docs/GENERATION.md) from a finished demo run:
#   scripts/doc_images.sh [DEMO_OUT=demo-out]
# Every strip shows every 16th frame of 128 (long video: every 128th of 1024; slow motion: every 16th of 256),
# upscaled 3x.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
demo=${1:-demo-out}
stage1=$(ls "$demo"/runs/*-small-gpus1-*/network-snapshot-*.pt | sort | tail -1)
stage3=$(ls "$demo"/runs/*-styleinv-*/network-snapshot-*.pt | sort | tail -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen() {
  local command=$1
  shift
  python generate.py "$command" --network "$stage3" --format strip --strip-every 16 --fps 16 "$@"
}
gen videos --seeds 0-3 --grid 4x1 --outdir "$tmp/grid"
gen videos --seeds 0-2 --grid 3x1 --same-motion --outdir "$tmp/same"
gen videos --seeds 0 --frames 1024 --strip-every 128 --outdir "$tmp/long"
gen videos --seeds 0 --slowmo 2 --outdir "$tmp/slowmo"
gen videos --seeds 0 --transfer-network "$stage1" --outdir "$tmp/transfer"
gen animate --image "$demo/real_frame.png" --outdir "$tmp/animate"
python - "$tmp" <<'EOF'
import sys
from pathlib import Path

from PIL import Image

tmp = Path(sys.argv[1])
names = {"grid/grid000.png": "generate_videos_grid.png", "same/grid000.png": "generate_videos_strip.png",
         "long/seed0000.png": "generate_long_video.png", "slowmo/seed0000.png": "generate_slowmo.png",
         "transfer/seed0000.png": "generate_style_transfer.png", "animate/real_frame.png": "generate_animate.png"}
for src, dest in names.items():
    image = Image.open(tmp / src)
    image.resize((image.width * 3, image.height * 3), Image.NEAREST).save(Path("docs/images") / dest)
    print(f"docs/images/{dest}: {image.width * 3}x{image.height * 3}")
EOF
