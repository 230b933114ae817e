"""The three training stages with random weights at chosen shapes, built as the training scripts build them (the
same stage builders and configs), with input batches, for the benchmarks and scripts/gpu_check.py.

Stage 1 comes from a StyleGAN2 preset; stages 2 and 3 from a stage-2 snapshot of random networks written by
`write_stage2_checkpoint`. Datasets are stand-ins that hold only what the builders read (shapes, a few frames).
"""

import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_train import _FakeDataset  # noqa: E402

from torch_utils.training_stats import Stats  # noqa: E402
from training.checkpoint import save_checkpoint  # noqa: E402
from training.loss_encoder import build_encoder_stage  # noqa: E402
from training.loss_stylegan2 import build_stylegan_stage, preset_stage_kwargs  # noqa: E402
from training.loss_styleinv import build_styleinv_stage, config_stage_kwargs  # noqa: E402
from training.networks_encoder import WEncoder  # noqa: E402
from training.networks_stylegan2 import Generator  # noqa: E402
from training.presets import stylegan2_preset  # noqa: E402

# ADA as in the middle of a run: every augmentation of the paper's bgc pipe at p = 0.2.
AUGMENT = dict(preset="bgc", p=0.2, adaptive=True)
CLIP_TIMES = [0.0, 3.0, 5.0, 7.0]  # timestamps of the real clips fed to stage 3


# Clips for the stage-3 builder: 4 blank frames and their timestamps.
class FakeClips(_FakeDataset):
    def __getitem__(self, i):
        frames = torch.zeros([4, 3, self.resolution, self.resolution], dtype=torch.uint8).numpy()
        return frames, torch.tensor(CLIP_TIMES).numpy()


# Random uint8 frames [batch, 3, R, R] with empty labels (stages 1 and 2), or clips [batch, 4, 3, R, R] with their
# timestamps (stage 3), on `device`.
def fake_batch(batch: int, resolution: int, device: torch.device, clips: bool = False) -> list[torch.Tensor]:
    shape = [batch, 4, 3, resolution, resolution] if clips else [batch, 3, resolution, resolution]
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    labels = torch.tensor([CLIP_TIMES] * batch, device=device) if clips else torch.zeros([batch, 0], device=device)
    return [frames, labels]


# The stage as the loop holds it: every network frozen (each phase unfreezes its own parameters while it runs).
def _frozen(stage):
    for net in stage.networks.values():
        net.requires_grad_(False)
    return stage


# Stage 1 of preset `cfg` at `resolution` for per-GPU batch `batch` (fp32: no fp16 layers, no conv_clamp).
def stylegan_stage(device: torch.device, cfg: str = "paper256", resolution: int = 256, batch: int = 4,
                   fp32: bool = False):
    spec = stylegan2_preset(cfg, resolution=resolution)
    if fp32:
        for kw in (spec.G_kwargs.synthesis_kwargs, spec.D_kwargs):
            kw.update(num_fp16_res=0, conv_clamp=None)
    spec.D_kwargs.epilogue_kwargs["mbstd_group_size"] = min(batch, spec.mbstd_group)
    return _frozen(build_stylegan_stage(device=device, stats=Stats(device), dataset=_FakeDataset(resolution),
                                        **preset_stage_kwargs(spec, AUGMENT), grid_size=(2, 1)))


# A stage-2 snapshot at `path`: a random G of preset `cfg` and a random W encoder (IR-SE backbone_kwargs).
def write_stage2_checkpoint(path: str | Path, cfg: str = "paper256", resolution: int = 256,
                            backbone_kwargs: dict | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    G = Generator(**stylegan2_preset(cfg, resolution=resolution).G_kwargs).eval()
    encoder = WEncoder(w_dim=G.w_dim, num_ws=G.num_ws, backbone_kwargs=backbone_kwargs or dict(num_layers=50),
                       w_avg=G.mapping.w_avg).eval()
    save_checkpoint(path, dict(G=G, encoder=encoder))
    return Path(path)


# Stage 2 for the generator of `checkpoint`: a fresh encoder (backbone_kwargs), MSE + LPIPS-Alex + ArcFace ID loss;
# lpips/identity False drop those terms (their weight files are not always present).
def encoder_stage(device: torch.device, checkpoint: str | Path, resolution: int, backbone_kwargs: dict,
                  lpips: bool = True, identity: bool = True):
    loss_kwargs = dict(lpips_weight=0.8 if lpips else 0.0, id_weight=0.1 if identity else 0.0)
    return _frozen(build_encoder_stage(device=device, stats=Stats(device), dataset=_FakeDataset(resolution),
                                       generator=str(checkpoint), encoder_kwargs=dict(backbone_kwargs=backbone_kwargs),
                                       loss_kwargs=loss_kwargs, num_eval=2))


# Stage 3 of config file `config` (configs/*.yaml) on the stage-2 `checkpoint`; max_dist overrides the config's
# largest timestamp span, and the clip window (max_num_frames) grows with it so that the span is reachable.
def styleinv_stage(device: torch.device, checkpoint: str | Path, config: str | Path, resolution: int,
                   max_dist: int | None = None):
    cfg = yaml.safe_load(Path(config).read_text())
    cfg["data"].pop("videos_per_content", None)  # the blank clips have no contents to group (it costs nothing)
    if max_dist is not None:
        window = max(cfg["data"]["max_num_frames"], max_dist + 1)
        cfg["data"].update(max_dist=max_dist, max_num_frames=window)
        cfg["motion"]["max_num_frames"] = window
    kwargs = dict(config_stage_kwargs(cfg, str(checkpoint)), augment_kwargs=dict(preset="bgc", p=0.2))
    return _frozen(build_styleinv_stage(device=device, stats=Stats(device), dataset=FakeClips(resolution),
                                        grid_videos=1, grid_frames=2, **kwargs))
