"""Tests for torch_utils/ops/modulated_conv.py: StyleGAN2 Eq. 1-3 written per sample, fused == non-fused, grads."""

import itertools

import pytest
import torch

from tests.torch_utils.test_conv2d_resample import naive_conv2d_resample
from torch_utils.ops import upfirdn2d as ufd
from torch_utils.ops.modulated_conv import demodulation_coefficients, modulated_conv2d


# Eq. 1-3 sample by sample: w' = w * s_n (per input channel), demodulate each output channel to unit norm
# (eps 1e-8), convolve with the naive conv2d_resample, add noise.
def naive_modulated_conv2d(x, weight, styles, noise, up, down, padding, f, demodulate, flip_weight):
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        y = naive_conv2d_resample(x[n:n + 1], w, f, up, down, padding, 1, flip_weight, False)
        out.append(y if noise is None else y + noise[n:n + 1])
    return torch.cat(out)


def _inputs(up, down, batch=2, cin=3, cout=4, k=3, res=6):
    torch.manual_seed(0)
    x = torch.randn(batch, cin, res, res, dtype=torch.float64)
    weight = torch.randn(cout, cin, k, k, dtype=torch.float64)
    styles = torch.randn(batch, cin, dtype=torch.float64) + 1
    out_res = res * up // down
    noise = torch.randn(batch, 1, out_res, out_res, dtype=torch.float64)
    return x, weight, styles, noise


@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
def test_matches_naive_per_sample(up, down):
    f = ufd.setup_filter([1, 3, 3, 1]).double()
    x, weight, styles, noise = _inputs(up, down)
    for demodulate, fused, with_noise, flip_weight in itertools.product([True, False], repeat=4):
        n = noise if with_noise else None
        y = modulated_conv2d(x, weight, styles, noise=n, up=up, down=down, padding=1, resample_filter=f,
                             demodulate=demodulate, flip_weight=flip_weight, fused_modconv=fused)
        expected = naive_modulated_conv2d(x, weight, styles, n, up, down, 1, f, demodulate, flip_weight)
        label = f"demod={demodulate} fused={fused} noise={with_noise} flip={flip_weight}"
        torch.testing.assert_close(y, expected, msg=lambda m, label=label: f"{label}: {m}")


def test_demodulation_coefficients_match_explicit_per_sample_weights():
    # The matmul form against Eq. 3 on the full [N, O, I, kh, kw] tensor, in float64 (non-square kernel).
    torch.manual_seed(0)
    weight = torch.randn(5, 4, 3, 2, dtype=torch.float64)
    styles = torch.randn(3, 4, dtype=torch.float64)
    w = weight.unsqueeze(0) * styles.reshape(3, 1, 4, 1, 1)
    expected = 1 / (w.square().sum(dim=[2, 3, 4]) + 1e-8).sqrt()
    torch.testing.assert_close(demodulation_coefficients(weight, styles), expected, rtol=1e-12, atol=0)
    tiny = torch.zeros(2, 4, dtype=torch.float64)  # zero styles: only the epsilon is left
    torch.testing.assert_close(demodulation_coefficients(weight, tiny), torch.full((2, 5), 1e4, dtype=torch.float64))


# Without autograd the non-fused path demodulates and adds the noise in place on the conv output: the values must
# equal the autograd path's exactly, and the inputs must stay untouched.
@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
def test_no_grad_path_matches_autograd_path(up, down):
    f = ufd.setup_filter([1, 3, 3, 1])
    x, weight, styles, noise = (t.float() for t in _inputs(up, down))
    x = x.contiguous(memory_format=torch.channels_last)
    for demodulate, with_noise in itertools.product([True, False], repeat=2):
        n = noise if with_noise else None
        kwargs = dict(up=up, down=down, padding=1, resample_filter=f, demodulate=demodulate, fused_modconv=False)
        saved = [t.clone() for t in (x, weight, styles, noise)]
        with torch.no_grad():
            fast = modulated_conv2d(x, weight, styles, noise=n, **kwargs)
        slow = modulated_conv2d(x, weight.clone().requires_grad_(True), styles, noise=n, **kwargs)
        assert slow.requires_grad and torch.equal(fast, slow.detach()), f"demod={demodulate} noise={with_noise}"
        assert all(torch.equal(a, b) for a, b in zip(saved, (x, weight, styles, noise)))
    # Noise with a larger batch than x broadcasts the output up (so it cannot be written into x).
    with torch.no_grad():
        y = modulated_conv2d(x[:1], weight, styles[:1], noise=noise, up=up, down=down, padding=1, resample_filter=f,
                             fused_modconv=False)
    expected = naive_modulated_conv2d(x[:1].double(), weight.double(), styles[:1].double(), None, up, down, 1,
                                      f.double(), True, True) + noise.double()
    torch.testing.assert_close(y.double(), expected, rtol=1e-4, atol=1e-4)


def test_demodulated_output_channels_have_unit_weight_norm():
    # With a 1x1 kernel and a one-hot input pixel, each output equals the demodulated weight of that input.
    weight = torch.randn(5, 3, 1, 1, dtype=torch.float64)
    styles = torch.rand(1, 3, dtype=torch.float64) + 0.5
    x = torch.zeros(1, 3, 3, 3, dtype=torch.float64)
    x[0, :, 1, 1] = 1
    y = torch.stack([modulated_conv2d(x * (torch.arange(3) == i).reshape(1, 3, 1, 1), weight, styles)[0, :, 1, 1]
                     for i in range(3)], dim=1)  # [out, in]
    torch.testing.assert_close(y.square().sum(dim=1), torch.ones(5, dtype=torch.float64))


def test_float16_prenormalisation_matches_float32():
    x, weight, styles, noise = (t.float() for t in _inputs(1, 1))
    styles = styles * 1000  # large styles: the products would lose range in fp16 without pre-normalisation
    y32 = modulated_conv2d(x, weight, styles, noise=noise, padding=1, fused_modconv=False)
    y16 = modulated_conv2d(x.half(), weight, styles, noise=noise, padding=1, fused_modconv=False)
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=2e-2, atol=2e-2)


def test_wrong_style_shape_names_the_dimension():
    x, weight, styles, _ = _inputs(1, 1)
    with pytest.raises(AssertionError, match="styles.*dimension 1"):
        modulated_conv2d(x, weight, styles[:, :2])


@pytest.mark.parametrize("fused, up, down", [(True, 1, 1), (False, 1, 1), (True, 2, 1), (False, 1, 2)])
def test_gradcheck_and_gradgradcheck(fused, up, down):
    f = ufd.setup_filter([1, 3, 3, 1])
    x, weight, styles, noise = _inputs(up, down, batch=2, cin=2, cout=2, res=4)
    inputs = tuple(t.requires_grad_(True) for t in (x, weight, styles))
    fn = lambda x, w, s: modulated_conv2d(x, w, s, noise=noise, up=up, down=down, padding=1, resample_filter=f,
                                          fused_modconv=fused)
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)
