"""Tiny random-weight checkpoints of each training stage, for tests of the generation and metric scripts."""

import copy
import os

import torch

from training.checkpoint import save_checkpoint
from training.networks_encoder import WEncoder
from training.networks_stylegan2 import Discriminator
from training.networks_styleinv import MotionGenerator
from training.networks_video_d import VideoDiscriminator
from training.presets import stylegan2_preset

# Sizes: a 32-d W space, 2 mapping layers, 32 channels at most; a 4-stage IR-SE backbone with one unit per stage;
# FFA-APE with 16-d motion codes and anchors every 8 frames.
TINY_BACKBONE = dict(units_per_stage=[1, 1, 1, 1], stage_channels=[8, 8, 16, 16])
TINY_BACKBONE_16PX = dict(units_per_stage=[1, 1, 1], stage_channels=[8, 8, 16])  # Stride 8: 2x2 at the end.
TINY_MOTION = dict(z_dim=16, v_dim=16, time_enc_dim=8, motion_z_distance=8, max_num_frames=32, min_period_len=8,
                   max_period_len=32)
TINY_VIDEO_D = dict(channel_base=256, channel_max=32, num_fp16_res=0, max_num_frames=32,
                    time_enc_kwargs=dict(const_dim=8))


# A tiny stage-1 generator at `resolution` (the `tiny` preset, fp32; channel_base overrides its 1024 for thinner
# high-resolution layers); weights random (seeded), noise strengths 0.1 so that noise modes make a difference.
def make_tiny_generator(resolution: int = 32, seed: int = 0, channel_base: int | None = None) -> torch.nn.Module:
    from training.networks_stylegan2 import Generator
    torch.manual_seed(seed)
    G_kwargs = stylegan2_preset("tiny", resolution=resolution).G_kwargs
    if channel_base is not None:
        G_kwargs.synthesis_kwargs["channel_base"] = channel_base
    G = Generator(**G_kwargs)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
        G.mapping.w_avg.normal_(0, 0.5)
    return G.eval()


# A "fine-tuned" copy of G (Sec. 3.5): mapping and layers <= 16 px unchanged, the rest perturbed.
def make_finetuned_copy(G: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    G_tuned = copy.deepcopy(G)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G_tuned.synthesis.named_parameters():
            res = int(name.split(".")[0][1:])
            if res > 16:
                p.add_(torch.randn(p.shape, generator=gen) * 0.3 * (p.detach().std() if p.numel() > 1 else 1))
    return G_tuned


# The stage-3 networks: frozen G, stage-2 encoder, video D, motion generator (initialised from the encoder) and
# its EMA copy (a slightly different copy, so that tests can tell which one was used). The encoder has 4 stages
# at >= 32 px, 3 at 16 px (its AdaIN instance norms need more than 1x1 feature maps).
def make_tiny_stage3_networks(resolution: int = 32, seed: int = 0,
                              channel_base: int | None = None) -> dict[str, torch.nn.Module]:
    G = make_tiny_generator(resolution, seed, channel_base)
    backbone = TINY_BACKBONE if resolution >= 32 else TINY_BACKBONE_16PX
    torch.manual_seed(seed + 1)
    encoder = WEncoder(w_dim=G.w_dim, num_ws=G.num_ws, backbone_kwargs=backbone, w_avg=G.mapping.w_avg)
    motion_generator = MotionGenerator(w_dim=G.w_dim, num_ws=G.num_ws, encoder_kwargs=backbone,
                                       motion_kwargs=TINY_MOTION)
    motion_generator.init_from_encoder(encoder)
    motion_ema = copy.deepcopy(motion_generator)
    with torch.no_grad():
        for p in motion_ema.parameters():
            p.mul_(1.01)
    D = VideoDiscriminator(resolution, concat_res=min(16, resolution // 2), **TINY_VIDEO_D)
    return dict(G=G, encoder=encoder.eval(), D=D, motion_generator=motion_generator.eval(),
                motion_generator_ema=motion_ema.eval())


# Write a tiny stage-3 checkpoint (what train_styleinv.py saves: G, encoder, D, motion_generator,
# motion_generator_ema) to `path`; returns the networks.
def make_tiny_stage3_checkpoint(path: str | os.PathLike, resolution: int = 32, seed: int = 0,
                                channel_base: int | None = None) -> dict[str, torch.nn.Module]:
    nets = make_tiny_stage3_networks(resolution, seed, channel_base)
    save_checkpoint(path, nets, metadata=dict(stage=3, note="tiny random test checkpoint"))
    return nets


# Write a stage-1 style checkpoint (G, D, G_ema) holding `G` as G_ema (e.g. a fine-tuned copy for style transfer).
def make_tiny_stage1_checkpoint(path: str | os.PathLike, G: torch.nn.Module) -> None:
    D = Discriminator(**stylegan2_preset("tiny", resolution=G.img_resolution).D_kwargs)
    save_checkpoint(path, dict(G=copy.deepcopy(G), D=D, G_ema=G), metadata=dict(stage=1))


# Write a stage-2 style checkpoint (encoder, G).
def make_tiny_stage2_checkpoint(path: str | os.PathLike, nets: dict[str, torch.nn.Module]) -> None:
    save_checkpoint(path, dict(encoder=nets["encoder"], G=nets["G"]), metadata=dict(stage=2))
