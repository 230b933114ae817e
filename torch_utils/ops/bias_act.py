"""Fused bias + activation + gain + clamp: y = clamp(gain * act(x + b), -clamp, +clamp).

`b` (1-D, length x.shape[dim]) is broadcast along dimension `dim` of `x`; clamp=None means no clamp. `alpha` is
the negative slope of lrelu and the alpha of elu; the other activations ignore it. Defaults per activation:

    act        default alpha   default gain   nonzero 2nd derivative
    linear     -               1              no
    relu       -               sqrt(2)        no
    lrelu      0.2             sqrt(2)        no
    tanh       -               1              yes
    sigmoid    -               1              yes
    elu        1.0             1              yes
    selu       -               1              yes
    softplus   -               1              yes   (torch's default: beta 1, linear above 20)
    swish      -               sqrt(2)        yes   (x * sigmoid(x))

Two paths: `_bias_act_ref` below (plain PyTorch: the specification, used on CPU and as the fallback) and the CUDA
kernel in bias_act.cu (one fused pass forward; one pass per gradient order), used for CUDA tensors when it builds
(see cuda_build.py, `STYLEINV_OPS`). Both give first- and second-order gradients (R1 / path-length regularisation);
the CUDA path raises on a third-order gradient. When no gradient is needed (grad mode off, or neither x nor b
requires grad), the reference path runs in place after its first op, or from the start with inplace=True
(`_bias_act_inplace`): same values, fewer full-size temporaries. With a gradient, the piecewise-linear activations
(linear, relu, lrelu) take `_BiasActPiecewiseLinear` instead: the same values, fewer passes and saved tensors,
gradients of every order.
"""

import math
import os
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import cuda_build

_HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION_NAME = "styleinv_bias_act"
EXTENSION_SOURCES = (os.path.join(_HERE, "bias_act.cpp"), os.path.join(_HERE, "bias_act.cu"))
EXTENSION_DEPENDS = (os.path.join(_HERE, "bias_act.h"), os.path.join(_HERE, "op_math.cuh"))


# One activation: its id in bias_act.h, reference function f(x, alpha), defaults, whether f'' != 0, and an in-place
# variant f_(x, alpha) giving bit-identical values (None where torch has none).
class Activation(NamedTuple):
    code: int
    func: Callable[[torch.Tensor, float], torch.Tensor]
    alpha: float
    gain: float
    curved: bool
    func_: Callable[[torch.Tensor, float], torch.Tensor] | None = None


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(0, lambda x, a: x, 0.0, 1.0, False),
    "relu": Activation(1, lambda x, a: F.relu(x), 0.0, math.sqrt(2), False, lambda x, a: F.relu_(x)),
    "lrelu": Activation(2, lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), False,
                        lambda x, a: F.leaky_relu_(x, a)),
    "tanh": Activation(3, lambda x, a: torch.tanh(x), 0.0, 1.0, True, lambda x, a: x.tanh_()),
    "sigmoid": Activation(4, lambda x, a: torch.sigmoid(x), 0.0, 1.0, True, lambda x, a: x.sigmoid_()),
    "elu": Activation(5, lambda x, a: F.elu(x, alpha=a), 1.0, 1.0, True, lambda x, a: F.elu_(x, alpha=a)),
    "selu": Activation(6, lambda x, a: F.selu(x), 0.0, 1.0, True, lambda x, a: F.selu(x, inplace=True)),
    "softplus": Activation(7, lambda x, a: F.softplus(x), 0.0, 1.0, True),
    "swish": Activation(8, lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2), True),
}

# Element types the kernel supports; codes as in bias_act.h.
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


# Resolved arguments of one call (clamp < 0 means no clamp).
class _Config(NamedTuple):
    dim: int
    act: Activation
    alpha: float
    gain: float
    clamp: float


# Fused bias + activation + gain + clamp (see the module docstring). Same signature as StyleGAN2-ADA's bias_act,
# plus `inplace`: True lets the no-gradient path write the result into x itself (pass it only for a tensor nobody
# else uses, such as a fresh convolution output); it is ignored when a gradient is needed and by the CUDA kernel.
def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
             inplace: bool = False) -> torch.Tensor:
    cfg = _check_args(x, b, dim, act, alpha, gain, clamp)
    if x.is_cuda and x.dtype in _DTYPE_CODES and x.numel() > 0 and _cuda_extension() is not None:
        return _BiasActCuda.apply(x, b, cfg)
    if not torch.is_grad_enabled() or not (x.requires_grad or (b is not None and b.requires_grad)):
        return _bias_act_inplace(x, b, cfg, overwrite=inplace)
    if not cfg.act.curved and cfg.gain > 0 and cfg.alpha >= 0 and (b is not None or cfg.gain != 1 or _masked(cfg)):
        return _BiasActPiecewiseLinear.apply(x, b, cfg)
    return _bias_act_ref(x, b, cfg)


