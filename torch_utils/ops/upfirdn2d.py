"""Upsample, FIR-filter and downsample 2-D images (upfirdn2d), with the filter2d/upsample2d/downsample2d helpers.

upfirdn2d(x, f, up, down, padding, flip_filter, gain) does, independently per image and channel of x [N, C, H, W]:
  1. upsample: insert up-1 zeros after every pixel, giving [H * up_y, W * up_x];
  2. pad by padding = [x0, x1, y0, y1] zeros (negative values crop);
  3. filter with f: 2-D [fh, fw], or 1-D [fw] = separable (applied along x, then along y), scaled by
     gain ** (f.ndim / 2) so the total gain is `gain`; flip_filter=False is a true convolution, True a correlation;
  4. downsample: keep every down-th pixel, starting with the first.
Output size: (H * up_y + y0 + y1 - fh) // down_y + 1, and likewise for the width. f=None is the 1x1 identity.

Same semantics and signatures as StyleGAN2-ADA's upfirdn2d (padding conventions, filter normalisation and flips),
so networks built on it reproduce official images. Two paths: `_upfirdn2d_ref` below (plain PyTorch: the
specification, used on CPU and as the fallback) and the CUDA kernel in upfirdn2d.cu (one thread per output pixel),
used for CUDA tensors when it builds (see cuda_build.py, `STYLEINV_OPS`) and f needs no gradient. The CUDA path's
backward is upfirdn2d again (up and down swapped, filter flipped, padding recomputed), so every gradient order works.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F

from . import cuda_build
from .depthwise_conv import depthwise_conv2d

_HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION_NAME = "styleinv_upfirdn2d"
EXTENSION_SOURCES = (os.path.join(_HERE, "upfirdn2d.cpp"), os.path.join(_HERE, "upfirdn2d.cu"))
EXTENSION_DEPENDS = (os.path.join(_HERE, "upfirdn2d.h"), os.path.join(_HERE, "op_math.cuh"))

# Element types the kernel supports; codes as in upfirdn2d.h.
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}

FilterLike = torch.Tensor | np.ndarray | list | tuple | float | int | None
_CPU = torch.device("cpu")


# Build a filter tensor for upfirdn2d: 1-D taps become their outer product (or stay 1-D = separable, the default
# for >= 8 taps), normalised to sum 1, optionally flipped, scaled so the overall gain is `gain`.
def setup_filter(f: FilterLike, device: torch.device = _CPU, normalize: bool = True,
                 flip_filter: bool = False, gain: float = 1, separable: bool | None = None) -> torch.Tensor:
    f = torch.as_tensor(1 if f is None else f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: f must be a scalar, 1-D or 2-D non-empty array, got shape {list(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"setup_filter: separable={separable} needs a 1-D filter, got shape {list(f.shape)}")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


# Up/down factor as (x, y) from an int or [x, y].
def _parse_scaling(scaling, what: str) -> tuple[int, int]:
    pair = [scaling, scaling] if isinstance(scaling, int) else list(scaling)
    if len(pair) != 2 or not all(isinstance(s, int) and s >= 1 for s in pair):
        raise ValueError(f"upfirdn2d: {what} must be an int >= 1 or a pair [x, y] of them, got {scaling!r}")
    return pair[0], pair[1]


# Padding as (x0, x1, y0, y1) from an int, [px, py] or [x0, x1, y0, y1].
def _parse_padding(padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        padding = [padding] * 4
    padding = list(padding)
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    if len(padding) != 4 or not all(isinstance(p, int) for p in padding):
        raise ValueError(f"upfirdn2d: padding must be an int, [px, py] or [x0, x1, y0, y1] of ints, got {padding!r}")
    return tuple(padding)


# Filter width and height; (1, 1) for None.
def _get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: f must be None or a 1-D/2-D tensor, got {getattr(f, 'shape', type(f))}")
    return int(f.shape[-1]), int(f.shape[0])


# Pad, upsample, filter and downsample a batch of 2-D images (see the module docstring).
def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"upfirdn2d: x must be a floating-point [N, C, H, W] tensor, got {getattr(x, 'shape', x)}")
    fw, fh = _get_filter_size(f)
    if f is not None and (f.numel() == 0 or not f.is_floating_point() or f.device != x.device):
        raise ValueError(f"upfirdn2d: f must be a non-empty floating-point tensor on {x.device}, "
                         f"got {f.dtype} on {f.device}")
    up, down, padding = _parse_scaling(up, "up"), _parse_scaling(down, "down"), _parse_padding(padding)
    out_w = (x.shape[3] * up[0] + padding[0] + padding[1] - fw) // down[0] + 1
    out_h = (x.shape[2] * up[1] + padding[2] + padding[3] - fh) // down[1] + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: output would be empty ({out_h}x{out_w}) for input {list(x.shape)}, "
                         f"filter {fh}x{fw}, up={up}, down={down}, padding={list(padding)}")
    if (x.is_cuda and x.dtype in _DTYPE_CODES and x.numel() > 0 and not (f is not None and f.requires_grad)
            and _cuda_extension() is not None):
        return _upfirdn2d_cuda(x, f, up, down, padding, flip_filter, gain)
    return _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain)


# Reference path: zero insertion by reshape + pad, then padding/cropping, a depthwise conv2d and decimation.
# Symmetric non-negative padding goes to conv2d's own `padding` and decimation to its `stride` (no padded copy,
# no discarded outputs); other padding is applied by F.pad (positive) and slicing (negative) first. The conv is
# `depthwise_conv2d`, whose higher-order gradients skip the constant filter's.
def _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain) -> torch.Tensor:
    n, c, h, w = x.shape
    (up_x, up_y), (down_x, down_y), (x0, x1, y0, y1) = up, down, padding
    if up_x > 1 or up_y > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up_x - 1, 0, 0, 0, up_y - 1]).reshape(n, c, h * up_y, w * up_x)
    pad_y = pad_x = 0
    if x0 == x1 >= 0 and y0 == y1 >= 0 and f is not None:
        pad_y, pad_x = y0, x0
    else:
        x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
        x = x[:, :, max(-y0, 0):x.shape[2] - max(-y1, 0), max(-x0, 0):x.shape[3] - max(-x1, 0)]
    if f is None:  # the 1x1 identity filter: decimate and scale (always a new tensor, like the conv)
        x = x[:, :, ::down_y, ::down_x]
        return x * gain if gain != 1 else x.clone()
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))  # conv2d correlates; flipping makes it a true convolution
    if f.ndim == 2:
        return depthwise_conv2d(x, f[None, None].repeat(c, 1, 1, 1), [down_y, down_x], [pad_y, pad_x])
    x = depthwise_conv2d(x, f[None, None, None, :].repeat(c, 1, 1, 1), [1, down_x], [0, pad_x])  # along x
    return depthwise_conv2d(x, f[None, None, :, None].repeat(c, 1, 1, 1), [down_y, 1], [pad_y, 0])  # along y


# The compiled kernel, or None to use the reference path.
def _cuda_extension():
    return cuda_build.load_extension(EXTENSION_NAME, EXTENSION_SOURCES, EXTENSION_DEPENDS, probe=_probe)


# Capability probe run once after loading: the kernel must run on this GPU and match the reference.
def _probe(ext) -> None:
    x = torch.linspace(-1, 1, 2 * 3 * 5 * 6, device="cuda").reshape(2, 3, 5, 6).sin()
    for f in (setup_filter([1, 3, 3, 1], device=x.device), setup_filter([1, 2, 3, 4, 4, 3, 2, 1], device=x.device)):
        args = ((2, 1), (1, 2), (2, 1, 3, 3))
        if not torch.allclose(_upfirdn2d_cuda(x, f, *args, False, 2.0), _upfirdn2d_ref(x, f, *args, False, 2.0),
                              atol=1e-5):
            raise RuntimeError("the kernel's output differs from the reference implementation")


# CUDA path: turn f into the correlation filter(s) the kernel applies, one pass for 2-D f, two for separable f.
def _upfirdn2d_cuda(x, f, up, down, padding, flip_filter, gain) -> torch.Tensor:
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    f = (f * (gain ** (f.ndim / 2))).to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        return _UpFirDn2dCuda.apply(x, f.contiguous(), up, down, padding)
    (up_x, up_y), (down_x, down_y), (x0, x1, y0, y1) = up, down, padding
    x = _UpFirDn2dCuda.apply(x, f.reshape(1, -1).contiguous(), (up_x, 1), (down_x, 1), (x0, x1, 0, 0))
    return _UpFirDn2dCuda.apply(x, f.reshape(-1, 1).contiguous(), (1, up_y), (1, down_y), (0, 0, y0, y1))


# One kernel pass with correlation filter `fcc` [fh, fw]; the output keeps x's memory format.
def _launch(x, fcc, up, down, padding) -> torch.Tensor:
    n, c, h, w = x.shape
    fh, fw = fcc.shape
    out_h = (h * up[1] + padding[2] + padding[3] - fh) // down[1] + 1
    out_w = (w * up[0] + padding[0] + padding[1] - fw) // down[0] + 1
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    y = torch.empty([n, c, out_h, out_w], dtype=x.dtype, device=x.device, memory_format=fmt)
    _cuda_extension().upfirdn2d(y, x, fcc, up[0], up[1], down[0], down[1], padding[0], padding[2])
    return y


# CUDA path as an autograd Function. The gradient of a linear FIR resampler is another one: up and down swap,
# the filter is flipped, and the padding is chosen so that output pixel o of the forward pass lines up with it.
class _UpFirDn2dCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fcc, up, down, padding):
        y = _launch(x, fcc, up, down, padding)
        ctx.save_for_backward(fcc)
        ctx.geometry = (up, down, padding, tuple(x.shape[2:]), tuple(y.shape[2:]))
        return y

    @staticmethod
    def backward(ctx, dy):
        (fcc,) = ctx.saved_tensors
        (up_x, up_y), (down_x, down_y), (x0, _, y0, _), (in_h, in_w), (out_h, out_w) = ctx.geometry
        fh, fw = fcc.shape
        padding = (fw - 1 - x0, in_w * up_x - out_w * down_x + x0 - up_x + 1,
                   fh - 1 - y0, in_h * up_y - out_h * down_y + y0 - up_y + 1)
        dx = _UpFirDn2dCuda.apply(dy, fcc.flip([0, 1]), (down_x, down_y), (up_x, up_y), padding)
        return dx, None, None, None, None


# Filter with f keeping the size (for odd taps; the padding is split as in StyleGAN2-ADA), plus extra `padding`.
def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding=0, flip_filter: bool = False,
             gain: float = 1) -> torch.Tensor:
    x0, x1, y0, y1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


# Upsample by `up` with FIR filter f; the output is exactly up times the input size (before extra `padding`).
# The gain is multiplied by up_x * up_y to make up for the inserted zeros.
def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up=2, padding=0, flip_filter: bool = False,
               gain: float = 1) -> torch.Tensor:
    up_x, up_y = _parse_scaling(up, "up")
    x0, x1, y0, y1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [x0 + (fw + up_x - 1) // 2, x1 + (fw - up_x) // 2, y0 + (fh + up_y - 1) // 2, y1 + (fh - up_y) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * up_x * up_y)


# Downsample by `down` after FIR filter f; the output is exactly 1/down of the input size (before extra `padding`).
def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down=2, padding=0, flip_filter: bool = False,
                 gain: float = 1) -> torch.Tensor:
    down_x, down_y = _parse_scaling(down, "down")
    x0, x1, y0, y1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [x0 + (fw - down_x + 1) // 2, x1 + (fw - down_x) // 2, y0 + (fh - down_y + 1) // 2, y1 + (fh - down_y) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)

