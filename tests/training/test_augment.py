"""Tests for training/augment.py: each transform against an analytic expectation, video consistency, gradients, ADA."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.augment import (
    AUGMENT_PRESETS,
    AdaptiveAugment,
    AugmentPipe,
    apply_geometric,
    augment_pipe_from_preset,
    filter_bank,
    lanczos_2x_filter,
)


def _pipe(p=1.0, **kw) -> AugmentPipe:
    pipe = AugmentPipe(**kw)
    pipe.p.fill_(p)
    return pipe


# Smooth random images (bicubic upsampling of a coarse grid), so resampling filters barely change them.
def _smooth(n, c=3, size=32, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.randn(n, c, 4, 4, generator=g), size=size, mode="bicubic", align_corners=False)


def test_presets():
    bgc = AUGMENT_PRESETS["bgc"]
    assert set(bgc) == {"xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                        "lumaflip", "hue", "saturation"} and set(bgc.values()) == {1}  # SPEC 4.4
    for name in ("blit", "geom", "color", "filter", "noise", "cutout", "bgcf", "bgcfn", "bgcfnc"):
        assert name in AUGMENT_PRESETS
    assert set(AUGMENT_PRESETS["bgcfnc"]) - set(bgc) == {"imgfilter", "noise", "cutout"}
    pipe = augment_pipe_from_preset("bgc")
    assert pipe.init_kwargs["hue"] == 1 and pipe.init_kwargs["imgfilter"] == 0 and float(pipe.p) == 0
    assert list(pipe.state_dict()) == ["p"]
    buf = io.BytesIO()
    torch.save(pipe.init_kwargs, buf)
    buf.seek(0)
    assert AugmentPipe(**torch.load(buf, weights_only=True)).init_kwargs == pipe.init_kwargs
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        augment_pipe_from_preset("xyz")


def test_p_zero_is_identity():
    x = torch.randn(4, 6, 16, 16)
    assert torch.equal(augment_pipe_from_preset("bgcfnc")(x, num_frames=2), x)


def test_video_consistency():
    torch.manual_seed(0)
    pipe = augment_pipe_from_preset("bgcfnc")
    pipe.p.fill_(1)
    frame = _smooth(1, size=16)
    x = torch.cat([frame, _smooth(1, size=16, seed=1), frame], 1).repeat(4, 1, 1, 1)  # frames A, B, A per video
    y = pipe(x, num_frames=3)
    assert torch.equal(y[:, 0:3], y[:, 6:9])  # identical frames stay identical
    assert not torch.allclose(y[:, 0:3], y[:, 3:6])
    for i in range(1, 4):  # identical videos get different transforms
        assert (y[0] - y[i]).abs().max() > 0.1
    torch.manual_seed(1)
    y4 = pipe(x, num_frames=3)
    torch.manual_seed(1)
    y5 = pipe(x.reshape(4, 3, 3, 16, 16))
    assert y5.shape == (4, 3, 3, 16, 16) and torch.equal(y5.reshape(y4.shape), y4)
    with pytest.raises(ValueError, match="num_frames"):
        pipe(x, num_frames=2)


def _match(y, candidates, tol):
    return min((y - c).abs().max().item() for c in candidates) < tol


def test_blit_transforms_match_flips_rotations_and_shifts():
    torch.manual_seed(0)
    x = _smooth(16)
    y = _pipe(xflip=1)(x)
    assert all(_match(y[i], [x[i], x[i].flip(2)], 0.05) for i in range(16))
    assert not _match(y, [x], 0.05) and not _match(y, [x.flip(3)], 0.05)  # both outcomes occur
    y = _pipe(rotate90=1)(x)
    assert all(_match(y[i], [x[i].rot90(k, dims=(1, 2)) for k in range(4)], 0.05) for i in range(16))
    y = _pipe(xint=1)(x)
    padded = F.pad(x, [4, 4, 4, 4], mode="reflect")
    shifts = [(dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)]
    for i in range(16):
        assert _match(y[i], [padded[i, :, 4 + dy: 36 + dy, 4 + dx: 36 + dx] for dx, dy in shifts], 0.05)


def test_rotation_and_identity_preserve_a_centred_disc_blob():
    torch.manual_seed(0)
    c = (torch.arange(32) - 15.5) / 5
    blob = torch.exp(-(c[None, :] ** 2 + c[:, None] ** 2) / 2).expand(8, 3, 32, 32)
    y = _pipe(rotate=1)(blob)
    inscribed = (c[None, :] ** 2 + c[:, None] ** 2).sqrt() * 5 < 15  # corners sample the reflect padding
    assert (y - blob)[..., inscribed].abs().max() < 0.02 and (y - blob).abs().max() > 0.02
    y = _pipe(scale=1)(blob)  # isotropic scaling keeps the blob centred and radially symmetric
    assert (y - y.transpose(2, 3)).abs().max() < 0.02 and (y - y.flip(3)).abs().max() < 0.02


def test_geometric_result_of_a_sample_does_not_depend_on_the_rest_of_the_batch():
    # The pipe resamples only the transformed samples; the padding it computes from the batch must not matter.
    x = _smooth(4, seed=3)
    shift = torch.eye(3).repeat(4, 1, 1)
    shift[0, :2, 2] = torch.tensor([9.0, -7.0])  # a large shift widens the padding of the whole batch
    shift[1, :2, :2] = torch.tensor([[0.8, -0.6], [0.6, 0.8]])
    shift[2, 0, 2] = 0.5
    f = torch.tensor(lanczos_2x_filter(), dtype=torch.float32)
    whole = apply_geometric(x, shift, f)
    for i in range(1, 4):
        alone = apply_geometric(x[i:i + 1], shift[i:i + 1], f)
        assert torch.allclose(alone, whole[i:i + 1], atol=1e-5), i
    torch.manual_seed(1)
    y = _pipe(p=0.3, xint=1, rotate=1)(x.repeat(8, 1, 1, 1))
    unchanged = (y == x.repeat(8, 1, 1, 1)).flatten(1).all(1)
    assert 0 < unchanged.sum() < 32  # at p = 0.3 some samples pass through bit-exactly, others move


def test_color_transforms_analytic():
    torch.manual_seed(0)
    x = _smooth(8)
    d = _pipe(brightness=1)(x) - x  # a constant offset per sample
    assert torch.allclose(d, d.mean((1, 2, 3), keepdim=True).expand_as(d), atol=1e-5) and d.abs().amax() > 0.01
    y = _pipe(contrast=1)(x)  # a gain per sample
    gain = ((y * x).sum((1, 2, 3)) / x.square().sum((1, 2, 3)))[:, None, None, None]
    assert torch.allclose(y, gain * x, atol=1e-5) and (gain - 1).abs().max() > 0.01
    gray = x[:, :1].expand(8, 3, 32, 32)
    for kw in (dict(hue=1), dict(saturation=1)):  # gray pixels lie on the luma axis
        assert torch.allclose(_pipe(**kw)(gray), gray, atol=1e-5)
    y = _pipe(lumaflip=1)(gray)
    assert all(_match(y[i], [gray[i], -gray[i]], 1e-5) for i in range(8))
    for kw in (dict(hue=1), dict(saturation=1)):  # rotating / scaling around the luma axis keeps r + g + b
        y = _pipe(**kw)(x)
        assert torch.allclose(y.sum(1), x.sum(1), atol=1e-4) and (y - x).abs().max() > 0.01
    y = _pipe(hue=1)(x)  # hue rotation keeps the chroma length
    chroma = lambda z: (z - z.mean(1, keepdim=True)).norm(dim=1)
    assert torch.allclose(chroma(y), chroma(x), atol=1e-4)
    one = x[:, :1]
    d = _pipe(brightness=1)(one) - one  # single-channel images work too
    assert torch.allclose(d, d.mean((1, 2, 3), keepdim=True).expand_as(d), atol=1e-5)


def test_image_filter_bank_and_transform():
    bank = filter_bank()
    delta = np.zeros(bank.shape[1])
    delta[bank.shape[1] // 2] = 1
    assert np.allclose(bank.sum(0), delta)
    resp = np.abs(np.fft.rfft(bank, n=256, axis=1))  # frequency 0 ... 1/2 in 129 bins
    assert resp[0, 0] == pytest.approx(1) and resp[1:, 0] == pytest.approx(0, abs=1e-9)
    assert resp[3, -1] == pytest.approx(1, abs=0.01) and np.all(resp[:3, -1] < 0.01)
    assert np.argmax(resp, axis=0)[[8, 24, 48, 120]].tolist() == [0, 1, 2, 3]  # bands ordered low -> high
    torch.manual_seed(0)
    const = torch.full((4, 3, 16, 16), 0.3)
    y = _pipe(imgfilter=1)(const)
    assert torch.allclose(y, y[:, :, :1, :1].expand_as(y), atol=1e-5)  # constants stay constant
    x = _smooth(4, size=16)
    assert not torch.allclose(_pipe(imgfilter=1)(x), x, atol=1e-3)


def test_noise_and_cutout():
    torch.manual_seed(0)
    x = torch.zeros(8, 3, 16, 16)
    y = _pipe(noise=1)(x)
    assert 0 < y.std(dim=(1, 2, 3)).max() < 0.5
    ones = torch.ones(16, 3, 16, 16)
    y = _pipe(cutout=1)(ones)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    for i in range(16):
        rows, cols = torch.nonzero(y[i, 0] == 0, as_tuple=True)
        assert len(rows) > 0 and torch.equal(y[i, 0], y[i, 2])
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h <= 8 and w <= 8 and len(rows) == h * w  # one axis-aligned square of side <= size/2


def test_gradgradcheck_through_the_pipe():
    pipe = augment_pipe_from_preset("bgcfnc").double()
    pipe.p.fill_(1)
    x = torch.randn(1, 6, 8, 8, dtype=torch.float64, requires_grad=True)

    def fn(inp):
        torch.manual_seed(3)  # the same random transform on every evaluation
        return pipe(inp, num_frames=2)
    assert (fn(x) - x).abs().max() > 0.1
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_adaptive_p_moves_in_the_right_direction():
    pipe = augment_pipe_from_preset("bgc")
    ada = AdaptiveAugment(pipe, target=0.6, ada_kimg=500, interval=4)
    step = 32 * 4 / (500 * 1000)
    for _ in range(8):
        ada.accumulate(torch.ones(32, 1))  # E[sign] = 1 > 0.6 -> p grows
        ada.update(32)
    assert float(pipe.p) == pytest.approx(2 * step)
    for _ in range(4):
        ada.accumulate(-torch.ones(32, 1))
        ada.update(32)
    assert float(pipe.p) == pytest.approx(step)
    for _ in range(8):
        ada.accumulate(-torch.ones(32, 1))
        ada.update(32)
    assert float(pipe.p) == 0  # clamped at 0
    for _ in range(2):
        ada.accumulate(torch.tensor([1.0, 1, 1, -1]))  # E[sign] = 0.5 < 0.6 -> would decrease
        ada.update(32)
    state = ada.state_dict()
    assert all(isinstance(v, (int, float, type(None))) for v in state.values())
    resumed = AdaptiveAugment(augment_pipe_from_preset("bgc"))
    resumed.load_state_dict(state)
    for a in (ada, resumed):
        for _ in range(2):
            a.accumulate(torch.ones(4))
            a.update(32)
    assert float(resumed.pipe.p) == float(pipe.p) == pytest.approx(step)  # 6 of 8 positive: 0.5 -> 1.0 mean


def test_adaptive_update_under_torch_distributed(tmp_path):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        pipe = augment_pipe_from_preset("bgc")
        ada = AdaptiveAugment(pipe, interval=1)
        ada.accumulate(torch.ones(8))
        ada.update(64)
        assert float(pipe.p) == pytest.approx(64 / 500_000)
    finally:
        dist.destroy_process_group()
