"""Tests for torch_utils/ops/bias_act.py: closed-form expectations, float64 gradients, CUDA kernel vs reference."""

import itertools
import math

import pytest
import torch

from torch_utils.ops import bias_act as ba

CUDA = torch.cuda.is_available()

SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772

# Independent expectations: each activation in closed form, with the documented default alpha and gain.
EXPECTED = {
    "linear": (lambda v, a: v, None, 1.0),
    "relu": (lambda v, a: torch.where(v > 0, v, torch.zeros_like(v)), None, math.sqrt(2)),
    "lrelu": (lambda v, a: torch.where(v > 0, v, a * v), 0.2, math.sqrt(2)),
    "tanh": (lambda v, a: (torch.exp(2 * v) - 1) / (torch.exp(2 * v) + 1), None, 1.0),
    "sigmoid": (lambda v, a: 1 / (1 + torch.exp(-v)), None, 1.0),
    "elu": (lambda v, a: torch.where(v > 0, v, a * (torch.exp(v) - 1)), 1.0, 1.0),
    "selu": (lambda v, a: SELU_SCALE * torch.where(v > 0, v, SELU_ALPHA * (torch.exp(v) - 1)), None, 1.0),
    "softplus": (lambda v, a: torch.log(1 + torch.exp(v)), None, 1.0),
    "swish": (lambda v, a: v / (1 + torch.exp(-v)), None, math.sqrt(2)),
}


# clamp(gain * act(x + b)) written out directly, b broadcast along `dim`.
def expected_bias_act(x, b, dim, act, alpha, gain, clamp):
    func, default_alpha, default_gain = EXPECTED[act]
    v = x if b is None else x + b.reshape([-1 if i == dim % x.ndim else 1 for i in range(x.ndim)])
    y = func(v, default_alpha if alpha is None else alpha) * (default_gain if gain is None else gain)
    if clamp is None:
        return y
    return torch.minimum(torch.maximum(y, torch.full_like(y, -clamp)), torch.full_like(y, clamp))


def test_activation_table_matches_documented_defaults():
    assert set(ba.ACTIVATIONS) == set(EXPECTED)
    for act, (_, alpha, gain) in EXPECTED.items():
        assert ba.ACTIVATIONS[act].gain == pytest.approx(gain)
        if alpha is not None:
            assert ba.ACTIVATIONS[act].alpha == pytest.approx(alpha)


@pytest.mark.parametrize("act", list(EXPECTED))
def test_reference_matches_closed_form(act):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 3
    for dim, with_bias, gain, clamp, alpha in itertools.product([0, 1, 2, -1], [False, True], [None, 0.7],
                                                               [None, 0.5], [None, 0.1]):
        b = torch.randn(x.shape[dim], dtype=torch.float64) if with_bias else None
        y = ba.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
        torch.testing.assert_close(y, expected_bias_act(x, b, dim, act, alpha, gain, clamp), rtol=1e-9, atol=1e-9)


def test_defaults_are_linear_identity_and_channels_last_is_supported():
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(ba.bias_act(x), x)
    b = torch.randn(3)
    y = ba.bias_act(x.contiguous(memory_format=torch.channels_last), b, act="lrelu")
    torch.testing.assert_close(y, expected_bias_act(x, b, 1, "lrelu", None, None, None))


# Without autograd, bias_act works in place after its first op; it must give the out-of-place reference's exact
# values and memory layout, and never write into x.
@pytest.mark.parametrize("act", list(EXPECTED))
def test_inplace_path_matches_out_of_place_bitwise(act):
    torch.manual_seed(0)
    base = torch.randn(2, 3, 4, 5) * 3
    for dim, with_bias, gain, clamp, channels_last in itertools.product([1, -1], [False, True], [None, 1.0, 0.7],
                                                                        [None, 0.5], [False, True]):
        x = base.contiguous(memory_format=torch.channels_last) if channels_last else base.clone()
        b = torch.randn(x.shape[dim]) if with_bias else None
        cfg = ba._check_args(x, b, dim, act, None, gain, clamp)
        y = ba._bias_act_inplace(x, b, cfg)
        expected = ba._bias_act_ref(x, b, cfg)
        label = f"dim={dim} bias={with_bias} gain={gain} clamp={clamp} channels_last={channels_last}"
        assert torch.equal(y, expected), label
        assert y.stride() == expected.stride(), label
        assert torch.equal(x, base), label  # the input is never written
        assert (y is x) == (expected is x), label  # nothing to do: both return x itself
        # inplace=True: the result is written into x itself (activations with an in-place form).
        y = ba._bias_act_inplace(x, b, cfg, overwrite=True)
        assert torch.equal(y, expected) and y.stride() == expected.stride(), label
        if ba.ACTIVATIONS[act].func_ is not None or act == "linear":
            assert y.data_ptr() == x.data_ptr(), label


