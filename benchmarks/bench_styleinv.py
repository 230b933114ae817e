"""Benchmark of one StyleInV (stage 3) training step at `paper256` shapes with 4 frames per video (SImain + Dmain
every step, Dreg every 16), reported per video: seconds and peak memory (the paper: 2.85 GB per video with mixed
precision; our target <= 2.0 GB on GPU). Also generation frames/s of the motion generator + G.

  python benchmarks/bench_styleinv.py --device cpu --batch 1 --iters 1
  python benchmarks/bench_styleinv.py --device cuda --batch 8 --iters 10
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_train import peak_memory_gb, step_seconds  # noqa: E402
from stages import fake_batch, styleinv_stage, write_stage2_checkpoint  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default=str(ROOT / "configs" / "deeperforensics.yaml"))
    parser.add_argument("--batch", type=int, default=1, help="videos per step")
    parser.add_argument("--iters", type=int, default=1)
    parser.add_argument("--gen-frames", type=int, default=16)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        path = write_stage2_checkpoint(Path(tmp) / "stage2.pt")
        stage = styleinv_stage(device, path, args.config, resolution=256)
    G = stage.networks["G"]
    batch = fake_batch(args.batch, 256, device, clips=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = step_seconds(stage, batch, device, args.iters)
    train_peak = peak_memory_gb(device)
    total = sum(times.values())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device {name}, paper256 G + IR-SE-50 StyleInV, {args.batch} videos x 4 frames per step")
    print("| phase (per iteration) | seconds |")
    print("| --- | --- |")
    for phase_name, seconds in times.items():
        print(f"| {phase_name} | {seconds:.3f} |")
    print(f"| **step** | **{total:.3f}** ({total / args.batch:.3f} per video) |")
    print(f"peak memory {train_peak:.2f} GB ({train_peak / args.batch:.2f} GB per video)")

    # Generation: one video's frames in one call (motion generator EMA + G, const noise).
    mg = stage.networks["motion_generator_ema"]
    with torch.no_grad():
        w0 = G.to(device).mapping(torch.randn([1, G.z_dim], device=device), None)[:, 0]
        t = torch.arange(args.gen_frames, dtype=torch.float32, device=device)[None]
        mg(w0, t)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        w = mg(w0, t)
        G.synthesis(w[0].unsqueeze(1).expand(-1, G.num_ws, -1), noise_mode="const")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    print(f"generation: {args.gen_frames / (time.perf_counter() - start):.2f} frames/s "
          f"({args.gen_frames} frames of one video)")


if __name__ == "__main__":
    main()
