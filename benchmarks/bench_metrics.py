"""Throughput of the FID/FVD detectors and the Fréchet distance, and an estimate of the full metric suite's time.

  python benchmarks/bench_metrics.py                 # CPU (and CUDA when available)
  python benchmarks/bench_metrics.py --device cuda --allow-tf32
Random-weight detectors at the real architecture (speed does not depend on the weights). Inputs are uint8 frames at
--resolution (256 by default), so the timings include the resize to 299 / 224.
"""

import sys
from pathlib import Path

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import time_call  # noqa: E402

from metrics.detectors import random_detector  # noqa: E402
from metrics.frechet import FeatureStats, frechet_distance  # noqa: E402

# Detector FLOPs per item (conv/matmul, 1 MAC = 2 FLOP; METRICS.md section 5).
GFLOP = {"inception": 11.42, "i3d_16f": 55.6, "i3d_128f": 444.6}
# The suite's detector work, (items, GFLOP key) per side: FVD16 and FVD128 use 2048 clips, FID50k 50k frames.
SUITE = {"fvd2048_16f": (2048, "i3d_16f"), "fvd2048_128f": (2048, "i3d_128f"), "fid50k": (50000, "inception")}


# Seconds per batch of a detector on random uint8 input of `shape`.
def _time_detector(module, shape, device, repeats: int) -> float:
    x = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    with torch.inference_mode():
        return time_call(lambda: module(x), device, repeats)[0]


# Seconds per batch of Inception (batch images) and I3D (clips of 16 frames; of 128 on GPU or with i3d_128f).
# make_detector(name) gives the module (default: random weights).
def bench_detectors(device, res: int, repeats: int, i3d_128f: bool, batch: int | None = None,
                    clips: int | None = None, make_detector=random_detector) -> list[dict]:
    gpu = device.type == "cuda"
    batch = batch or (64 if gpu else 4)
    t = _time_detector(make_detector("inception").to(device), (batch, 3, res, res), device, repeats)
    rows = [dict(what="inception", items=batch, frames_per_item=1, seconds=t, key="inception")]
    i3d = make_detector("i3d").to(device)
    for frames, key, n in ((16, "i3d_16f", clips or (8 if gpu else 1)), (128, "i3d_128f", 2 if gpu else 1)):
        if frames == 128 and not (gpu or i3d_128f):
            continue
        t = _time_detector(i3d, (n, 3, frames, res, res), device, repeats)
        rows.append(dict(what=key, items=n, frames_per_item=frames, seconds=t, key=key))
    return rows


# Fréchet distance (eigh on the device; scipy sqrtm on CPU for d=400 only, d=2048 takes ~45 s) and the float64
# statistics update for one batch of 512 features.
def bench_frechet(device, repeats: int) -> list[dict]:
    rows = []
    for dim in (400, 2048):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((dim, dim + 50)) / np.sqrt(dim)
        args = (np.zeros(dim), a @ a.T, np.zeros(dim), np.cov(rng.standard_normal((dim + 50, dim)), rowvar=False))
        methods = [("eigh", device)] + ([("sqrtm", torch.device("cpu"))] if dim == 400 else [])
        for method, dev in methods:
            t = time_call(lambda m=method, d=dev, a=args: frechet_distance(*a, method=m, device=d), dev, 1)[0]
            rows.append(dict(what=f"FD d={dim} {method} ({dev.type})", seconds=t))
        stats, feats = FeatureStats(dim, device), torch.randn(512, dim, device=device)
        t = time_call(lambda s=stats, f=feats: s.append(f), device, repeats)[0]
        rows.append(dict(what=f"stats append 512 x {dim} ({device.type}, float64)", seconds=t))
    return rows


# Suite time from the measured (or assumed) detector throughput, both sides; with cached real stats half of it.
def suite_estimate(rows: list[dict]) -> list[tuple[str, float]]:
    per_item = {r["key"]: r["seconds"] / r["items"] for r in rows if "key" in r}
    if "i3d_128f" not in per_item and "i3d_16f" in per_item:
        per_item["i3d_128f"] = per_item["i3d_16f"] * GFLOP["i3d_128f"] / GFLOP["i3d_16f"]  # FLOP-proportional.
    return [(name, 2 * n * per_item[key]) for name, (n, key) in SUITE.items()]


@click.command()
@click.option("--device", "devices", multiple=True, help="cpu / cuda (default: cpu, and cuda when available)")
@click.option("--resolution", default=256, show_default=True, help="Input frame size")
@click.option("--repeats", default=2, show_default=True, help="Timed calls per measurement (best taken)")
@click.option("--i3d-128f", is_flag=True, help="Also time a 128-frame clip on CPU (slow)")
@click.option("--allow-tf32", is_flag=True, help="TF32 matmul/conv (default off, the reference precision)")
@click.option("--threads", type=int, default=None, help="torch CPU threads")
@click.option("--assume-tflops", type=float, multiple=True, default=(20.0, 30.0, 45.0), show_default=True,
              help="Also project the suite time at these effective TFLOP/s (e.g. an H100 without TF32)")
def main(devices, resolution, repeats, i3d_128f, allow_tf32, threads, assume_tflops):
    """Print detector throughput, Fréchet-distance timings and a suite time estimate per device."""
    if threads:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = True
    devices = devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    for name in devices:
        device = torch.device(name)
        label = f"CPU, {torch.get_num_threads()} threads"
        if device.type == "cuda":
            label = torch.cuda.get_device_name(device)
        print(f"\n== {label}  (input {resolution}x{resolution} uint8, TF32 {'on' if allow_tf32 else 'off'})")
        rows = bench_detectors(device, resolution, repeats, i3d_128f)
        print(f"{'detector':<12}{'batch':>6}{'s/batch':>10}{'clips/s':>10}{'frames/s':>11}{'TFLOP/s':>9}")
        for r in rows:
            per_s = r["items"] / r["seconds"]
            clips = f"{per_s:.2f}" if r["frames_per_item"] > 1 else "-"
            print(f"{r['what']:<12}{r['items']:>6}{r['seconds']:>10.3f}{clips:>10}"
                  f"{per_s * r['frames_per_item']:>11.1f}{per_s * GFLOP[r['key']] / 1e3:>9.3f}")
        for r in bench_frechet(device, repeats):
            print(f"{r['what']:<44}{r['seconds']:>9.3f} s")
        print("suite detector time (real + fake side; half with cached real stats):")
        total = 0.0
        for metric, seconds in suite_estimate(rows):
            total += seconds
            print(f"  {metric:<14}{seconds:>12.1f} s")
        print(f"  {'total':<14}{total:>12.1f} s  ({total / 3600:.2f} h)")
    if assume_tflops:
        print("\nsuite detector time from FLOP counts at an assumed effective throughput (real + fake side):")
        print(f"{'TFLOP/s':>8}" + "".join(f"{m:>15}" for m in SUITE) + f"{'total':>10}")
        for tflops in assume_tflops:
            times = [2 * n * GFLOP[key] / 1e3 / tflops for n, key in SUITE.values()]
            print(f"{tflops:>8.0f}" + "".join(f"{t:>14.1f}s" for t in times) + f"{sum(times):>9.1f}s")


if __name__ == "__main__":
    main()
