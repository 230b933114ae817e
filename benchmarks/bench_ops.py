"""Benchmark of torch_utils.ops at StyleGAN2 256x256 shapes: forward and forward+backward, reference vs CUDA path.

    python benchmarks/bench_ops.py                      # GPU if present: both paths
    python benchmarks/bench_ops.py --device cpu --res 32 --batch 2 --repeats 3   # quick CPU smoke run

Shapes follow the `paper256` generator/discriminator (channels = min(16384 / res, 512)): the top-resolution
bias+lrelu, the torgb skip upsampling, the discriminator downsampling, the up/down 3x3 convs and the up-sampling
modulated conv (non-fused as in training, fused as in inference). Prints the median time per call in ms.
"""

import os
import statistics
import sys
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch_utils.ops import bias_act, conv2d_resample, modulated_conv, upfirdn2d  # noqa: E402


# Number of feature channels at resolution `res` in the paper256 config (at most `channel_max`).
def channels(res: int, channel_max: int = 512) -> int:
    return min(16384 // res, channel_max)


# The benchmark cases: name, shape description, and a function of (make_input) returning the op's output.
# Random values are drawn in float32 and then cast, so that after the same torch.manual_seed the cases in every
# dtype hold the same numbers (rounded); scripts/gpu_check.py compares the dtypes and paths on them.
def make_cases(batch: int, res: int, device: torch.device, dtype: torch.dtype, channel_max: int = 512):
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    half, c, c_half = res // 2, channels(res, channel_max), channels(res // 2, channel_max)

    def rand(*shape, grad=False):
        return torch.randn(*shape, device=device).to(dtype).requires_grad_(grad)

    b = rand(c)
    w_up, w_down = rand(c, c_half, 3, 3), rand(c_half, c, 3, 3)
    styles = rand(batch, c_half) + 1
    noise = rand(batch, 1, res, res)
    return [
        ("bias_act lrelu+clamp", [batch, c, res, res],
         lambda x: bias_act.bias_act(x, b, act="lrelu", clamp=256)),
        ("upsample2d (torgb skip)", [batch, 3, half, half], lambda x: upfirdn2d.upsample2d(x, f)),
        ("downsample2d", [batch, c, res, res], lambda x: upfirdn2d.downsample2d(x, f)),
        ("conv2d_resample up=2 3x3", [batch, c_half, half, half],
         lambda x: conv2d_resample.conv2d_resample(x, w_up, f, up=2, padding=1, flip_weight=False)),
        ("conv2d_resample down=2 3x3", [batch, c, res, res],
         lambda x: conv2d_resample.conv2d_resample(x, w_down, f, down=2, padding=1)),
        ("modulated_conv2d up=2 non-fused", [batch, c_half, half, half],
         lambda x: modulated_conv.modulated_conv2d(x, w_up, styles, noise, up=2, padding=1, resample_filter=f,
                                                   flip_weight=False, fused_modconv=False)),
        ("modulated_conv2d up=2 fused", [batch, c_half, half, half],
         lambda x: modulated_conv.modulated_conv2d(x, w_up, styles, noise, up=2, padding=1, resample_filter=f,
                                                   flip_weight=False, fused_modconv=True)),
    ], rand


# Median wall time of fn() in ms, synchronising the GPU around each call.
def time_ms(fn, device: torch.device, repeats: int, warmup: int = 3) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


# (forward ms, forward+backward ms) of op on a fresh input of `shape` with the current STYLEINV_OPS path.
def measure(op, rand, shape, device: torch.device, repeats: int) -> tuple[float, float]:
    x = rand(*shape, grad=True)
    dy = torch.randn_like(op(x))
    fwd = time_ms(lambda: op(x), device, repeats)
    fwd_bwd = time_ms(lambda: torch.autograd.grad(op(x), x, dy), device, repeats)
    return fwd, fwd_bwd


@click.command()
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu", show_default=True)
@click.option("--batch", default=8, show_default=True, help="Per-GPU batch (paper256: 64 over 8 GPUs).")
@click.option("--res", default=256, show_default=True, help="Top resolution.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--repeats", default=20, show_default=True)
def main(device: str, batch: int, res: int, dtype: str, repeats: int) -> None:
    device = torch.device(device)
    dtype = getattr(torch, dtype)
    cases, rand = make_cases(batch, res, device, dtype)
    paths = ["ref", "cuda"] if device.type == "cuda" else ["ref"]
    print(f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"batch={batch}, res={res}, dtype={dtype}, torch {torch.__version__}")
    header = f"{'op':34} {'input shape':22}" + "".join(f" {p + ' fwd':>10} {p + ' fwd+bwd':>13}" for p in paths)
    print(header)
    print("-" * len(header))
    for name, shape, op in cases:
        row = f"{name:34} {str(shape):22}"
        for path in paths:
            os.environ["STYLEINV_OPS"] = path
            fwd, fwd_bwd = measure(op, rand, shape, device, repeats)
            row += f" {fwd:10.3f} {fwd_bwd:13.3f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