def test_inplace_path_is_used_only_without_gradients():
    torch.manual_seed(0)
    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    xg = x.clone().requires_grad_(True)
    with torch.no_grad():
        y = ba.bias_act(xg, b, act="lrelu", clamp=1.0)
    assert not y.requires_grad
    torch.testing.assert_close(y, expected_bias_act(x, b, 1, "lrelu", None, None, 1.0))
    # inplace=True is ignored when x needs a gradient: x keeps its values and the result has a graph.
    y = ba.bias_act(xg, b, act="lrelu", inplace=True)
    assert y.requires_grad and torch.equal(xg.detach(), x)
    # Only b needs a gradient: the autograd path must still run, and give b's exact gradient.
    bg = b.clone().requires_grad_(True)
    y = ba.bias_act(x, bg, act="lrelu", gain=3.0)
    assert y.requires_grad
    (grad,) = torch.autograd.grad(y.sum(), bg)
    slope = torch.where(x + b.reshape(1, 3, 1, 1) > 0, 1.0, 0.2) * 3.0
    torch.testing.assert_close(grad, slope.sum(dim=[0, 2, 3]))


# Inputs kept away from the kinks of relu/lrelu/clamp so finite differences are valid.
def _smooth_inputs(shape, dim):
    torch.manual_seed(1)
    x = torch.randn(*shape, dtype=torch.float64)
    x = x + 0.2 * torch.sign(x)
    b = torch.zeros(shape[dim], dtype=torch.float64)
    return x.requires_grad_(True), b.requires_grad_(True)


@pytest.mark.parametrize("act", list(EXPECTED))
def test_reference_gradcheck_and_gradgradcheck(act):
    x, b = _smooth_inputs((2, 3, 4), 1)
    fn = lambda x, b: ba.bias_act(x, b, dim=1, act=act, clamp=5.0)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


# With autograd, linear/relu/lrelu take `_BiasActPiecewiseLinear`: its values, first- and second-order gradients must
# match the plain-op reference, including where the clamp saturates (float64, both memory layouts).
@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
def test_piecewise_linear_path_matches_reference_to_second_order(act):
    torch.manual_seed(0)
    base = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 3
    for dim, with_bias, gain, clamp, channels_last in itertools.product([1, -1], [False, True], [None, 0.7],
                                                                        [None, 1.5], [False, True]):
        label = f"dim={dim} bias={with_bias} gain={gain} clamp={clamp} channels_last={channels_last}"
        x = (base.contiguous(memory_format=torch.channels_last) if channels_last else base.clone()).requires_grad_()
        b = torch.randn(x.shape[dim], dtype=torch.float64, requires_grad=True) if with_bias else None
        inputs = [x] + ([b] if with_bias else [])
        cfg = ba._check_args(x, b, dim, act, None, gain, clamp)
        y, yr = ba.bias_act(x, b, dim=dim, act=act, gain=gain, clamp=clamp), ba._bias_act_ref(x, b, cfg)
        if with_bias or gain is not None or clamp is not None or act != "linear":
            assert type(y.grad_fn).__name__ == "_BiasActPiecewiseLinearBackward", label
        assert torch.equal(y, yr) and y.stride() == yr.stride(), label
        if clamp is not None:
            assert (yr.abs() == clamp).any(), label  # some values saturate
        dy = torch.randn_like(y).requires_grad_()
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
        grads_ref = torch.autograd.grad(yr, inputs, dy, create_graph=True)
        for g, gr in zip(grads, grads_ref):
            torch.testing.assert_close(g, gr, rtol=1e-12, atol=1e-12, msg=label)
        # Second order, as R1 takes it: d/d(dy, x, b) of a function of the first-order gradients.
        second = sum((g.square() * (i + 1)).sum() for i, g in enumerate(grads))
        second_ref = sum((g.square() * (i + 1)).sum() for i, g in enumerate(grads_ref))
        for g, gr in zip(torch.autograd.grad(second, [dy] + inputs, allow_unused=True, materialize_grads=True),
                         torch.autograd.grad(second_ref, [dy] + inputs, allow_unused=True, materialize_grads=True)):
            torch.testing.assert_close(g, gr, rtol=1e-12, atol=1e-12, msg=label)


