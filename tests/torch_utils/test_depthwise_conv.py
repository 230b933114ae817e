"""Tests for torch_utils/ops/depthwise_conv.py: values against conv2d, gradients against finite differences."""

import functools
import itertools

import torch
import torch.nn.functional as F

from torch_utils.ops.depthwise_conv import depthwise_conv2d


# Values and the first two gradient orders (float64 finite differences), for strides that drop input pixels,
# asymmetric kernels, padding, expanded filters and channels_last inputs.
def test_matches_conv2d_and_gradchecks():
    torch.manual_seed(0)
    for (kh, kw), stride, padding, channels_last in itertools.product([(3, 3), (1, 4)], [1, 2, (2, 1)], [0, (1, 2)],
                                                                     [False, True]):
        label = f"k={kh}x{kw} stride={stride} padding={padding} channels_last={channels_last}"
        x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = torch.randn(1, 1, kh, kw, dtype=torch.float64).expand(3, 1, kh, kw)
        x.requires_grad_(True)
        y = depthwise_conv2d(x, f, stride, padding)
        assert type(y.grad_fn).__name__ == "_DepthwiseConv2dBackward", label
        expected = F.conv2d(x.detach(), f, stride=stride, padding=padding, groups=3)
        torch.testing.assert_close(y.detach(), expected, rtol=0, atol=1e-12, msg=label)
        fn = functools.partial(depthwise_conv2d, f=f, stride=stride, padding=padding)
        assert torch.autograd.gradcheck(fn, (x,)), label
        assert torch.autograd.gradgradcheck(fn, (x,)), label


# Third order too: the gradient of the transposed convolution is the convolution again.
def test_third_order_matches_conv2d():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    f = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    results = []
    for conv in (lambda x: depthwise_conv2d(x, f, 2, 1), lambda x: F.conv2d(x, f, stride=2, padding=1, groups=2)):
        (g1,) = torch.autograd.grad(conv(x).square().sum(), x, create_graph=True)
        (g2,) = torch.autograd.grad((g1.square() * x).sum(), x, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sin().sum(), x)
        results.append((g1, g2, g3))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


# A filter that needs a gradient gets it (plain conv2d), and without autograd the result is conv2d's.
def test_trainable_filter_and_no_grad():
    x = torch.randn(1, 2, 5, 5)
    f = torch.randn(2, 1, 3, 3, requires_grad=True)
    y = depthwise_conv2d(x.requires_grad_(), f, 1, 1)
    (gf,) = torch.autograd.grad(y.sum(), f)
    (expected,) = torch.autograd.grad(F.conv2d(x, f, padding=1, groups=2).sum(), f)
    torch.testing.assert_close(gf, expected)
    with torch.no_grad():
        assert torch.equal(depthwise_conv2d(x, f, 1, 1), F.conv2d(x, f, padding=1, groups=2))