# Reference path: plain PyTorch ops, differentiable to any order.
def _bias_act_ref(x: torch.Tensor, b: torch.Tensor | None, cfg: _Config) -> torch.Tensor:
    if b is not None:
        x = x + b.reshape([-1 if i == cfg.dim else 1 for i in range(x.ndim)])
    x = cfg.act.func(x, cfg.alpha)
    if cfg.gain != 1:
        x = x * cfg.gain
    if cfg.clamp >= 0:
        x = x.clamp(-cfg.clamp, cfg.clamp)
    return x


# Reference path without autograd: the same ops in the same order, but only the first one allocates and the rest
# work in place on that fresh tensor; x itself is written only with overwrite=True, and then nothing allocates
# (except softplus and swish, which have no in-place form). Bit-identical to `_bias_act_ref`.
def _bias_act_inplace(x: torch.Tensor, b: torch.Tensor | None, cfg: _Config, overwrite: bool = False) -> torch.Tensor:
    y = x if overwrite else None  # the tensor to write into, once there is one
    if b is not None:
        b = b.reshape([-1 if i == cfg.dim else 1 for i in range(x.ndim)])
        y = x + b if y is None else y.add_(b)
    if cfg.act.code != ACTIVATIONS["linear"].code:
        if y is None:
            y = cfg.act.func(x, cfg.alpha)
        else:
            y = cfg.act.func(y, cfg.alpha) if cfg.act.func_ is None else cfg.act.func_(y, cfg.alpha)
    if cfg.gain != 1:
        y = x * cfg.gain if y is None else y.mul_(cfg.gain)
    if cfg.clamp >= 0:
        y = x.clamp(-cfg.clamp, cfg.clamp) if y is None else y.clamp_(-cfg.clamp, cfg.clamp)
    return x if y is None else y


# Autograd path for linear, relu and lrelu (with gain > 0 and alpha >= 0) off the CUDA kernel: the forward pass is
# `_bias_act_inplace` (one new tensor instead of one per op) and saves only its output y, from which the gradient
# follows: y > 0 exactly where x + b > 0, and |y| < clamp where the clamp passes the gradient (y = +-clamp where it
# saturates; an unclamped value exactly at the clamp, which the reference passes, is blocked). Three passes
# backward instead of the reference's six; the gradient is linear in dy with a mask fixed by y, so every higher
# order is the same mask again (R1 and path-length regularisation).
class _BiasActPiecewiseLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, cfg):
        y = _bias_act_inplace(x, b, cfg)
        ctx.cfg = cfg
        ctx.save_for_backward(y if _masked(cfg) else None)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        cfg = ctx.cfg
        if _masked(cfg):
            dx = _PiecewiseLinearGrad.apply(dy, y, cfg)
        else:
            dx = dy * cfg.gain if cfg.gain != 1 else dy
        db = _reduce_to_bias(dx, cfg.dim) if ctx.needs_input_grad[1] else None
        return dx, db, None


# dx = mask(y) * dy for `_BiasActPiecewiseLinear`, as a function of dy alone (its derivative in y is zero almost
# everywhere), so that it can itself be differentiated.
class _PiecewiseLinearGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, y, cfg):
        ctx.cfg = cfg
        ctx.save_for_backward(y)
        return _piecewise_linear_grad(dy, y, cfg)

    @staticmethod
    def backward(ctx, ddx):
        (y,) = ctx.saved_tensors
        return _PiecewiseLinearGrad.apply(ddx, y, ctx.cfg), None, None


# Whether the gradient of a piecewise-linear bias_act depends on y (an activation with a kink, or a clamp).
def _masked(cfg: _Config) -> bool:
    return cfg.act.code != ACTIVATIONS["linear"].code or cfg.clamp >= 0


# gain * act'(x + b) * [|y| < clamp] * dy, read off the output y (for a `_masked` configuration).
def _piecewise_linear_grad(dy: torch.Tensor, y: torch.Tensor, cfg: _Config) -> torch.Tensor:
    dx = dy * cfg.gain if cfg.gain != 1 else dy
    if cfg.clamp >= 0:
        dx = torch.ops.aten.hardtanh_backward(dx, y, -cfg.clamp, cfg.clamp)
    if cfg.act.code == ACTIVATIONS["relu"].code:
        dx = torch.ops.aten.threshold_backward(dx, y, 0)
    elif cfg.act.code == ACTIVATIONS["lrelu"].code:
        dx = torch.ops.aten.leaky_relu_backward(dx, y, cfg.alpha, True)
    return dx


