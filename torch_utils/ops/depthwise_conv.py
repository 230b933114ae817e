"""Depthwise 2-D convolution with a constant filter (upfirdn2d's FIR filters, the ADA pipe's Lanczos and filter-bank
convolutions), differentiable to any order without ever computing the filter's gradient.

Its gradient is the transposed convolution with the same filter and the transposed convolution's gradient is the
convolution again, so every order of R1 or path-length regularisation costs one depthwise convolution. torch's own
double backward of a grouped convolution also computes the filter's gradient, one small convolution per channel,
whether or not the filter needs one (measured in benchmarks/bench_steps.py).
"""

import torch
import torch.nn.functional as F


# conv2d(x, f, stride, padding, groups=C) of x [N, C, H, W] with the filter f [C, 1, kh, kw]; f may be expanded
# (stride 0) and must need no gradient for the fast path (otherwise this is plain conv2d).
def depthwise_conv2d(x: torch.Tensor, f: torch.Tensor, stride=1, padding=0) -> torch.Tensor:
    stride, padding = _pair(stride), _pair(padding)
    if torch.is_grad_enabled() and x.requires_grad and not f.requires_grad:
        return _DepthwiseConv2d.apply(x, f, stride, padding)
    return F.conv2d(x, f, stride=stride, padding=padding, groups=x.shape[1])


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


# The convolution; backward: the transposed convolution with the same filter.
class _DepthwiseConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, stride, padding):
        ctx.save_for_backward(f)
        ctx.geometry = (stride, padding, tuple(x.shape[2:]))
        return F.conv2d(x, f, stride=stride, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        return _DepthwiseConvTranspose2d.apply(dy, f, *ctx.geometry), None, None, None


# The transposed convolution back to an input of size `in_size` (output_padding covers what the forward stride
# dropped); backward: the convolution again.
class _DepthwiseConvTranspose2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, f, stride, padding, in_size):
        ctx.save_for_backward(f)
        ctx.geometry = (stride, padding)
        output_padding = [in_size[i] - ((dy.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + f.shape[2 + i])
                          for i in range(2)]
        return F.conv_transpose2d(dy, f, stride=stride, padding=padding, output_padding=output_padding,
                                  groups=dy.shape[1])

    @staticmethod
    def backward(ctx, ddx):
        (f,) = ctx.saved_tensors
        return _DepthwiseConv2d.apply(ddx, f, *ctx.geometry), None, None, None, None
