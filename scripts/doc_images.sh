#!/usr/bin/env bash
# Regenerates the strips in docs/images (used by docs/GENERATION.md) from a finished demo run:
#   scripts/doc_images.sh [DEMO_OUT=demo-out]
# Every strip shows every 16th frame of 128 (long video: every 128th of 1024; slow motion: every 16th of 256),
# upscaled 3x. The projection strip shows every 4th frame of a 32-frame real clip, its reconstruction and the 32
# frames that continue it; the script prints the PSNR figures and the mean centroid error quoted in the docs.
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
# Projection of a real clip (frames 0-31 of video 2 of the demo data), continued 32 frames.
python generate.py project --network "$stage3" --video "$demo/data/sprites32/video_00002" --frames 32 --continue 32 \
  --format frames --fps 16 --outdir "$tmp/project"
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
python - "$tmp/project" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from training.sprites import sprite_measurements

out = Path(sys.argv[1])
frames = lambda folder: np.stack([np.asarray(Image.open(p)) for p in sorted((out / folder).glob("*.png"))])
side, projected = frames("projection"), frames("projected")
res = projected.shape[1]
real, reconstruction, continuation = side[:, :, :res], side[:, :, res:], projected[32:]
rows = [np.concatenate(list(video[::4]), axis=1) for video in (real, reconstruction, continuation)]
image = Image.fromarray(np.concatenate(rows, axis=0))
image.resize((image.width * 3, image.height * 3), Image.NEAREST).save("docs/images/generate_projection.png")
print(f"docs/images/generate_projection.png: {image.width * 3}x{image.height * 3}")
report = json.loads((out / "projection.json").read_text())
centres = [sprite_measurements(v)["center"] for v in (real, reconstruction)]
error = np.nanmean(np.linalg.norm(centres[0] - centres[1], axis=1)) * res
base = report["baselines"]
print(f"Projection: mean PSNR {report['psnr']['mean']:.2f} dB; static G(w0) {base['static_psnr']['mean']:.2f} dB; "
      f"per-frame encoder {base['encoder_psnr']['mean']:.2f} dB; mean centroid error {error:.2f} px")
EOF
