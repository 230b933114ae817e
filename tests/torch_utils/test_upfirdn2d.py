"""Tests for torch_utils/ops/upfirdn2d.py against explicit zero insertion + padding + a per-tap filter sum."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import upfirdn2d as ufd

CUDA = torch.cuda.is_available()



# The obvious implementation: zero-insert by index assignment, pad/crop by copying the overlap, convolve by summing
# shifted copies (one per filter tap), keep every down-th pixel. A 1-D filter is separable = its outer product.
def naive_upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    (ux, uy), (dx, dy) = [(s, s) if isinstance(s, int) else s for s in (up, down)]
    if isinstance(padding, int):
        padding = [padding] * 4
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    x0, x1, y0, y1 = padding
    k = torch.ones(1, 1, dtype=x.dtype) if f is None else f.to(x.dtype)
    k = (torch.outer(k, k) if k.ndim == 1 else k) * gain
    k = k if flip_filter else k.flip([0, 1])  # true convolution = correlation with the flipped filter
    n, c, h, w = x.shape
    z = torch.zeros(n, c, h * uy, w * ux, dtype=x.dtype)
    z[:, :, ::uy, ::ux] = x
    hp, wp = h * uy + y0 + y1, w * ux + x0 + x1
    p = torch.zeros(n, c, hp, wp, dtype=x.dtype)  # p[j, i] = z[j - y0, i - x0] where that exists, else 0
    jlo, jhi, ilo, ihi = max(y0, 0), min(hp, h * uy + y0), max(x0, 0), min(wp, w * ux + x0)
    if jhi > jlo and ihi > ilo:
        p[:, :, jlo:jhi, ilo:ihi] = z[:, :, jlo - y0:jhi - y0, ilo - x0:ihi - x0]
    fh, fw = k.shape
    ho, wo = hp - fh + 1, wp - fw + 1
    if ho < 1 or wo < 1:
        return torch.zeros(n, c, 0, 0, dtype=x.dtype)  # empty output
    y = sum(k[ky, kx] * p[:, :, ky:ky + ho, kx:kx + wo] for ky in range(fh) for kx in range(fw))
    return y[:, :, ::dy, ::dx]


# Test filters, in float64 so that reference and naive results agree to rounding.
def _filters():
    torch.manual_seed(3)
    filters = {
        "binomial4": ufd.setup_filter([1, 3, 3, 1]),
        "random3x2": torch.randn(3, 2),
        "separable8": ufd.setup_filter([1, 2, 3, 4, 4, 3, 2, 1]),
        "separable5": ufd.setup_filter(torch.randn(5), separable=True, normalize=False),
    }
    return {"none": None, **{k: v.double() for k, v in filters.items()}}


@pytest.mark.parametrize("fname", list(_filters()))
def test_reference_matches_naive(fname):
    f = _filters()[fname]
    torch.manual_seed(0)
    x = torch.randn(1, 2, 9, 8, dtype=torch.float64)
    count = 0
    for up, down, padding, flip, gain in itertools.product([1, 2, (3, 1)], [1, 2, (1, 3)],
                                                           [0, 2, [1, 2], [1, -1, 2, 0], [-2, 3, 0, -1]],
                                                           [False, True], [1, 3.0]):
        expected = naive_upfirdn2d(x, f, up, down, padding, flip, gain)
        if min(expected.shape[2:]) < 1:
            continue
        torch.testing.assert_close(ufd.upfirdn2d(x, f, up, down, padding, flip, gain), expected)
        count += 1
    assert count > 100  # most of the 180 combinations give a non-empty output


# Symmetric non-negative padding runs through conv2d's own padding (and decimation through its stride); the rest
# through explicit pad/crop. Every variant, in float32 and channels_last too, against the naive definition.
@pytest.mark.parametrize("padding", [0, 3, [1, 2], [2, 2, 0, 0], [2, 1, 2, 1], [-1, -1, 2, 2], [-1, -1, -1, -1],
                                     [1, -1, 1, 1]])
def test_padding_variants_match_naive(padding):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    for fname, f in _filters().items():
        for up, down, channels_last in itertools.product([1, 2], [1, 2], [False, True]):
            expected = naive_upfirdn2d(x, f, up, down, padding, False, 2.0)
            if min(expected.shape[2:]) < 1:
                continue  # e.g. the 8-tap filter on the unpadded 7x6 input
            x32 = x.float().contiguous(memory_format=torch.channels_last) if channels_last else x.float()
            y = ufd.upfirdn2d(x32, None if f is None else f.float(), up, down, padding, False, 2.0)
            label = f"{fname} up={up} down={down} channels_last={channels_last}"
            torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5,
                                       msg=lambda m, label=label: f"{label}: {m}")


def test_output_never_shares_memory_with_input():
    # Callers may update the result in place (modulated_conv2d does without autograd).
    x = torch.randn(1, 2, 5, 5)
    for f, padding, gain in [(None, 0, 1), (None, [1, 1, 1, 1], 1), (None, -1, 1), (None, 0, 2.0),
                             (ufd.setup_filter([1, 3, 3, 1]), 2, 1)]:
        y = ufd.upfirdn2d(x, f, padding=padding, gain=gain)
        assert y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


def test_empty_output_raises():
    with pytest.raises(ValueError, match="empty"):
        ufd.upfirdn2d(torch.zeros(1, 1, 2, 2), ufd.setup_filter([1, 3, 3, 1]), padding=-1)


@pytest.mark.parametrize("bad, match", [
    ({"up": 0}, "up"), ({"down": [1, 2, 3]}, "down"), ({"padding": [1, 2, 3]}, "padding"),
])
def test_bad_arguments_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        ufd.upfirdn2d(torch.zeros(1, 1, 4, 4), None, **bad)


def test_setup_filter():
    f = ufd.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    torch.testing.assert_close(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    assert ufd.setup_filter([1, 2, 3, 4, 4, 3, 2, 1]).shape == (8,)  # >= 8 taps: separable by default
    assert ufd.setup_filter([1, 2, 3, 4, 4, 3, 2, 1], separable=False).shape == (8, 8)
    torch.testing.assert_close(ufd.setup_filter([1, 2, 3], gain=4).sum(), torch.tensor(4.0))
    torch.testing.assert_close(ufd.setup_filter([1, 2, 3], separable=True, gain=4).sum(), torch.tensor(2.0))
    torch.testing.assert_close(ufd.setup_filter([1, 2, 3], flip_filter=True), ufd.setup_filter([3, 2, 1]))
    torch.testing.assert_close(ufd.setup_filter(None), torch.ones(1, 1))
    taps = torch.tensor([1.0, 3, 3, 1])
    ufd.setup_filter(taps, separable=True)
    torch.testing.assert_close(taps, torch.tensor([1.0, 3, 3, 1]))  # the caller's tensor is not modified
    with pytest.raises(ValueError, match="separable"):
        ufd.setup_filter(torch.ones(2, 2), separable=True)


def test_upsample2d_with_box_filter_is_nearest_neighbour():
    x = torch.randn(2, 3, 5, 4)
    y = ufd.upsample2d(x, ufd.setup_filter([1, 1]))
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=2, mode="nearest"))


def test_downsample2d_with_box_filter_is_average_pooling():
    x = torch.randn(2, 3, 6, 8)
    torch.testing.assert_close(ufd.downsample2d(x, ufd.setup_filter([1, 1])), F.avg_pool2d(x, 2))


def test_helpers_keep_sizes_and_preserve_constants():
    f = ufd.setup_filter([1, 3, 3, 1])
    x = torch.full((1, 2, 8, 8), 3.0)
    up = ufd.upsample2d(x, f)
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 3.0))
    down = ufd.downsample2d(x, f)
    assert down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))
    g = ufd.setup_filter([1, 2, 1])
    filt = ufd.filter2d(x, g)
    assert filt.shape == x.shape
    torch.testing.assert_close(filt[:, :, 1:-1, 1:-1], torch.full((1, 2, 6, 6), 3.0))
    # filter2d with a symmetric 3x3 filter = depthwise conv2d with padding 1
    torch.testing.assert_close(filt, F.conv2d(x, g[None, None].repeat(2, 1, 1, 1), padding=1, groups=2))


def test_helpers_match_naive_with_extra_padding():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64)
    f = torch.randn(4, 3, dtype=torch.float64)  # non-square, asymmetric: exposes any fw/fh or flip mix-up
    torch.testing.assert_close(ufd.upsample2d(x, f, padding=[1, 0, -1, 2], flip_filter=True, gain=2),
                               naive_upfirdn2d(x, f, 2, 1, [1 + 2, 0 + 0, -1 + 2, 2 + 1], True, 8))
    torch.testing.assert_close(ufd.downsample2d(x, f, padding=1),
                               naive_upfirdn2d(x, f, 1, 2, [1 + 1, 1 + 0, 1 + 1, 1 + 1], False, 1))
    torch.testing.assert_close(ufd.filter2d(x, f, padding=[0, 1, 1, 0]),
                               naive_upfirdn2d(x, f, 1, 1, [0 + 1, 1 + 1, 1 + 2, 0 + 1], False, 1))


GRAD_CASES = [
    ("binomial4", 2, 1, [2, 1, 2, 1]),
    ("binomial4", 1, 2, [1, 1, 1, 1]),
    ("random3x2", (2, 1), (1, 3), [0, -1, 2, 1]),
    ("separable8", 2, 2, 3),
]


@pytest.mark.parametrize("fname, up, down, padding", GRAD_CASES)
def test_reference_gradcheck_and_gradgradcheck(fname, up, down, padding):
    f = _filters()[fname]
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda x: ufd.upfirdn2d(x, f, up, down, padding, False, 1.5)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_reference_gradient_wrt_filter():
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64)
    f = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: ufd.upfirdn2d(x, f, up=2, padding=1), (f,))


# --- CUDA kernel against the reference (needs a GPU) ---------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("fname", list(_filters()))
def test_cuda_matches_reference(fname, monkeypatch):
    monkeypatch.setenv("STYLEINV_OPS", "cuda")
    f = _filters()[fname]
    f = None if f is None else f.cuda()
    torch.manual_seed(0)
    for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 1e-5), (torch.float16, 2e-2)]:
        for up, down, padding, flip, channels_last in itertools.product([1, 2], [1, 2], [0, [1, -1, 2, 0]],
                                                                        [False, True], [False, True]):
            x = torch.randn(2, 3, 13, 11, device="cuda").to(dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            y = ufd.upfirdn2d(x, f, up, down, padding, flip, 2.0)
            assert type(y.grad_fn).__name__.startswith("_UpFirDn2dCuda")
            xr = x.detach().double().requires_grad_(True)
            yr = ufd._upfirdn2d_ref(xr, f, *[ufd._parse_scaling(s, "s") for s in (up, down)],
                                    ufd._parse_padding(padding), flip, 2.0)
            torch.testing.assert_close(y.double(), yr, rtol=tol, atol=tol)
            dy = torch.randn_like(y)
            (gx,) = torch.autograd.grad(y, x, dy)
            (gxr,) = torch.autograd.grad(yr, xr, dy.double())
            torch.testing.assert_close(gx.double(), gxr, rtol=tol, atol=tol * 10)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("fname, up, down, padding", GRAD_CASES)
def test_cuda_gradcheck_and_gradgradcheck(fname, up, down, padding, monkeypatch):
    monkeypatch.setenv("STYLEINV_OPS", "cuda")
    f = _filters()[fname].cuda()
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, device="cuda", requires_grad=True)
    fn = lambda x: ufd.upfirdn2d(x, f, up, down, padding, False, 1.5)
    assert type(fn(x).grad_fn).__name__.startswith("_UpFirDn2dCuda")
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
