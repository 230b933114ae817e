"""Benchmark of the ADA pipe (forward + backward, as D's passes use it) at several augmentation strengths p, next to
the cost of resampling the whole batch geometrically (what the pipe did at any p > 0 before it resampled only the
transformed samples).

  python benchmarks/bench_augment.py --resolution 32 --batch 16
  python benchmarks/bench_augment.py --device cuda --resolution 256 --batch 32
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import time_call  # noqa: E402

from training.augment import apply_geometric, augment_pipe_from_preset  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="bgc")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    pipe = augment_pipe_from_preset(args.preset).to(device)
    x = torch.randn([args.batch, 3, args.resolution, args.resolution], device=device, requires_grad=True)

    def run_pipe():
        pipe(x).square().sum().backward()

    def whole_batch_resample():
        g = torch.eye(3, device=device).repeat(args.batch, 1, 1)
        g[:, 0, 2] = 0.5  # any non-identity matrix: every sample is resampled
        apply_geometric(x, g, pipe.resample_filter).square().sum().backward()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device {name}, preset {args.preset}, {args.resolution}px, batch {args.batch}")
    print("| p | pipe fwd+bwd, median (ms) |")
    print("| --- | --- |")
    for p in (0.0, 0.05, 0.1, 0.2, 0.6):
        pipe.p.fill_(p)
        print(f"| {p:.2f} | {time_call(run_pipe, device, args.iters)[1] * 1e3:.2f} |")
    whole = time_call(whole_batch_resample, device, args.iters)[1]
    print(f"| whole-batch geometric resampling alone | {whole * 1e3:.2f} |")


if __name__ == "__main__":
    main()
