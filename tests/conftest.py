"""Shared fixtures: a small synthetic sprites dataset and tiny random-weight stage-1/2 checkpoints."""

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tiny tensors run fastest on one intra-op thread (thread overhead dominates); override with the variable.
torch.set_num_threads(int(os.environ.get("STYLEINV_TEST_THREADS", "1")))

TINY_G = dict(z_dim=32, w_dim=32, mapping_kwargs=dict(num_layers=2),
              synthesis_kwargs=dict(channel_base=512, channel_max=32, num_fp16_res=0, conv_clamp=None))
TINY_ENCODER_BACKBONE = dict(units_per_stage=[1, 1, 1, 1], stage_channels=[8, 8, 16, 16])


@pytest.fixture(scope="session")
def sprites_dir(tmp_path_factory) -> Path:
    """8 synthetic sprite videos x 40 frames at 16 px (folder layout)."""
    from training.sprites import write_synthetic_dataset
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "sprites16", num_videos=8, num_frames=40,
                                   resolution=16, seed=0)


def make_tiny_generator(resolution: int = 16, seed: int = 0):
    from training.networks_stylegan2 import Generator
    torch.manual_seed(seed)
    return Generator(c_dim=0, img_resolution=resolution, img_channels=3, **TINY_G).eval()


@pytest.fixture(scope="session")
def stage1_checkpoint(tmp_path_factory) -> Path:
    """A random-weight 16 px stage-1 snapshot (G, G_ema) in our format."""
    from training.checkpoint import save_checkpoint
    G = make_tiny_generator()
    path = tmp_path_factory.mktemp("stage1") / "stage1.pt"
    save_checkpoint(path, dict(G=G, G_ema=G))
    return path


@pytest.fixture(scope="session")
def sprites32_dir(tmp_path_factory) -> Path:
    """6 synthetic sprite videos x 40 frames at 32 px (StyleInV's encoder needs >= 32 px)."""
    from training.sprites import write_synthetic_dataset
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "sprites32", num_videos=6, num_frames=40,
                                   resolution=32, seed=1)


@pytest.fixture(scope="session")
def stage2_checkpoint(tmp_path_factory) -> Path:
    """A random-weight 32 px stage-2 snapshot (encoder + frozen G) for the StyleInV tests."""
    from training.checkpoint import save_checkpoint
    from training.networks_encoder import WEncoder
    G = make_tiny_generator(resolution=32)
    torch.manual_seed(1)
    encoder = WEncoder(w_dim=G.w_dim, num_ws=G.num_ws, backbone_kwargs=TINY_ENCODER_BACKBONE,
                       w_avg=G.mapping.w_avg).eval()
    path = tmp_path_factory.mktemp("stage2") / "stage2.pt"
    save_checkpoint(path, dict(encoder=encoder, G=G))
    return path


@pytest.fixture(scope="session")
def tiny_stage3_dir(tmp_path_factory) -> Path:
    """Random-weight 32 px checkpoints for generation tests: stage3.pt, stage2.pt and tuned.pt (a perturbed copy
    of the stage-3 G standing in for a style-transferred generator)."""
    from tests._tiny_checkpoints import (
        make_finetuned_copy,
        make_tiny_stage1_checkpoint,
        make_tiny_stage2_checkpoint,
        make_tiny_stage3_checkpoint,
    )
    path = tmp_path_factory.mktemp("ckpt")
    nets = make_tiny_stage3_checkpoint(path / "stage3.pt", resolution=32)
    make_tiny_stage1_checkpoint(path / "tuned.pt", make_finetuned_copy(nets["G"]))
    make_tiny_stage2_checkpoint(path / "stage2.pt", nets)
    return path