# Saturated outputs pass no gradient; lrelu's negative side passes alpha * gain (values written out).
def test_piecewise_linear_gradient_values():
    x = torch.tensor([-2.0, -0.5, 0.5, 3.0], requires_grad=True)
    y = ba.bias_act(x, None, dim=0, act="lrelu", alpha=0.25, gain=2.0, clamp=4.0)
    torch.testing.assert_close(y.detach(), torch.tensor([-1.0, -0.25, 1.0, 4.0]))
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, torch.tensor([0.5, 0.5, 2.0, 0.0]))


@pytest.mark.parametrize("kwargs, match", [
    ({"act": "gelu"}, "unknown act"),
    ({"b": torch.zeros(4)}, "length"),
    ({"clamp": -1.0}, "clamp"),
    ({"dim": 4}, "out of range"),
    ({"b": torch.zeros(3, dtype=torch.float64)}, "must match"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ba.bias_act(torch.zeros(2, 3, 4, 4), **kwargs)


def test_integer_input_raises():
    with pytest.raises(TypeError, match="floating-point"):
        ba.bias_act(torch.zeros(2, 3, dtype=torch.int64))


# --- CUDA kernel against the reference (needs a GPU) ---------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("act", list(EXPECTED))
def test_cuda_matches_reference(act, monkeypatch):
    monkeypatch.setenv("STYLEINV_OPS", "cuda")
    torch.manual_seed(0)
    for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 1e-5), (torch.float16, 2e-2)]:
        for dim, channels_last, clamp in itertools.product([1, 2], [False, True], [None, 0.6]):
            x = (torch.randn(3, 5, 6, 7, device="cuda") * 3).to(dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            b = torch.randn(x.shape[dim], device="cuda").to(dtype)
            x.requires_grad_(True)
            b.requires_grad_(True)
            y = ba.bias_act(x, b, dim=dim, act=act, clamp=clamp)
            assert type(y.grad_fn).__name__.startswith("_BiasActCuda")
            xr, br = x.detach().double().requires_grad_(True), b.detach().double().requires_grad_(True)
            yr = ba._bias_act_ref(xr, br, ba._check_args(xr, br, dim, act, None, None, clamp))
            torch.testing.assert_close(y.double(), yr, rtol=tol, atol=tol)
            dy = torch.randn_like(y)
            gx, gb = torch.autograd.grad(y, [x, b], dy)
            gxr, gbr = torch.autograd.grad(yr, [xr, br], dy.double())
            torch.testing.assert_close(gx.double(), gxr, rtol=tol, atol=tol * 10)
            torch.testing.assert_close(gb.double(), gbr, rtol=tol * 10, atol=tol * 100)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("act", list(EXPECTED))
def test_cuda_gradcheck_and_gradgradcheck(act, monkeypatch):
    monkeypatch.setenv("STYLEINV_OPS", "cuda")
    x, b = _smooth_inputs((2, 3, 4), 1)
    x, b = x.detach().cuda().requires_grad_(True), b.detach().cuda().requires_grad_(True)
    fn = lambda x, b: ba.bias_act(x, b, dim=1, act=act, clamp=5.0)
    assert type(fn(x, b).grad_fn).__name__.startswith("_BiasActCuda")
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))
