"""Modulated convolution of StyleGAN2 (Karras et al. 2020, Sec. 2.2, Eq. 1-3), as in StyleGAN2-ADA.

Per sample n: w'[o, i] = w[o, i] * s[n, i] (modulation, Eq. 1); with demodulation,
w''[o, i] = w'[o, i] / sqrt(sum_{i,k} w'[o, i, k]^2 + 1e-8) (Eq. 3); then y = conv2d_resample(x[n], w'') + noise.
Fused path: one grouped convolution with the batch folded into the groups. Non-fused path (what training uses):
scale the activations by s, run one ordinary convolution, scale the output by the demodulation coefficients, and
add the noise in the same multiply-add. Both give the same result.
"""

import math

import torch

from .. import misc
from .conv2d_resample import conv2d_resample


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

    # Per-sample weights (Eq. 1) and demodulation coefficients (Eq. 3).
    w = dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    # Non-fused: modulate the activations, one shared convolution, demodulate the output (+ noise in one fma).
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    # Fused: the batch becomes the groups of one grouped convolution.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
                        flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = (x + noise).to(x.dtype)  # same rounding as an in-place add into x
    return x