# Validate the arguments and fill in the per-activation defaults.
def _check_args(x, b, dim, act, alpha, gain, clamp) -> _Config:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"bias_act: x must be a floating-point tensor, got {type(x).__name__}"
                        f"{'' if not isinstance(x, torch.Tensor) else ' of dtype ' + str(x.dtype)}")
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown act {act!r}; use one of {', '.join(ACTIVATIONS)}")
    if not isinstance(dim, int) or not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"bias_act: dim={dim!r} is out of range for x of shape {list(x.shape)}")
    dim = dim % max(x.ndim, 1)
    if b is not None:
        if not isinstance(b, torch.Tensor) or b.ndim != 1 or x.ndim == 0 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: b must be a 1-D tensor of length x.shape[{dim}]="
                             f"{x.shape[dim] if x.ndim else '?'}, got {getattr(b, 'shape', b)}")
        if b.dtype != x.dtype or b.device != x.device:
            raise ValueError(f"bias_act: b ({b.dtype}, {b.device}) must match x ({x.dtype}, {x.device})")
    if clamp is not None and not clamp >= 0:
        raise ValueError(f"bias_act: clamp must be None or >= 0, got {clamp}")
    spec = ACTIVATIONS[act]
    return _Config(dim, spec, float(spec.alpha if alpha is None else alpha),
                   float(spec.gain if gain is None else gain), float(-1 if clamp is None else clamp))


# The compiled kernel, or None to use the reference path.
def _cuda_extension():
    return cuda_build.load_extension(EXTENSION_NAME, EXTENSION_SOURCES, EXTENSION_DEPENDS, probe=_probe)


# Capability probe run once after loading: the kernel must run on this GPU and match the reference.
def _probe(ext) -> None:
    x = torch.linspace(-3, 3, 2 * 5 * 7, device="cuda").reshape(2, 5, 7)
    b = torch.linspace(-1, 1, 5, device="cuda")
    cfg = _Config(1, ACTIVATIONS["lrelu"], 0.2, math.sqrt(2), 2.0)
    y = _launch(ext, cfg, x, b, None, order=0)
    if not torch.allclose(y, _bias_act_ref(x, b, cfg), atol=1e-5):
        raise RuntimeError("the kernel's output differs from the reference implementation")


# Memory format that makes x dense (channels_last only for 4-D tensors that already use it).
def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


# Distance in memory between consecutive indices along `dim`, for a dense tensor of `shape` in `fmt`.
def _dim_stride(shape: torch.Size, dim: int, fmt: torch.memory_format) -> int:
    order = [0, 2, 3, 1] if fmt == torch.channels_last else list(range(len(shape)))
    return math.prod(shape[d] for d in order[order.index(dim) + 1:])


# One kernel pass (order 0: forward, 1: gradient, 2: second derivative; see bias_act.h) with `ref` = incoming grad.
def _launch(ext, cfg: _Config, x, b, ref, order: int) -> torch.Tensor:
    fmt = _memory_format(x)
    x = x.contiguous(memory_format=fmt)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    empty = x.new_empty(0)
    ref = empty if ref is None else ref.to(x.dtype).contiguous(memory_format=fmt)
    b = empty if b is None else b.contiguous()
    ext.bias_act(out, x, b, ref, _dim_stride(x.shape, cfg.dim, fmt), cfg.act.code, order, cfg.alpha, cfg.gain,
                 cfg.clamp)
    return out


# Sum a gradient of x over every dim but `dim`, giving the gradient of b.
def _reduce_to_bias(g: torch.Tensor, dim: int) -> torch.Tensor:
    return g.sum(dim=[i for i in range(g.ndim) if i != dim])


# CUDA path, forward: y = clamp(gain * act(x + b)).
class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, cfg):
        ctx.cfg = cfg
        ctx.save_for_backward(x, b)
        return _launch(_cuda_extension(), cfg, x, b, None, order=0)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        cfg = ctx.cfg
        if cfg.act.code == ACTIVATIONS["linear"].code and cfg.clamp < 0:
            dx = dy * cfg.gain if cfg.gain != 1 else dy
        else:
            dx = _BiasActCudaGrad.apply(dy, x, b, cfg)
        db = _reduce_to_bias(dx, cfg.dim) if ctx.needs_input_grad[1] else None
        return dx, db, None


# CUDA path, gradient: dx = dy * gain * act'(x + b), zero where clamped. Its own backward gives second order.
class _BiasActCudaGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, b, cfg):
        ctx.cfg = cfg
        ctx.save_for_backward(dy, x, b)
        return _launch(_cuda_extension(), cfg, x, b, dy, order=1)

    @staticmethod
    @once_differentiable
    def backward(ctx, ddx):
        dy, x, b = ctx.saved_tensors
        cfg = ctx.cfg
        ext = _cuda_extension()
        d_dy = _launch(ext, cfg, x, b, ddx, order=1) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        if cfg.act.curved and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _launch(ext, cfg, x, b, dy * ddx, order=2)
            d_b = _reduce_to_bias(d_x, cfg.dim) if ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None
