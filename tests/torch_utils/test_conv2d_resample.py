"""Tests for torch_utils/ops/conv2d_resample.py: every fast path against the definition written out naively."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from tests.torch_utils.test_upfirdn2d import naive_upfirdn2d
from torch_utils.ops import upfirdn2d as ufd
from torch_utils.ops.conv2d_resample import conv2d_resample


# Grouped 'valid' correlation by summing shifted copies, one per kernel tap (no conv2d).
def naive_conv(x, w, groups):
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    ho, wo = h - kh + 1, wd - kw + 1
    xg = x.reshape(n, groups, cin_g, h, wd)
    wg = w.reshape(groups, cout // groups, cin_g, kh, kw)
    y = sum(torch.einsum("ngihw,goi->ngohw", xg[..., ky:ky + ho, kx:kx + wo], wg[..., ky, kx])
            for ky in range(kh) for kx in range(kw))
    return y.reshape(n, cout, ho, wo)


# The definition: zero-insert + pad (padding given w.r.t. the upsampled image, plus the filter centring of
# upsample2d/downsample2d) + filter (when up > 1), convolve, then filter + decimate (when down > 1).
def naive_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    x0, x1, y0, y1 = [padding] * 4 if isinstance(padding, int) else padding
    if up > 1:
        x0, x1, y0, y1 = x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2
    if down > 1:
        x0, x1 = x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2
        y0, y1 = y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2
    x = naive_upfirdn2d(x, f if up > 1 else None, up=up, padding=[x0, x1, y0, y1], flip_filter=flip_filter,
                        gain=up * up)
    x = naive_conv(x, w if flip_weight else w.flip([2, 3]), groups)
    if down > 1:
        x = naive_upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def _filters():
    return {"none": None, "binomial4": ufd.setup_filter([1, 3, 3, 1]).double(),
            "asym3x2": torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.25]], dtype=torch.float64)}


@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1)])
def test_matches_naive_definition(up, down):
    torch.manual_seed(0)
    count = 0
    for fname, (kh, kw), padding, groups, flip_weight, flip_filter in itertools.product(
            _filters(), [(1, 1), (3, 3), (2, 3)], [0, 1, [1, 0, 2, -1], -1], [1, 2], [True, False], [False, True]):
        f = _filters()[fname]
        x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
        w = torch.randn(6, 4 // groups, kh, kw, dtype=torch.float64)
        expected = naive_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter)
        if min(expected.shape[2:]) < 1:
            continue
        y = conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter)
        label = f"{fname} k={kh}x{kw} pad={padding} groups={groups} flips={flip_weight},{flip_filter}"
        torch.testing.assert_close(y, expected, msg=lambda m, label=label: f"{label}: {m}")
        count += 1
    assert count >= 200


def test_same_padding_is_plain_conv2d():
    x, w = torch.randn(2, 4, 8, 8), torch.randn(5, 4, 3, 3)
    torch.testing.assert_close(conv2d_resample(x, w, padding=1), F.conv2d(x, w, padding=1))
    torch.testing.assert_close(conv2d_resample(x, w, padding=1, flip_weight=False),
                               F.conv2d(x, w.flip([2, 3]), padding=1))


def test_stylegan2_layer_shapes():
    f = ufd.setup_filter([1, 3, 3, 1])
    x, w = torch.randn(2, 4, 8, 8), torch.randn(5, 4, 3, 3)
    assert conv2d_resample(x, w, f, up=2, padding=1, flip_weight=False).shape == (2, 5, 16, 16)
    assert conv2d_resample(x, w, f, down=2, padding=1).shape == (2, 5, 4, 4)
    assert conv2d_resample(x, w[:, :, :1, :1], f, down=2).shape == (2, 5, 4, 4)


@pytest.mark.parametrize("bad, match", [
    ({"w": torch.zeros(3, 4, 3, 3, dtype=torch.float64)}, "dtype"),
    ({"w": torch.zeros(3, 5, 3, 3)}, "channels"),
    ({"up": 0}, "up"),
    ({"groups": 3}, "channels"),
])
def test_bad_arguments_raise(bad, match):
    kwargs = {"x": torch.zeros(1, 4, 8, 8), "w": torch.zeros(3, 4, 3, 3)} | bad
    with pytest.raises(ValueError, match=match):
        conv2d_resample(**kwargs)


# One case per code path: plain, general (asymmetric padding), 1x1 down, 1x1 up, strided down, transposed up,
# transposed up + down.
GRAD_CASES = [((3, 3), 1, 1, 1), ((3, 3), 1, 1, [1, 0, 0, 2]), ((1, 1), 1, 2, 0), ((1, 1), 2, 1, 0),
              ((3, 3), 1, 2, 1), ((3, 3), 2, 1, 1), ((3, 3), 2, 2, 1)]


@pytest.mark.parametrize("ksize, up, down, padding", GRAD_CASES)
def test_gradcheck_and_gradgradcheck(ksize, up, down, padding):
    torch.manual_seed(0)
    f = ufd.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, *ksize, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: conv2d_resample(x, w, f, up=up, down=down, padding=padding, groups=2, flip_weight=up == 1)
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))
