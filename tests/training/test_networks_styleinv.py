"""Tests for the StyleInV motion generator: FFA-APE properties, temporal style, modulated encoder, initialisation."""

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.networks_encoder import IRSEBackbone, WEncoder
from training.networks_styleinv import AdainResBlock, FirstFrameAwareAPE, MotionConv1d, MotionGenerator

W_DIM = 32
NUM_WS = 6
DELTA = 4
MOTION = dict(z_dim=16, v_dim=16, time_enc_dim=8, motion_z_distance=DELTA, kernel_size=11, min_period_len=4,
              max_period_len=32, max_num_frames=32)
BACKBONE = dict(units_per_stage=[1, 1, 1, 1], stage_channels=[8, 8, 16, 16])
RES = 32


def make_generator(seed=0, **kwargs) -> MotionGenerator:
    torch.manual_seed(seed)
    args = dict(w_dim=W_DIM, num_ws=NUM_WS, encoder_kwargs=BACKBONE, motion_kwargs=MOTION)
    return MotionGenerator(**{**args, **kwargs})


def make_ape(first_frame_aware=True, **kwargs) -> FirstFrameAwareAPE:
    return FirstFrameAwareAPE(**{**MOTION, **kwargs}, first_frame_aware=first_frame_aware)


def random_inputs(n=2, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(n, W_DIM, generator=g, dtype=dtype)
    x0 = torch.randn(n, 3, RES, RES, generator=g, dtype=dtype).tanh()
    return w0, x0


# ----------------------------------------------------------------------------------------------------------
# Slow reference of FFA-APE written from the spec (SPEC 1.2-1.5): the release's 11-tap kernel with its right half
# masked and zero padding 5 on both sides, then per-frame python loops for the aligned Fourier encoding.


def reference_ape(ape: FirstFrameAwareAPE, motion_z: torch.Tensor, t: torch.Tensor, ffa: bool) -> torch.Tensor:
    ks, lr, delta = 11, 0.01, MOTION["motion_z_distance"]
    z = motion_z.double().clone()
    if ffa:
        z[:, 0] = ape.c0.detach().double()
    x = z.transpose(1, 2)
    for conv in (ape.conv0, ape.conv1):
        cin, weight, bias = x.shape[1], conv.weight.detach().double(), conv.bias.detach().double() * lr
        if ffa:
            kernel = torch.zeros(weight.shape[0], cin, ks, dtype=torch.float64)
            kernel[:, :, : (ks + 1) // 2] = weight
            x = F.conv1d(x, kernel * lr / math.sqrt(cin * ks), bias, padding=ks // 2)
        else:
            x = F.conv1d(x, weight * lr / math.sqrt(cin * ks), bias)
        x = F.leaky_relu(x, 0.2)
    u = x.transpose(1, 2)
    dim = MOTION["time_enc_dim"]
    periods = 2.0 ** np.linspace(np.log2(MOTION["min_period_len"]), np.log2(MOTION["max_period_len"]), dim)
    omega = torch.tensor((2 * np.pi / periods)[::-1].copy())
    scales = torch.tensor((MOTION["max_period_len"] / periods)[::-1].copy())
    enc = ape.time_encoder

    def fc(layer, x):  # Equalised linear, no bias, gain 1/sqrt(in).
        return x @ (layer.weight.detach().double() / math.sqrt(x.shape[0])).T

    out = torch.empty(t.shape[0], t.shape[1], 2 * dim, dtype=torch.float64)
    for n in range(t.shape[0]):
        for j in range(t.shape[1]):
            tt = float(t[n, j])
            k, alpha = int(tt // delta), (tt % delta) / delta
            t_l = tt - tt % delta
            u_l, u_r = u[n, k], u[n, k + 1]
            rho, phi = torch.tanh(fc(enc.periods_predictor, u_l)) + 1, fc(enc.phase_predictor, u_l)
            pe = [torch.cat([torch.sin(a), torch.cos(a)]) for a in
                  (omega * rho * tau + phi * scales for tau in (tt, t_l, t_l + delta))]
            aligned = (1 - alpha) * fc(enc.aligners_predictor, u_l) + alpha * fc(enc.aligners_predictor, u_r)
            out[n, j] = pe[0] - ((1 - alpha) * pe[1] + alpha * pe[2]) + aligned
    return out


@pytest.mark.parametrize("ffa", [True, False])
def test_ffa_ape_matches_reference_formula(ffa):
    torch.manual_seed(0)
    ape = make_ape(first_frame_aware=ffa).double()
    t = torch.tensor([[0.0, 0.3, 3.999, 4.0, 9.25, 31.0], [17.5, 2.0, 0.0, 26.75, 12.0, 8.5]], dtype=torch.float64)
    motion_z = ape.sample_motion_z(2, 31.0)
    with torch.no_grad():
        v = ape(motion_z, t)
    torch.testing.assert_close(v, reference_ape(ape, motion_z, t, ffa), rtol=1e-5, atol=1e-5)  # float32 freqs


def test_default_anchor_counts_follow_spec():
    # SPEC 1.2: L = ceil(max(127, t_max)/delta) + 2 -> 10 for delta 16, 3 for delta 128; +20 for original APE.
    assert FirstFrameAwareAPE(motion_z_distance=16).num_anchors(127) == 10
    assert FirstFrameAwareAPE(motion_z_distance=128).num_anchors(127) == 3
    assert FirstFrameAwareAPE(motion_z_distance=16, first_frame_aware=False).num_anchors(127) == 30
    assert FirstFrameAwareAPE(motion_z_distance=16).sample_motion_z(3, 10_000).shape == (3, 627, 512)


def test_causal_conv_equals_masked_symmetric_conv():
    torch.manual_seed(0)
    conv = MotionConv1d(5, 7, kernel_size=11, causal=True).double()
    x = torch.randn(2, 5, 13, dtype=torch.float64)
    kernel = torch.zeros(7, 5, 11, dtype=torch.float64)
    kernel[:, :, :6] = conv.weight.detach()
    expected = F.leaky_relu(F.conv1d(x, kernel * 0.01 / math.sqrt(5 * 11), conv.bias.detach() * 0.01, padding=5), 0.2)
    torch.testing.assert_close(conv(x), expected)
    assert conv.weight.shape[-1] == 6


# ----------------------------------------------------------------------------------------------------------
# FFA property (Sec. 3.3, Fig. 4/11).


def test_v0_fixed_for_any_motion_noise_with_ffa_ape():
    torch.manual_seed(0)
    ape = make_ape()
    t = torch.zeros(3, 1)
    v_a = ape(torch.randn(3, 10, 16), t)
    v_b = ape(torch.randn(3, 10, 16) * 5, t)
    torch.testing.assert_close(v_a, v_b, rtol=0, atol=0)
    torch.testing.assert_close(v_a[0], v_a[1], rtol=0, atol=0)
    # v_0 = A u_0 (the Fourier residual vanishes at an anchor) and u_0 depends only on c0, pads and biases.
    u0 = ape.anchor_codes(torch.randn(1, 10, 16))[:, 0]
    torch.testing.assert_close(v_a[:1, 0], ape.time_encoder.aligners_predictor(u0))


def test_v0_depends_on_noise_with_original_ape():
    torch.manual_seed(0)
    ape = make_ape(first_frame_aware=False)
    t = torch.zeros(1, 1)
    z = ape.sample_motion_z(1, 0)
    v_a, v_b = ape(z, t), ape(torch.randn_like(z), t)
    assert (v_a - v_b).abs().max() > 1e-3


@pytest.mark.parametrize("train", [True, False])
def test_first_frame_latent_fixed_for_any_motion_noise(train):
    mg = make_generator().train(train)
    w0, x0 = random_inputs(n=3)
    t = torch.zeros(3, 1)
    with torch.no_grad():
        w_a = mg(w0, t, motion_z=mg.sample_motion_z(3, 0), x0=x0)
        w_b = mg(w0, t, motion_z=mg.sample_motion_z(3, 0), x0=x0)
    torch.testing.assert_close(w_a, w_b, rtol=0, atol=0)
    assert w_a.shape == (3, 1, W_DIM)


def test_first_frame_latent_depends_on_noise_without_ffa_ape():
    mg = make_generator(use_ffa_ape=False).eval()
    w0, x0 = random_inputs(n=2)
    t = torch.zeros(2, 1)
    with torch.no_grad():
        w_a = mg(w0, t, motion_z=mg.sample_motion_z(2, 0), x0=x0)
        w_b = mg(w0, t, motion_z=mg.sample_motion_z(2, 0), x0=x0)
    assert (w_a - w_b).abs().max() > 1e-6


def test_v_at_anchor_equals_aligned_code():
    torch.manual_seed(0)
    ape = make_ape()
    z = ape.sample_motion_z(1, 31)
    u = ape.anchor_codes(z)
    t = torch.tensor([[0.0, 4.0, 8.0, 20.0]])
    expected = ape.time_encoder.aligners_predictor(u[0, [0, 1, 2, 5]])
    torch.testing.assert_close(ape(z, t)[0], expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# Causality and non-autoregressive sampling.


def test_anchor_conv_is_causal():
    torch.manual_seed(0)
    ape = make_ape()
    z = ape.sample_motion_z(2, 31)
    for j in (1, 4, 9):
        z2 = z.clone()
        z2[:, j] += 3.0
        u, u2 = ape.anchor_codes(z), ape.anchor_codes(z2)
        torch.testing.assert_close(u[:, :j], u2[:, :j], rtol=0, atol=0)
        assert (u[:, j] - u2[:, j]).abs().max() > 1e-6


def test_original_ape_conv_looks_ahead():
    torch.manual_seed(0)
    ape = make_ape(first_frame_aware=False)
    z = ape.sample_motion_z(1, 31)
    z2 = z.clone()
    z2[:, 5] += 3.0
    assert (ape.anchor_codes(z)[:, 0] - ape.anchor_codes(z2)[:, 0]).abs().max() > 1e-6


def test_frame_independent_of_other_requested_timestamps():
    mg = make_generator().eval()
    w0, x0 = random_inputs(n=2)
    z = mg.sample_motion_z(2, 31)
    t = torch.tensor([[0.0, 7.5, 13.0, 31.0], [2.25, 30.0, 0.0, 16.0]])
    with torch.no_grad():
        w_all = mg(w0, t, motion_z=z, x0=x0)
        w_rev = mg(w0, t.flip(1), motion_z=z, x0=x0).flip(1)
        singles = torch.cat([mg(w0, t[:, j:j + 1], motion_z=z, x0=x0) for j in range(4)], dim=1)
    torch.testing.assert_close(w_all, singles, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w_all, w_rev, rtol=1e-5, atol=1e-5)


def test_long_video_adds_anchors_and_reuses_motion_across_chunks():
    mg = make_generator().eval()
    w0, x0 = random_inputs(n=1)
    z_long = mg.sample_motion_z(1, 10_000)
    assert z_long.shape == (1, math.ceil(10_000 / DELTA) + 2, MOTION["z_dim"])
    t_long = torch.tensor([[0.0, 17.25, 5000.5, 9999.0, 10_000.0]])
    with torch.no_grad():
        w_long = mg(w0, t_long, motion_z=z_long, x0=x0)
        assert torch.isfinite(w_long).all()
        # The first chunk only needs the first anchors: same latents from the truncated noise (causal conv).
        t_chunk = torch.tensor([[0.0, 5.5, 17.25, 31.0]])
        w_a = mg(w0, t_chunk, motion_z=z_long, x0=x0)
        w_b = mg(w0, t_chunk, motion_z=z_long[:, : mg.ffa_ape.num_anchors(31)], x0=x0)
    torch.testing.assert_close(w_a, w_b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w_a[:, 2], w_long[:, 1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="sample_motion_z"):
        mg(w0, t_long, motion_z=z_long[:, :20], x0=x0)


def test_time_encoding_continuous_for_long_videos():
    # Angles of ~1e4 rad carry ~1e-3 rounding in float32; the step of v across the anchor at t = 10000 must still
    # match the float64 module's (the three PE terms of SPEC 1.5 cancel only if formed consistently).
    torch.manual_seed(0)
    ape = make_ape()
    z = ape.sample_motion_z(1, 10_000)
    t = torch.tensor([[10_000 - 1 / 128, 10_000.0, 5000 - 1 / 128, 5000.0]])
    with torch.no_grad():
        v32 = ape(z, t).double()
        v64 = copy.deepcopy(ape).double()(z.double(), t.double())
    step32, step64 = v32[:, 0::2] - v32[:, 1::2], v64[:, 0::2] - v64[:, 1::2]
    torch.testing.assert_close(step32, step64, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------------------------------------
# Continuity (SPEC 1.5) and fractional t.


def test_latents_continuous_in_t():
    mg = make_generator().double().eval()
    w0, x0 = random_inputs(n=1, dtype=torch.float64)
    z = mg.sample_motion_z(1, 31)
    times = [0.0, 4.0, 6.3, 12.0, 27.9]  # Anchors (multiples of 4) and points in between.
    with torch.no_grad():
        for t0 in times:
            for sign in (1, -1):
                if t0 == 0 and sign < 0:
                    continue
                ts = [t0] + [t0 + sign * eps for eps in (1e-2, 1e-4, 1e-6)]
                w = mg(w0, torch.tensor([ts], dtype=torch.float64), motion_z=z, x0=x0)[0]
                d = (w[1:] - w[0]).norm(dim=1)
                assert d[0] > 0, f"latent does not move near t={t0}"
                assert d[2] < 1e-2 * d[0] + 1e-12, f"jump at t={t0} ({sign:+d}): {d.tolist()}"


def test_fractional_t_gives_intermediate_latents():
    mg = make_generator().double().eval()
    w0, x0 = random_inputs(n=1, dtype=torch.float64)
    z = mg.sample_motion_z(1, 31)
    grid = torch.linspace(2.5, 5.5, 151, dtype=torch.float64)[None]  # Crosses the anchor at t = 4.
    with torch.no_grad():
        v = mg.ffa_ape(z, grid)[0]
        w = mg(w0, grid, motion_z=z, x0=x0)[0]
        v_steps, steps = (v[1:] - v[:-1]).norm(dim=1), (w[1:] - w[:-1]).norm(dim=1)
        assert v_steps.max() < 5 * v_steps.median(), "motion code path has a jump"
        # The largest step of w shrinks when its interval is sampled 50x finer: steep, but no jump.
        i = int(steps.argmax())
        fine = torch.linspace(float(grid[0, i]), float(grid[0, i + 1]), 51, dtype=torch.float64)[None]
        w_fine = mg(w0, fine, motion_z=z, x0=x0)[0]
    assert (w_fine[1:] - w_fine[:-1]).norm(dim=1).max() < 0.2 * steps[i]
    w3, w35, w4 = w[25], w[50], w[75]  # t = 3, 3.5, 4
    assert (w35 - w3).norm() > 1e-6 and (w35 - w4).norm() > 1e-6


# ----------------------------------------------------------------------------------------------------------
# Memory of a training step does not depend on max_dist (SPEC 1.7 sampling).


def sample_frame_times(rng, batch_size, max_dist, max_num_frames=128, num_sample=3):
    dists = [d for d in 2 ** np.arange(12) if num_sample - 1 <= d <= min(max_num_frames - 1, max_dist)]
    rows = []
    for _ in range(batch_size):
        d = int(rng.choice(dists))
        offset = rng.uniform() * (max_num_frames - d - 1)
        middle = int(rng.choice(np.arange(1, d)))
        rows.append([0.0, offset, offset + middle, offset + d])
    return torch.tensor(rows)


def saved_shape_recorder(saved: list):
    def pack(x):
        saved.append(tuple(x.shape))
        return x

    return pack


def test_training_step_shapes_independent_of_max_dist():
    mg = make_generator(motion_kwargs={**MOTION, "motion_z_distance": 16, "max_num_frames": 128}).train()
    w0, x0 = random_inputs(n=2)
    rng = np.random.default_rng(0)
    shapes = {}
    for max_dist in (32, 2048, 32, 2048):
        saved = []
        t = sample_frame_times(rng, 2, max_dist)
        pack = saved_shape_recorder(saved)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            w = mg(w0, t, x0=x0)
            loss = w.square().mean()
        loss.backward()
        shapes.setdefault(max_dist, []).append(sorted(saved))
    reference = shapes[32][0]
    assert all(s == reference for runs in shapes.values() for s in runs)
    assert mg.sample_motion_z(2, 127).shape[1] == 10


# ----------------------------------------------------------------------------------------------------------
# Temporal style and the modulated encoder.


def test_temporal_style_is_two_lrelu_fc_layers():
    mg = make_generator()
    ts = mg.temporal_style
    w0, v = torch.randn(5, W_DIM), torch.randn(5, 16)
    x = torch.cat([w0, v], dim=1)
    for layer in (ts.fc0, ts.fc1):
        w = layer.weight * 0.01 / math.sqrt(x.shape[1])
        x = F.leaky_relu(x @ w.T + layer.bias * 0.01, 0.2) * math.sqrt(2)
    torch.testing.assert_close(ts(w0, v), x, rtol=1e-5, atol=1e-5)


def test_adain_res_block_matches_formula():
    torch.manual_seed(0)
    block = AdainResBlock(6, 10).double()
    x, s = torch.randn(3, 6, 5, 5, dtype=torch.float64), torch.randn(3, 10, dtype=torch.float64)

    def adain(norm, h):
        gb = s @ (norm.fc.weight / math.sqrt(10)).T + norm.fc.bias
        gamma, beta = gb[:, :6, None, None], gb[:, 6:, None, None]
        mean = h.mean(dim=(2, 3), keepdim=True)
        var = h.var(dim=(2, 3), keepdim=True, unbiased=False)
        return (1 + gamma) * (h - mean) / torch.sqrt(var + 1e-5) + beta

    h = block.conv1(F.leaky_relu(adain(block.norm1, x), 0.2))
    h = block.conv2(F.leaky_relu(adain(block.norm2, h), 0.2))
    torch.testing.assert_close(block(x, s), (x + h) / math.sqrt(2))


def test_adain_parameter_count_matches_spec():
    # SPEC 2.2: the four AdaIN blocks of the full model (64/128/256/512 channels, style 512) add about 8.24 M.
    blocks = [AdainResBlock(c, 512) for c in (64, 128, 256, 512)]
    total = sum(p.numel() for b in blocks for p in b.parameters())
    expected = sum(2 * (9 * c * c + c) + 2 * (512 * 2 * c + 2 * c) for c in (64, 128, 256, 512))
    assert total == expected
    assert abs(total - 8.24e6) < 0.01e6


def test_encoder_runs_stem_once_per_video_like_repeated_input():
    mg = make_generator().train()
    enc_a, enc_b = mg.encoder, copy.deepcopy(mg.encoder)
    w0, x0 = random_inputs(n=2)
    s = torch.randn(2 * 3, W_DIM)
    out = enc_a(x0, s, 3)
    # Obvious version: repeat the first frame for every timestamp and run every unit on the full stack.
    x = enc_b.input_layer(x0.repeat_interleave(3, dim=0))
    for idx, unit in enumerate(enc_b.body):
        x = unit(x)
        if idx in enc_b.stage_ends:
            x = enc_b.adains[enc_b.stage_ends.index(idx)](x, s)
    expected = enc_b.linear(x.mean(dim=(2, 3)))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(enc_a.named_buffers(), enc_b.buffers(), strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-3, atol=1e-5, msg=name)


def test_adain_after_last_unit_of_each_stage():
    mg = make_generator()
    assert mg.encoder.stage_ends == [0, 1, 2, 3]
    assert [b.conv1.in_channels for b in mg.encoder.adains] == BACKBONE["stage_channels"]


# ----------------------------------------------------------------------------------------------------------
# Initialisation from the stage-2 encoder (SPEC 2.6).


def test_init_from_encoder_copies_backbone_and_head():
    mg = make_generator()
    torch.manual_seed(5)
    w_enc = WEncoder(w_dim=W_DIM, num_ws=NUM_WS, backbone_kwargs=BACKBONE)
    with torch.no_grad():
        for name, v in w_enc.state_dict().items():
            if v.is_floating_point():
                v.copy_(torch.rand_like(v) + 0.5 if "running_var" in name else torch.randn_like(v))
    fresh = {k: v.clone() for k, v in mg.state_dict().items()}
    missing = mg.init_from_encoder(w_enc)
    own = mg.state_dict()
    copied = {f"encoder.{k}" for k in w_enc.state_dict() if k != "w_avg"}
    for k, v in w_enc.state_dict().items():
        if k != "w_avg":
            assert torch.equal(own[f"encoder.{k}"], v), k
    assert set(missing) == set(own) - copied
    assert missing and all(k.startswith(("encoder.adains.", "ffa_ape.", "temporal_style.")) for k in missing)
    for k in missing:
        assert torch.equal(own[k], fresh[k]), k
    # A plain state dict (as read from a checkpoint) works the same.
    assert make_generator(seed=3).init_from_encoder(w_enc.state_dict()) == missing


def test_init_from_encoder_rejects_other_layouts():
    mg = make_generator()
    other = WEncoder(w_dim=W_DIM, num_ws=NUM_WS, backbone_kwargs=dict(BACKBONE, stage_channels=[8, 8, 16, 24]))
    with pytest.raises(ValueError, match="wrong shapes"):
        mg.init_from_encoder(other)
    with pytest.raises(ValueError, match="not in the StyleInV encoder"):
        mg.init_from_encoder({"body.0.extra": torch.zeros(1)})
    with pytest.raises(ValueError, match="skip_encoder"):
        make_generator(skip_encoder=True).init_from_encoder(other)


# ----------------------------------------------------------------------------------------------------------
# Ablations (Table 3).


def test_skip_encoder_gives_style_plus_w0():
    mg = make_generator(skip_encoder=True)
    assert mg.encoder is None and not any(k.startswith("encoder") for k in mg.state_dict())
    w0, _ = random_inputs(n=2)
    z = mg.sample_motion_z(2, 31)
    t = torch.tensor([[0.0, 3.0, 9.5], [1.0, 2.0, 30.0]])
    w = mg(w0, t, motion_z=z)  # No generator needed.
    v = mg.ffa_ape(z, t).flatten(0, 1)
    s = mg.temporal_style(w0.repeat_interleave(3, dim=0), v)
    torch.testing.assert_close(w, (s + w0.repeat_interleave(3, dim=0)).reshape(2, 3, W_DIM))


# ----------------------------------------------------------------------------------------------------------
# The frozen generator: x0 = G(w0) once per video, outside the module tree, gradients through G only.


class RecordingSynthesis(nn.Module):
    def __init__(self, w_dim, res):
        super().__init__()
        self.res = res
        self.proj = nn.Parameter(torch.randn(w_dim, 3 * res * res) / math.sqrt(w_dim))
        self.calls = []

    def forward(self, ws, noise_mode="random"):
        self.calls.append((tuple(ws.shape), noise_mode))
        assert torch.equal(ws, ws[:, :1].expand_as(ws)), "w0 must be broadcast to every layer"
        return torch.tanh(ws[:, 0] @ self.proj).reshape(-1, 3, self.res, self.res)


class RecordingGenerator(nn.Module):
    def __init__(self, w_dim=W_DIM, num_ws=NUM_WS, res=RES):
        super().__init__()
        self.w_dim, self.num_ws, self.img_resolution = w_dim, num_ws, res
        self.synthesis = RecordingSynthesis(w_dim, res)


def test_first_frame_synthesised_once_per_video():
    mg = make_generator().eval()
    G = RecordingGenerator()
    mg.attach_generator(G, noise_mode="const")
    w0, _ = random_inputs(n=3)
    t = torch.tensor([[0.0, 1.0, 2.0, 3.0]] * 3)
    z = mg.sample_motion_z(3, 3)
    with torch.no_grad():
        w = mg(w0, t, motion_z=z)
        x0 = G.synthesis(w0[:, None].repeat(1, NUM_WS, 1))
        expected = mg(w0, t, motion_z=z, x0=x0)
    assert G.synthesis.calls[0] == ((3, NUM_WS, W_DIM), "const")
    torch.testing.assert_close(w, expected)


def test_generator_kept_outside_module_tree():
    mg = make_generator()
    G = RecordingGenerator()
    n_params, keys = len(list(mg.parameters())), set(mg.state_dict())
    mg.attach_generator(G)
    assert len(list(mg.parameters())) == n_params and set(mg.state_dict()) == keys
    assert not any(p.requires_grad for p in G.parameters())
    ema = copy.deepcopy(mg)
    assert ema.generator is G and mg.generator is G
    with pytest.raises(ValueError, match="num_ws"):
        mg.attach_generator(RecordingGenerator(num_ws=NUM_WS + 1))
    with pytest.raises(ValueError, match="noise_mode"):
        mg.attach_generator(G, noise_mode="fixed")
    with pytest.raises(RuntimeError, match="attach_generator"):
        make_generator()(torch.zeros(1, W_DIM), torch.zeros(1, 1))


def test_forward_backward_through_frozen_tiny_generator():
    from training.networks_stylegan2 import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=W_DIM, c_dim=0, w_dim=W_DIM, img_resolution=RES, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=16))
    G.requires_grad_(False)
    mg = make_generator(num_ws=G.num_ws).train()
    mg.attach_generator(G, noise_mode="const")
    with torch.no_grad():
        w0 = G.mapping(torch.randn(2, W_DIM), None)[:, 0]
    t = torch.tensor([[0.0, 3.5, 9.0, 20.0], [0.0, 1.0, 17.25, 31.0]])
    w = mg(w0, t)
    assert w.shape == (2, 4, W_DIM)
    frames = G.synthesis(w.reshape(-1, 1, W_DIM).repeat(1, G.num_ws, 1), noise_mode="const")
    frames.square().mean().backward()
    assert all(p.grad is None for p in G.parameters())
    grads = dict((k, p.grad) for k, p in mg.named_parameters())
    bad = [k for k, g in grads.items() if g is None or not torch.isfinite(g).all()]
    assert not bad, bad
    for name in ("ffa_ape.c0", "ffa_ape.conv0.weight", "ffa_ape.time_encoder.aligners_predictor.weight",
                 "temporal_style.fc0.weight", "encoder.adains.0.norm1.fc.weight", "encoder.adains.3.conv2.weight",
                 "encoder.body.1.res_layer.1.weight", "encoder.input_layer.0.weight", "encoder.linear.weight"):
        assert grads[name].abs().sum() > 0, name


# ----------------------------------------------------------------------------------------------------------
# Public API details.


def test_motion_z_none_uses_global_rng():
    mg = make_generator().eval()
    w0, x0 = random_inputs(n=2)
    t = torch.tensor([[0.0, 5.0, 11.0], [0.0, 2.0, 30.0]])
    with torch.no_grad():
        torch.manual_seed(7)
        a = mg(w0, t, x0=x0)
        torch.manual_seed(7)
        b = mg(w0, t, x0=x0)
        torch.manual_seed(8)
        c = mg(w0, t, x0=x0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a[:, 1:] - c[:, 1:]).abs().max() > 1e-6


def test_init_kwargs_rebuild_same_network():
    mg = make_generator(use_ffa_ape=False, fuse_kwargs=dict(num_layers=3))
    kwargs = json.loads(json.dumps(mg.init_kwargs))
    rebuilt = MotionGenerator(**kwargs)
    rebuilt.load_state_dict(mg.state_dict(), strict=True)
    assert kwargs["use_ffa_ape"] is False and kwargs["encoder_kwargs"] == BACKBONE


def test_bad_inputs_raise_clear_errors():
    mg = make_generator()
    w0, x0 = random_inputs(n=2)
    with pytest.raises(ValueError, match=">= 0"):
        mg(w0, torch.tensor([[0.0, -1.0], [0.0, 1.0]]), x0=x0)
    with pytest.raises(ValueError, match="t \\[N, T\\]"):
        mg(w0, torch.zeros(3, 2), x0=x0)
    with pytest.raises(ValueError, match="motion_z"):
        mg(w0, torch.zeros(2, 1), motion_z=torch.zeros(2, 10, 5), x0=x0)
    with pytest.raises(ValueError, match="t_max"):
        mg.sample_motion_z(2, float("nan"))
    with pytest.raises(ValueError, match="v_dim"):
        FirstFrameAwareAPE(v_dim=16, time_enc_dim=16)


def test_zero_residual_init_starts_every_frame_at_w0():
    torch.manual_seed(5)
    w_enc = WEncoder(w_dim=W_DIM, num_ws=NUM_WS, backbone_kwargs=BACKBONE)
    with torch.no_grad():
        for v in w_enc.parameters():
            v.copy_(torch.randn_like(v))
    kept, zeroed = make_generator(seed=2), make_generator(seed=2)
    assert kept.init_from_encoder(w_enc) == zeroed.init_from_encoder(w_enc, zero_residual=True)
    body = {k: v for k, v in w_enc.state_dict().items() if k.startswith(("input_layer.", "body."))}
    own = zeroed.state_dict()
    assert all(torch.equal(own[f"encoder.{k}"], v) for k, v in body.items())  # the backbone is still copied
    torch.manual_seed(0)
    w0, x0 = torch.randn(2, W_DIM), torch.randn(2, 3, RES, RES)
    t = torch.tensor([[0.0, 3.5, 17.0], [1.0, 9.0, 30.0]])
    assert torch.equal(zeroed(w0, t, x0=x0), w0.unsqueeze(1).expand(-1, 3, -1))
    assert (kept(w0, t, x0=x0) - w0.unsqueeze(1)).norm(dim=2).min() > 1e-3  # the stage-2 head moves w_t off w0


# On CPU from 128 px the motion generator's encoder runs in channels_last (IRSEBackbone.memory_format, re-applied
# after the repeat and after each AdaIN block): w_t, every weight gradient and the BatchNorm statistics equal a
# contiguous run's.
def test_cpu_channels_last_encoder_matches_contiguous(monkeypatch):
    w0, _ = random_inputs(n=2)
    x0 = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(4)) * 2 - 1
    t = torch.tensor([[0.0, 3.0, 5.0, 9.0], [0.0, 1.0, 8.0, 12.0]])
    runs = []
    for contiguous in (False, True):
        if contiguous:
            monkeypatch.setattr(IRSEBackbone, "memory_format", staticmethod(lambda x: torch.contiguous_format))
        mg = make_generator().train().requires_grad_(True)
        motion_z = mg.sample_motion_z(2, 12, generator=torch.Generator().manual_seed(2))
        layouts = []
        for m in [*mg.encoder.input_layer.modules(), *mg.encoder.body.modules()]:  # the AdaIN blocks' convs
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):           # take instance_norm's layout
                m.register_forward_pre_hook(
                    lambda _, inp, out=layouts: out.append(inp[0].is_contiguous(memory_format=torch.channels_last)))
        w_t = mg(w0, t, motion_z=motion_z, x0=x0)
        w_t.square().sum().backward()
        runs.append((w_t, {n: p.grad for n, p in mg.named_parameters()}, dict(mg.encoder.named_buffers()), layouts))
    (w_t, grads, buffers, layouts), (w_t_c, grads_c, buffers_c, layouts_c) = runs
    assert all(layouts) and not any(layouts_c) and len(layouts) == len(layouts_c) > 8
    torch.testing.assert_close(w_t, w_t_c, rtol=1e-4, atol=1e-5)
    assert all(g is not None for g in grads.values())
    for name, grad in grads.items():
        ref = grads_c[name]  # weight gradients sum over every pixel: tolerance relative to their scale
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4 * max(1.0, ref.abs().max().item()), msg=name)
    for name, buf in buffers.items():
        torch.testing.assert_close(buf.float(), buffers_c[name].float(), rtol=1e-4, atol=1e-6, msg=name)
