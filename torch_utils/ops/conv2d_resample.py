"""2-D convolution with optional FIR up/down-sampling, as in StyleGAN2-ADA's conv2d_resample.

Definition (the general path at the bottom of `conv2d_resample`): with padding p given with respect to the
upsampled image,
  1. x = upfirdn2d(x, f if up > 1 else None, up=up, padding=p + resampling padding, gain=up**2)
  2. x = conv2d(x, w, groups)        (flip_weight=True: correlation as torch does; False: true convolution)
  3. x = upfirdn2d(x, f, down=down)  if down > 1
The resampling padding centres the filter as upsample2d/downsample2d do. Padding is applied once, at the start.
The other paths compute exactly the same thing faster: a strided conv for down-sampling, a transposed strided conv
for up-sampling (so the zeros are never multiplied), and filtering on the cheaper side of a 1x1 conv.
"""

import torch
import torch.nn.functional as F

from . import upfirdn2d as ufd


# conv2d or conv_transpose2d; flip_weight=False flips the kernel spatially (true convolution instead of torch's
# correlation).
def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True) -> torch.Tensor:
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


# Weight [out, in/groups, kh, kw] rearranged for conv_transpose2d: [in, out/groups, kh, kw].
def _transpose_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    out_channels, in_per_group, kh, kw = w.shape
    w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    return w.reshape(groups * in_per_group, out_channels // groups, kh, kw)


# Validate the arguments; raise ValueError naming the bad one.
def _check_args(x, w, f, up, down, groups) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"conv2d_resample: x must be [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError(f"conv2d_resample: w must be [out, in/groups, kh, kw] with x's dtype {x.dtype}, got "
                         f"{getattr(w, 'shape', type(w))} {getattr(w, 'dtype', '')}")
    if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2)):
        raise ValueError(f"conv2d_resample: f must be None or a 1-D/2-D filter from setup_filter, got "
                         f"{getattr(f, 'shape', type(f))}")
    for name, v in (("up", up), ("down", down), ("groups", groups)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"conv2d_resample: {name} must be an int >= 1, got {v!r}")
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups != 0:
        raise ValueError(f"conv2d_resample: x has {x.shape[1]} channels but w {list(w.shape)} with groups={groups} "
                         f"expects {w.shape[1] * groups} (and out channels divisible by groups)")


# Convolve x [N, in, H, W] with w [out, in/groups, kh, kw], upsampling by `up` before and/or downsampling by
# `down` after through FIR filter f (from setup_filter; None = box/identity). See the module docstring.
def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding=0, groups: int = 1, flip_weight: bool = True, flip_filter: bool = False) -> torch.Tensor:
    _check_args(x, w, f, up, down, groups)
    kh, kw = w.shape[2], w.shape[3]
    fw, fh = ufd._get_filter_size(f)
    px0, px1, py0, py1 = ufd._parse_padding(padding)
    if up > 1:  # centre the filter as upsample2d does
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:  # centre the filter as downsample2d does
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    # 1x1 kernel, down-sampling only: filter and decimate first, then convolve the small image.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = ufd.upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, up-sampling only: convolve the small image first, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return ufd.upfirdn2d(x, f, up=up, padding=pad, gain=up**2, flip_filter=flip_filter)

    # Down-sampling only: filter, then strided convolution.
    if down > 1 and up == 1:
        x = ufd.upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Up-sampling (maybe also down): transposed strided convolution, then filter (and decimate).
    # conv_transpose2d equals zero insertion + padding (kw-1, kw-up) + a true convolution, hence the flipped
    # flip_weight; the padding left over goes to the filter, and symmetric cropping to conv_transpose2d itself.
    if up > 1:
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        crop_x, crop_y = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, _transpose_weight(w, groups), stride=up, padding=[crop_y, crop_x], groups=groups,
                  transpose=True, flip_weight=not flip_weight)
        x = ufd.upfirdn2d(x, f, padding=[px0 + crop_x, px1 + crop_x, py0 + crop_y, py1 + crop_y], gain=up**2,
                          flip_filter=flip_filter)
        if down > 1:
            x = ufd.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric non-negative padding: a plain convolution.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General path (the definition): pad/crop, convolve.
    x = ufd.upfirdn2d(x, None, padding=pad)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)
