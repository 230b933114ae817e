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
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_train import _FakeDataset, peak_memory_gb, step_seconds  # noqa: E402

from torch_utils.training_stats import Stats  # noqa: E402
from training.checkpoint import save_checkpoint  # noqa: E402
from training.loss_styleinv import build_styleinv_stage  # noqa: E402
from training.networks_encoder import WEncoder  # noqa: E402
from training.networks_stylegan2 import Generator  # noqa: E402
from training.presets import stylegan2_preset  # noqa: E402


class _FakeClips(_FakeDataset):
    def __getitem__(self, i):
        frames = torch.zeros([4, 3, self.resolution, self.resolution], dtype=torch.uint8).numpy()
        return frames, torch.tensor([0.0, 3.0, 5.0, 7.0]).numpy()


# The stage-3 stage of `config` (a configs/*.yaml path) through the real stage builder, over a stage-2 snapshot of
# random weights (G of StyleGAN2 preset `g_cfg`, a WEncoder with `backbone_kwargs`), ADA bgc at p = 0.2, and one
# batch of `batch` zero clips of 4 frames for it.
def build_stage(config: str, g_cfg: str, backbone_kwargs: dict, batch: int, device: torch.device):
    cfg = yaml.safe_load(Path(config).read_text())
    spec = stylegan2_preset(g_cfg)
    torch.manual_seed(0)
    G = Generator(**spec.G_kwargs).eval()
    encoder = WEncoder(w_dim=G.w_dim, num_ws=G.num_ws, backbone_kwargs=backbone_kwargs).eval()
    resolution = G.img_resolution
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stage2.pt"
        save_checkpoint(path, dict(G=G, encoder=encoder))
        epilogue = cfg["discriminator"].get("epilogue_kwargs", {})
        D_kwargs = dict(cfg["discriminator"], epilogue_kwargs=dict(
            epilogue, mbstd_group_size=min(batch, epilogue.get("mbstd_group_size", 8))))
        stage = build_styleinv_stage(
            device=device, stats=Stats(device), dataset=_FakeClips(resolution), checkpoint_path=str(path),
            motion_kwargs=cfg["motion"], fuse_kwargs=cfg["fuse"], D_kwargs=D_kwargs,
            loss_kwargs=dict(cfg["loss"], max_dist=cfg["data"]["max_dist"]), augment_kwargs=dict(preset="bgc", p=0.2),
            grid_videos=1, grid_frames=2)
    for net in stage.networks.values():
        net.requires_grad_(False)
    clips = torch.zeros([batch, 4, 3, resolution, resolution], dtype=torch.uint8, device=device)
    return stage, [clips, torch.tensor([[0.0, 3.0, 5.0, 7.0]] * batch, device=device)]


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
    stage, batch = build_stage(args.config, "paper256", dict(num_layers=50), args.batch, device)
    G = stage.networks["G"]
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
