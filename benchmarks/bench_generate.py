"""Benchmark of video generation (generate.py videos): frames/s for one long video and for a batch of videos, at
256x256 with the paper's networks (paper256 StyleGAN2 + IR-SE-50 StyleInV motion generator), random weights.

Examples:
  python benchmarks/bench_generate.py                                  # CPU, few frames (it is slow)
  python benchmarks/bench_generate.py --devices cuda --frames 1024 --videos 16 --chunk 64
  python benchmarks/bench_generate.py --network SNAP.pt --devices cuda  # a trained stage-3 snapshot
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import sync  # noqa: E402

from training import video_generation as vgen  # noqa: E402
from training.networks_stylegan2 import Generator  # noqa: E402
from training.networks_styleinv import MotionGenerator  # noqa: E402
from training.presets import stylegan2_preset  # noqa: E402


# The paper's 256x256 model with random weights (StyleGAN2 paper256, IR-SE-50 encoder, default FFA-APE), or
# another preset / encoder / FFA-APE size. fp32=True builds G without fp16 layers (the same weights: the seed and
# the parameter shapes do not depend on it).
def paper_model(device: torch.device, noise_mode: str, preset: str = "paper256", resolution: int = 256,
                encoder_kwargs: dict | None = None, motion_kwargs: dict | None = None,
                fp32: bool = False) -> vgen.VideoGenerator:
    torch.manual_seed(0)
    G_kwargs = stylegan2_preset(preset, resolution).G_kwargs
    if fp32:
        G_kwargs.synthesis_kwargs["num_fp16_res"] = 0
    G = Generator(**G_kwargs)
    motion_generator = MotionGenerator(w_dim=G.w_dim, num_ws=G.num_ws, encoder_kwargs=encoder_kwargs,
                                       motion_kwargs=motion_kwargs)
    return vgen.VideoGenerator(G, motion_generator, None, noise_mode=noise_mode, device=device)


def _peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux; process peak so far.


# Time generating `seeds` x num_frames frames in chunks (after one warm-up chunk); with `write`, every video is
# also streamed to an mp4. Returns frames/s and the time split (ms per frame) between w_t and decoding.
def run(vg: vgen.VideoGenerator, seeds: list[int], num_frames: int, chunk: int, batch: int, write: bool) -> dict:
    device = vg.device
    next(vg.iter_video_chunks(seeds[:batch], min(chunk, num_frames), chunk=chunk, batch=batch))  # Warm-up.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        writers = [vgen.VideoWriter(os.path.join(tmp, f"{s}.mp4")) for s in seeds] if write else []
        sync(device)
        start = time.perf_counter()
        for frames in vg.iter_video_chunks(seeds, num_frames, chunk=chunk, batch=batch):
            for writer, video in zip(writers, frames, strict=False):
                writer.append(video)
        sync(device)
        total = time.perf_counter() - start
        for writer in writers:
            writer.close()
    # Split of one chunk of `batch` videos: motion generator (w_t) vs G.synthesis (decode).
    t = vgen.video_times(min(chunk, num_frames))
    w0, motion_z = vg.latents_for_seeds(seeds[:batch], float(t[-1]))
    x0 = vg.first_frames(w0)
    sync(device)
    t0 = time.perf_counter()
    w_t = vg.latents(w0, motion_z, t, x0)
    sync(device)
    t1 = time.perf_counter()
    vg.decode(w_t)
    sync(device)
    t2 = time.perf_counter()
    n = w_t.shape[0] * w_t.shape[1]
    return dict(frames=len(seeds) * num_frames, seconds=total, fps=len(seeds) * num_frames / total,
                ms_latents=(t1 - t0) / n * 1e3, ms_decode=(t2 - t1) / n * 1e3, peak_gb=_peak_gb(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default=None, help="Stage-3 snapshot (default: random paper256 model)")
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped when absent")
    parser.add_argument("--frames", type=int, default=None, help="Frames of the long video [cpu 8, cuda 2048]")
    parser.add_argument("--videos", type=int, default=None, help="Videos in the batch workload [cpu 2, cuda 32]")
    parser.add_argument("--batch-frames", type=int, default=None, help="Frames per video there [cpu 4, cuda 128]")
    parser.add_argument("--chunk", type=int, default=None, help="Frames per video per call [cpu 4, cuda 128]")
    parser.add_argument("--batch", type=int, default=None, help="Videos per call [cpu 2, cuda 4]")
    parser.add_argument("--noise-mode", default="const", choices=vgen.NOISE_MODES)
    parser.add_argument("--write", action="store_true", help="Also stream every video to an mp4 (end to end)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    rows = []
    for name in args.devices.split(","):
        if name == "cuda" and not torch.cuda.is_available():
            print("(no CUDA device: skipping cuda)")
            continue
        device = torch.device(name)
        gpu = device.type == "cuda"
        frames = args.frames or (2048 if gpu else 8)
        videos = args.videos or (32 if gpu else 2)
        batch_frames = args.batch_frames or (128 if gpu else 4)
        chunk = args.chunk or (128 if gpu else 4)
        batch = args.batch or (4 if gpu else 2)
        vg = (vgen.load_video_generator(args.network, device, args.noise_mode) if args.network
              else paper_model(device, args.noise_mode))
        long = run(vg, [0], frames, chunk * batch, 1, args.write)  # One video: batch*chunk frames per call.
        rows.append(dict(device=name, workload=f"1 video x {frames}", rows=min(chunk * batch, frames), **long))
        many = run(vg, list(range(videos)), batch_frames, chunk, batch, args.write)
        rows.append(dict(device=name, workload=f"{videos} videos x {batch_frames}", rows=batch * chunk, **many))
        del vg
    res = "paper256 random weights" if args.network is None else args.network
    print(f"\nVideo generation, {res}, noise {args.noise_mode}, mp4 writing {'on' if args.write else 'off'} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} CPU threads)")
    header = (f"{'device':6} {'workload':20} {'rows/call':>9} {'frames':>7} {'seconds':>8} {'frames/s':>9} "
              f"{'ms w_t':>7} {'ms G':>7} {'peak GB':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['device']:6} {r['workload']:20} {r['rows']:9d} {r['frames']:7d} {r['seconds']:8.2f} "
              f"{r['fps']:9.2f} {r['ms_latents']:7.1f} {r['ms_decode']:7.1f} {r['peak_gb']:7.2f}")
    print("rows/call = frames per network call; ms w_t / ms G = per-frame time of the motion generator / of "
          "G.synthesis on one call. CPU peak GB is the process peak RSS so far; CUDA is max allocated.")


if __name__ == "__main__":
    main()
