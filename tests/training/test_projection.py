"""Tests for the video projection (training/projection.py): recovery of clips generated from a known (w0, motion
noise), the anchor rows a clip depends on, time windows, the motion noise extension and input checks."""

import copy

import numpy as np
import pytest
import torch

from tests._tiny_checkpoints import TINY_MOTION, make_tiny_stage3_networks
from training import projection
from training import video_generation as vgen
from training.image_utils import to_float
from training.loss_encoder import psnr
from training.networks_styleinv import MotionGenerator
from training.perceptual import LPIPS, freeze

T = 8  # Frames of the test clips.


# A tiny StyleInV shaped like a trained one, so that projecting its own clips is a fair test of the optimisation:
# G's images lie in [-1, 1] (its toRGB layers scaled down), the videos of `w0` start at G(w0) (the encoder head's
# bias is shifted so that E(G(w0), s_0) = 0, which Eq. 4 trains for), and the motion noise visibly changes the
# frames (FFA-APE's aligner codes, linear in the noise, scaled up). Random weights alone give images mostly out of
# range, first frames far from G(w0) and frames that hardly depend on the motion noise.
def trained_like_generator(w0: torch.Tensor, nets: dict, encoder: bool) -> vgen.VideoGenerator:
    G, mg = copy.deepcopy(nets["G"]), copy.deepcopy(nets["motion_generator_ema"])
    vg = vgen.VideoGenerator(G, mg, nets["encoder"] if encoder else None)
    with torch.no_grad():
        for name, p in G.synthesis.named_parameters():
            if "torgb" in name and "affine" not in name:
                p.mul_(0.4)
        mg.ffa_ape.time_encoder.aligners_predictor.weight.mul_(10)
        mg.encoder.linear.weight.mul_(0.5)
        mg.encoder.linear.bias.mul_(0.5)
        delta_0 = vg.latents(w0, vg.motion_z_for_seeds([0], 1), torch.zeros(1, dtype=torch.float64))[0, 0] - w0[0]
        mg.encoder.linear.bias.sub_(delta_0 / mg.encoder.linear.bias_gain)
    return vg


@pytest.fixture(scope="module")
def nets():
    return make_tiny_stage3_networks()


def mean_psnr(frames: torch.Tensor, clip: torch.Tensor) -> float:
    return float(psnr(to_float(frames), to_float(clip)).mean())


# The clip of a known (w0_true, motion_z_true): w0_true is 20% of the way from w_avg (where the projection starts
# without an encoder) to seed 3's latent; motion_z_true is the projection's initial noise moved by half of another
# draw (rows kept at unit mean square). Thresholds come from the same model: the projection must beat the static
# G(w0_true), its own starting point (w0_true with the initial noise: the right content, the wrong motion) and the
# per-frame encoder inversion by a margin, so it recovers the motion, not only the content.
def test_projection_recovers_a_generated_clip(nets):
    probe = vgen.VideoGenerator(nets["G"], nets["motion_generator_ema"])
    w0_true = probe.w0_for_seeds([3], trunc=0.2)
    vg = trained_like_generator(w0_true, nets, encoder=False)
    t = vgen.video_times(T)
    config = projection.ProjectionConfig(w0_steps=60, motion_steps=100, seed=0)
    start = vg.motion_z_for_seeds([config.seed], T - 1)
    motion_z_true = start + 0.5 * vg.motion_z_for_seeds([5], T - 1)
    motion_z_true = motion_z_true / motion_z_true.square().mean(-1, keepdim=True).sqrt()
    clip = vg.frames(w0_true, motion_z_true, t)[0]

    static = float(projection.baseline_psnr(vg, clip, w0_true)["static"].mean())
    wrong_motion = mean_psnr(vg.frames(w0_true, start, t)[0], clip)
    encoder = float(projection.baseline_psnr(trained_like_generator(w0_true, nets, True), clip, w0_true)["encoder"]
                    .mean())
    result = projection.project_video(vg, clip, config, progress=False)

    assert result.w0.shape == (1, vg.G.w_dim) and result.w_t.shape == (1, T, vg.G.w_dim)
    assert result.motion_z.shape == (1, vg.num_anchors(T - 1), vg.motion_generator.ffa_ape.z_dim)
    assert result.reconstruction.shape == clip.shape and result.reconstruction.dtype == torch.uint8
    per_frame = psnr(to_float(result.reconstruction), to_float(clip))
    assert torch.allclose(result.psnr, per_frame, atol=1e-4)
    margin = 6.0  # dB; measured: about 56 dB against 37 (static), 45 (start) and 22 (encoder).
    assert float(result.psnr.mean()) > max(static, wrong_motion, encoder) + margin, \
        (float(result.psnr.mean()), static, wrong_motion, encoder)


