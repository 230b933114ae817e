"""Modulated convolution of StyleGAN2 (Karras et al. 2020, Sec. 2.2, Eq. 1-3), as in StyleGAN2-ADA.

Per sample n: w'[o, i] = w[o, i] * s[n, i] (modulation, Eq. 1); with demodulation,
w''[o, i] = w'[o, i] / sqrt(sum_{i,k} w'[o, i, k]^2 + 1e-8) (Eq. 3); then y = conv2d_resample(x[n], w'') + noise.
Fused path: one grouped convolution with the batch folded into the groups. Non-fused path (what training uses):
scale the activations by s, run one ordinary convolution, scale the output by the demodulation coefficients, and
add the noise in the same multiply-add. Both give the same result. The demodulation norms come from one matmul,
s^2 @ (sum_k w^2)^T, so the [N, O, I, kh, kw] per-sample weights are only built when the fused path convolves
with them.
"""

import math

import torch

from .. import misc
from .conv2d_resample import conv2d_resample


# Demodulation coefficients (Eq. 3) 1 / sqrt(sum_{i,k} (w[o, i, k] s[n, i])^2 + 1e-8) -> [N, O], without building
# the per-sample weights: the sum equals sum_i s[n, i]^2 sum_k w[o, i, k]^2, one [N, I] @ [I, O] matmul.
def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


# StyleGAN2 modulated convolution (Eq. 1-3). x [N, I, H, W], weight [O, I, kh, kw], styles [N, I],
# noise broadcastable to the output (e.g. [N, 1, H, W]) or None.
def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, down: int = 1, padding=0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw], "modulated_conv2d weight")
    misc.assert_shape(x, [batch_size, in_channels, None, None], "modulated_conv2d x")
    misc.assert_shape(styles, [batch_size, in_channels], "modulated_conv2d styles")

    # In fp16, first bring weight and styles to unit max-norm so the products below cannot overflow; the
    # demodulation cancels these factors (up to the 1e-8 epsilon).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) /
                           weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = demodulation_coefficients(weight, styles) if demodulate else None  # [N, O]

    # Non-fused: modulate the activations, one shared convolution, demodulate the output (+ noise in one fma).
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        return _demodulate_and_add_noise(x, dcoefs, noise)

    # Fused: per-sample weights (Eq. 1, demodulated), the batch becomes the groups of one grouped convolution.
    w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
                        flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = (x + noise).to(x.dtype)  # same rounding as an in-place add into x
    return x


# x * dcoefs (per sample and output channel) + noise, each part optional. `x` is the fresh output of the
# convolution, so without autograd it is updated in place (same kernels, same values, no new full-size tensor).
def _demodulate_and_add_noise(x: torch.Tensor, dcoefs: torch.Tensor | None,
                              noise: torch.Tensor | None) -> torch.Tensor:
    inplace = not torch.is_grad_enabled() or not (x.requires_grad or (dcoefs is not None and dcoefs.requires_grad)
                                                  or (noise is not None and noise.requires_grad))
    inplace = inplace and (noise is None or torch.broadcast_shapes(x.shape, noise.shape) == x.shape)
    out = {"out": x} if inplace else {}
    if dcoefs is not None:
        d = dcoefs.to(x.dtype).reshape(x.shape[0], -1, 1, 1)
        if noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, d, **out)
        return torch.mul(x, d, **out)
    if noise is not None:
        return torch.add(x, noise.to(x.dtype), **out)
    return x
