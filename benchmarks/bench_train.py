"""Benchmark of one stage-1 training step (Gmain + Dmain every step, Greg every 4, Dreg every 16, as the loop runs
them) at `paper256` shapes: sec/kimg and peak memory, on CPU and CUDA.

  python benchmarks/bench_train.py --device cpu --batch 4 --iters 2
  python benchmarks/bench_train.py --device cuda --batch 32 --iters 20
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch_utils import cpu_memory  # noqa: E402
from torch_utils.training_stats import Stats  # noqa: E402
from training.loss_stylegan2 import build_stylegan_stage  # noqa: E402
from training.presets import stylegan2_preset  # noqa: E402
from training.training_loop import _run_phase  # noqa: E402


class _FakeDataset:  # only what the stage builder reads (real-image grid and shapes)
    def __init__(self, resolution):
        self.resolution, self.num_channels, self.label_dim, self.path = resolution, 3, 0, "(none)"

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.zeros([3, self.resolution, self.resolution], dtype=torch.uint8).numpy(), None


def peak_memory_gb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# Average seconds of one loop iteration: every phase weighted by 1/interval.
def step_seconds(stage, batch, device, iters: int) -> dict[str, float]:
    times = {}
    for phase in stage.phases:
        _run_phase(stage, phase, [batch], stage.loss.stats)  # warm-up (cudnn autotune, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            _run_phase(stage, phase, [batch], stage.loss.stats)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times[phase.name] = (time.perf_counter() - start) / iters / phase.interval
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cfg", default="paper256")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--fp32", action="store_true", help="no fp16 layers (always the case on CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    cpu_memory.configure_for_training(device, args.resolution)  # as the training loop does
    spec = stylegan2_preset(args.cfg, resolution=args.resolution)
    if args.fp32:
        for kw in (spec.G_kwargs.synthesis_kwargs, spec.D_kwargs):
            kw.update(num_fp16_res=0, conv_clamp=None)
    spec.D_kwargs.epilogue_kwargs["mbstd_group_size"] = min(args.batch, spec.mbstd_group)
    stage = build_stylegan_stage(device=device, stats=Stats(device), dataset=_FakeDataset(args.resolution),
                                 G_kwargs=spec.G_kwargs, D_kwargs=spec.D_kwargs, G_opt_kwargs=spec.G_opt_kwargs,
                                 D_opt_kwargs=spec.D_opt_kwargs, loss_kwargs=spec.loss_kwargs,
                                 augment_kwargs=dict(preset="bgc", p=0.2, adaptive=True), grid_size=(2, 1))
    for net in stage.networks.values():
        net.requires_grad_(False)
    batch = [torch.randint(0, 256, [args.batch, 3, args.resolution, args.resolution], dtype=torch.uint8,
                           device=device), torch.zeros([args.batch, 0], device=device)]
    times = step_seconds(stage, batch, device, args.iters)
    total = sum(times.values())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    mixed = "mixed" if device.type == "cuda" and not args.fp32 else "fp32"
    print(f"device {name}, {args.cfg} {args.resolution}px, batch {args.batch}, {mixed}")
    print("| phase (per iteration) | seconds |")
    print("| --- | --- |")
    for phase_name, seconds in times.items():
        print(f"| {phase_name} | {seconds:.3f} |")
    print(f"| **step** | **{total:.3f}** |")
    print(f"sec/kimg {total / args.batch * 1000:.1f}, peak memory {peak_memory_gb(device):.2f} GB")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