# Frames up to t_max depend on the anchor rows clip_anchor_rows gives and on no other (both APE variants): changing
# a row outside changes no frame, changing the last row inside changes the last frame.
@pytest.mark.parametrize("use_ffa_ape", [True, False])
def test_clip_anchor_rows_are_the_rows_the_frames_depend_on(nets, use_ffa_ape):
    torch.manual_seed(0)
    mg = MotionGenerator(w_dim=nets["G"].w_dim, num_ws=nets["G"].num_ws, skip_encoder=True,
                         motion_kwargs=TINY_MOTION, use_ffa_ape=use_ffa_ape, fuse_kwargs=dict(style_dim=32))
    ffa_ape = mg.ffa_ape
    t_max = 2.5 * ffa_ape.delta
    first, end = projection.clip_anchor_rows(ffa_ape, t_max)
    t = torch.linspace(0, t_max, 11).unsqueeze(0)
    w0 = torch.randn(1, mg.w_dim)
    motion_z = ffa_ape.sample_motion_z(1, 4 * ffa_ape.delta)
    base = mg(w0, t, motion_z=motion_z)

    def changed(row: int) -> bool:
        z = motion_z.clone()
        z[:, row] += 1
        return not torch.equal(mg(w0, t, motion_z=z), base)

    outside = list(range(first)) + list(range(end, motion_z.shape[1]))
    assert not any(changed(row) for row in outside)
    assert changed(end - 1) and changed(first)
    assert first == (1 if use_ffa_ape else 0)


# The gradient of each step is accumulated over time windows: any window size gives the same optimisation (up to
# float rounding), so long clips cost bounded memory without changing the result.
def test_time_windows_do_not_change_the_projection(nets):
    vg = vgen.VideoGenerator(nets["G"], nets["motion_generator_ema"])
    clip = vg.frames(vg.w0_for_seeds([1]), vg.motion_z_for_seeds([2], T - 1), vgen.video_times(T))[0]
    results = [projection.project_video(vg, clip, projection.ProjectionConfig(w0_steps=2, motion_steps=4,
                                                                              window=window), progress=False)
               for window in (T, 3)]
    np.testing.assert_allclose(results[0].losses["motion"], results[1].losses["motion"], rtol=1e-4)
    # Adam divides by the gradient's magnitude, so rounding in near-zero gradients shows more in the parameters.
    assert torch.allclose(results[0].motion_z, results[1].motion_z, atol=1e-3)
    assert torch.allclose(results[0].w0, results[1].w0, atol=1e-3)


# Deterministic for a seed, with LPIPS in the loss when a network is given (random weights stand in for the
# published files), per-frame LPIPS reported; another seed starts from other noise.
def test_projection_is_deterministic_and_uses_lpips(nets):
    vg = vgen.VideoGenerator(nets["G"], nets["motion_generator_ema"], nets["encoder"])
    clip = vg.frames(vg.w0_for_seeds([1]), vg.motion_z_for_seeds([2], T - 1), vgen.video_times(T))[0]
    torch.manual_seed(0)
    lpips = freeze(LPIPS("alex", pretrained=False))
    config = projection.ProjectionConfig(w0_steps=2, motion_steps=3, seed=4)
    first, second = (projection.project_video(vg, clip, config, lpips=lpips, progress=False) for _ in range(2))
    assert torch.equal(first.motion_z, second.motion_z) and torch.equal(first.reconstruction, second.reconstruction)
    assert first.lpips.shape == (T,)
    expected = lpips(to_float(first.reconstruction), to_float(clip))
    assert torch.allclose(first.lpips, expected.flatten(), atol=1e-5)
    no_lpips = projection.project_video(vg, clip, config, progress=False)
    assert no_lpips.lpips is None and no_lpips.losses["w0"] != first.losses["w0"]
    other = projection.project_video(vg, clip, projection.ProjectionConfig(w0_steps=2, motion_steps=3, seed=5),
                                     lpips=lpips, progress=False)
    assert not torch.equal(other.motion_z, first.motion_z)


# The extension keeps the projected rows and continues the initial draw of the seed past them.
def test_extend_motion_z_keeps_rows_and_continues_the_seed():
    z_dim = 4
    projected = torch.randn(1, 5, z_dim)
    extended = projection.extend_motion_z(projected, 9, seed=7)
    assert extended.shape == (1, 9, z_dim)
    assert torch.equal(extended[:, :5], projected)
    assert torch.equal(extended[:, 5:], vgen.seed_motion_z(7, 9, z_dim)[:, 5:])
    assert projection.extend_motion_z(projected, 3, seed=7) is projected


def test_motion_prior_is_zero_on_unit_mean_square_rows():
    rows = torch.tensor([[[1.0, -1.0, 1.0, -1.0], [2.0, 0.0, 0.0, 0.0]]])  # Mean squares 1 and 1.
    assert float(projection.motion_prior(rows)) == 0
    assert float(projection.motion_prior(2 * rows)) == pytest.approx(9.0)  # Mean squares 4: (4 - 1)^2.


# A saturated target pixel accepts any value past the bound (it displays the same); others are compared unclamped.
def test_frame_loss_clamps_only_where_the_target_is_saturated():
    x = torch.tensor([1.0, -1.0, 0.5, 0.5]).reshape(1, 1, 2, 2)
    y = torch.tensor([1.7, -1.2, 1.5, 0.5]).reshape(1, 1, 2, 2)
    assert float(projection.frame_loss(y, x)) == pytest.approx(1.0 / 4)  # Only the third pixel: (1.5 - 0.5)^2.


@pytest.mark.parametrize("frames, message", [
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "at least 2"),
    (torch.zeros(4, 1, 32, 32, dtype=torch.uint8), "1 channel"),
    (torch.zeros(4, 3, 16, 16, dtype=torch.uint8), "16x16"),
    (torch.zeros(4, 3, 32, 32), "uint8"),
])
def test_bad_clips_get_clear_errors(nets, frames, message):
    vg = vgen.VideoGenerator(nets["G"], nets["motion_generator_ema"])
    with pytest.raises(ValueError, match=message):
        projection.project_video(vg, frames, progress=False)
