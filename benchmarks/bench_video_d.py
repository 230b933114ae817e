"""The video discriminator's two training phases alone, at paper256 shapes (configs/deeperforensics.yaml, 4 frames
of 256 px per video, random weights, no ADA): Dmain-like (logits of one clip, backward into D's weights) and
Dreg-like (R1: the input gradient with a graph, its squared norm backward into D's weights). The code variants of
bench_steps.py alternate call by call; CPU-time medians (robust to other jobs sharing the cores) and ratios to `new`.

  python benchmarks/bench_video_d.py --threads 2 --repeats 3 --variants old,new,contiguous
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_steps import VARIANTS, patched  # noqa: E402

from training.networks_video_d import VideoDiscriminator  # noqa: E402


def d_main(D, frames, times):
    D(frames, times).sum().backward()


def d_reg(D, frames, times):
    frames = frames.detach().requires_grad_(True)
    grad, = torch.autograd.grad(D(frames, times).sum(), [frames], create_graph=True)
    grad.square().sum().backward()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--videos", type=int, default=1)
    parser.add_argument("--variants", default="old,new,contiguous")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((ROOT / "configs" / "deeperforensics.yaml").read_text())["discriminator"]
    torch.manual_seed(0)
    D = VideoDiscriminator(img_resolution=256, **dict(cfg, epilogue_kwargs=dict(
        cfg["epilogue_kwargs"], mbstd_group_size=min(args.videos, 8))))
    frames = torch.randn([args.videos, 4, 3, 256, 256])
    times = torch.tensor([[0.0, 3.0, 5.0, 7.0]] * args.videos)
    variants = args.variants.split(",")
    print(f"{torch.get_num_threads()} threads, {args.videos} video(s) x 4 frames, CPU-time medians of {args.repeats}")
    print("| phase | " + " | ".join(f"{v} (s)" for v in variants) + " | " +
          " | ".join(f"{v} / new" for v in variants if v != "new") + " |")
    print("| --- " * (1 + 2 * len(variants) - 1) + "|")
    for name, fn in (("Dmain", d_main), ("Dreg", d_reg)):
        cpu = {v: [] for v in variants}
        for rnd in range(args.repeats + 1):
            for v in variants if rnd % 2 == 0 else variants[::-1]:
                D.zero_grad(set_to_none=True)
                with patched(VARIANTS[v]):
                    start = time.process_time()
                    fn(D, frames, times)
                    if rnd > 0:
                        cpu[v].append(time.process_time() - start)
        med = {v: statistics.median(ts) for v, ts in cpu.items()}
        cells = [f"{med[v]:.2f}" for v in variants] + [f"{med[v] / med['new']:.2f}" for v in variants if v != "new"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
