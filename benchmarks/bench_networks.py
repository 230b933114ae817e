"""Benchmark of the StyleGAN2 networks: G forward and G+D training-step throughput, peak memory, GFLOP/s vs matmul."""

import argparse
import resource
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import time_call  # noqa: E402

from training.networks_stylegan2 import Discriminator, Generator  # noqa: E402
from training.presets import stylegan2_preset  # noqa: E402


# Peak matmul GFLOP/s of the device (n x n @ n x n in `dtype`; TF32 as set by the caller), best of `iters`.
def matmul_gflops(device: torch.device, n: int = 2048, iters: int = 5, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best, _ = time_call(lambda: a @ b, device, iters)
    return 2 * n ** 3 / best / 1e9


# Floating-point operations of one call of fn() as counted by torch.utils.flop_counter (convs and matmuls).
def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # Linux reports KiB; process peak so far


# One table row per (device, precision, workload).
def bench(device: torch.device, preset: str, resolution: int, batch: int, iters: int, force_fp32: bool,
          train: bool = True) -> list[dict]:
    cfg = stylegan2_preset(preset, resolution)
    torch.manual_seed(0)
    G = Generator(**cfg.G_kwargs).to(device)
    D_kwargs = dict(cfg.D_kwargs, epilogue_kwargs=dict(mbstd_group_size=min(batch, cfg.mbstd_group)))
    D = Discriminator(**D_kwargs).to(device)
    z = torch.randn(batch, G.z_dim, device=device)
    c = torch.zeros(batch, 0, device=device)
    precision = "fp32" if force_fp32 or device.type != "cuda" else "mixed"
    rows = []

    def g_forward():
        with torch.no_grad():
            return G(z, c, noise_mode="const", force_fp32=force_fp32)

    def g_forward_grouped():  # ADA's inference choice (grouped convs), for comparison with our CPU default
        with torch.no_grad():
            return G(z, c, noise_mode="const", force_fp32=force_fp32, fused_modconv=True)

    def train_step():
        img = G(z, c, force_fp32=force_fp32)
        loss = torch.nn.functional.softplus(-D(img, c, force_fp32=force_fp32)).mean()
        loss.backward()

    G.eval()
    workloads = [("G forward", g_forward, False), ("G fwd grouped", g_forward_grouped, False),
                 ("G+D fwd+bwd", train_step, True)]
    for name, fn, training in workloads if train else workloads[:2]:
        G.train(training)
        D.train(training)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        matmul_before = matmul_gflops(device)
        best, median = time_call(fn, device, iters)
        matmul_after = matmul_gflops(device)
        flops = count_flops(fn)
        matmul = (matmul_before + matmul_after) / 2
        rows.append(dict(device=device.type, precision=precision, workload=name, batch=batch, best_s=best,
                         median_s=median, img_per_s=batch / best, gflop_per_img=flops / batch / 1e9,
                         gflops=flops / best / 1e9, matmul_gflops=matmul, ratio=flops / best / 1e9 / matmul,
                         peak_gb=_peak_memory_gb(device)))
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="paper256")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped when absent")
    parser.add_argument("--skip-train", action="store_true", help="G forward only")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    rows = []
    for name in args.devices.split(","):
        if name == "cuda" and not torch.cuda.is_available():
            print("(no CUDA device: skipping cuda)")
            continue
        device = torch.device(name)
        for force_fp32 in ([True, False] if device.type == "cuda" else [True]):
            rows += bench(device, args.preset, args.resolution, args.batch, args.iters, force_fp32,
                          train=not args.skip_train)
    print(f"\n{args.preset} at {args.resolution}x{args.resolution}, batch {args.batch}, best of {args.iters} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} CPU threads)")
    header = (f"{'device':6} {'prec':5} {'workload':13} {'best s':>7} {'median s':>8} {'img/s':>7} "
              f"{'GFLOP/img':>9} {'GFLOP/s':>8} {'matmul':>8} {'ratio':>6} {'peak GB':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['device']:6} {r['precision']:5} {r['workload']:13} {r['best_s']:7.3f} {r['median_s']:8.3f} "
              f"{r['img_per_s']:7.2f} {r['gflop_per_img']:9.2f} {r['gflops']:8.1f} {r['matmul_gflops']:8.1f} "
              f"{r['ratio']:6.1%} {r['peak_gb']:7.2f}")
    print("matmul = fp32 2048^3 matmul GFLOP/s measured right before and after each row (mean); ratio = GFLOP/s / "
          "matmul. CPU peak GB is the process peak RSS so far; CUDA peak GB is max allocated for that row.")


if __name__ == "__main__":
    main()
