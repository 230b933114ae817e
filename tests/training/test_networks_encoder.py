"""Tests for training/networks_encoder.py: IR-SE-50 layout, bottleneck unit, W encoder, loading and inversion."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.networks_encoder import (
    BottleneckIRSE,
    IRSEBackbone,
    WEncoder,
    he_init_,
    invert,
    load_ir_se50_backbone,
    reconstruct,
)
from training.networks_stylegan2 import FullyConnectedLayer

TINY = dict(units_per_stage=(1, 2, 1, 1), stage_channels=(16, 32, 48, 64))


# Expected model_ir_se50.pth backbone keys and shapes, written out from SPEC 2.1 (input layer, 3/4/14/3 units,
# 64/128/256/512 channels, shortcut conv+BN only where channels change, SE reduction 16, all convs bias-free).
def published_backbone_layout(with_bn_counter: bool = True) -> dict[str, tuple]:
    def bn(prefix, c):
        d = {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
             f"{prefix}.running_var": (c,)}
        if with_bn_counter:
            d[f"{prefix}.num_batches_tracked"] = ()
        return d

    layout = {"input_layer.0.weight": (64, 3, 3, 3), **bn("input_layer.1", 64), "input_layer.2.weight": (64,)}
    n, prev = 0, 64
    for units, depth in [(3, 64), (4, 128), (14, 256), (3, 512)]:
        for i in range(units):
            cin = prev if i == 0 else depth
            p = f"body.{n}"
            if cin != depth:
                layout[f"{p}.shortcut_layer.0.weight"] = (depth, cin, 1, 1)
                layout.update(bn(f"{p}.shortcut_layer.1", depth))
            layout.update(bn(f"{p}.res_layer.0", cin))
            layout[f"{p}.res_layer.1.weight"] = (depth, cin, 3, 3)
            layout[f"{p}.res_layer.2.weight"] = (depth,)
            layout[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
            layout.update(bn(f"{p}.res_layer.4", depth))
            layout[f"{p}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
            layout[f"{p}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
            n += 1
        prev = depth
    return layout


# ArcFace's output_layer entries of model_ir_se50.pth (BN2d 512, Linear 512*7*7 -> 512, BN1d 512).
def published_output_layout() -> dict[str, tuple]:
    d = {}
    for i in (0, 4):
        d.update({f"output_layer.{i}.{s}": (512,) for s in ("weight", "bias", "running_mean", "running_var")})
    d.update({"output_layer.3.weight": (512, 512 * 7 * 7), "output_layer.3.bias": (512,)})
    return d


def fake_state(layout: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) if s else torch.tensor(7) for k, s in layout.items()}
    for k, v in state.items():  # Positive variances, fan-in scaled weights: finite activations.
        if k.endswith("running_var"):
            state[k] = v.abs() + 0.5
        elif v.ndim >= 2:
            state[k] = v / v[0].numel() ** 0.5
    return state


def test_ir_se50_layout_matches_published_names_and_shapes():
    with torch.device("meta"):
        net = IRSEBackbone(50)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == published_backbone_layout()
    assert len(net.body) == 24
    assert net.stage_ends == [2, 6, 20, 23]
    assert net.stage_channels == [64, 128, 256, 512] and net.out_channels == 512


def test_w_encoder_keys_are_backbone_plus_linear_at_top_level():
    with torch.device("meta"):
        enc = WEncoder(w_dim=512, num_ws=14)
    keys = set(enc.state_dict())
    extra = keys - set(published_backbone_layout())
    assert extra == {"linear.weight", "linear.bias", "w_avg"}
    assert tuple(enc.state_dict()["linear.weight"].shape) == (512, 512)


def test_published_file_loads_into_full_size_encoder(tmp_path):
    layout = published_backbone_layout(with_bn_counter=False)  # Old files lack num_batches_tracked.
    state = fake_state({**layout, **published_output_layout()})
    torch.save(state, tmp_path / "model_ir_se50.pth")
    enc = WEncoder(w_dim=512, num_ws=14)
    linear_before = enc.linear.weight.clone()
    load_ir_se50_backbone(enc, tmp_path)  # A folder holding the file.
    own = enc.state_dict()
    for k in layout:
        assert torch.equal(own[k], state[k]), k
    assert torch.equal(enc.linear.weight, linear_before)
    w = enc.eval()(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert w.shape == (2, 512) and torch.isfinite(w).all()


def test_layout_mismatch_names_file_and_key(tmp_path):
    enc = WEncoder(w_dim=8, num_ws=2, backbone_kwargs=TINY)
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    state["body.1.res_layer.1.weight"] = torch.zeros(1, 2, 3, 3)
    file = tmp_path / "bad.pth"
    torch.save(state, file)
    with pytest.raises(ValueError, match=r"bad\.pth.*body\.1\.res_layer\.1\.weight"):
        load_ir_se50_backbone(enc, file)
    del state["body.1.res_layer.1.weight"]
    torch.save(state, file)
    with pytest.raises(ValueError, match=r"missing: body\.1\.res_layer\.1\.weight"):
        load_ir_se50_backbone(enc, file)


def test_missing_file_error_names_file_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEINV_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("STYLEINV_IRSE50", raising=False)
    enc = WEncoder(w_dim=8, num_ws=2, backbone_kwargs=TINY)
    with pytest.raises(FileNotFoundError, match=r"model_ir_se50\.pth.*pixel2style2pixel"):
        load_ir_se50_backbone(enc)


# Slow obvious bottleneck_IR_SE computed with torch.nn.functional from the unit's own parameters (eval mode).
def reference_unit(unit: BottleneckIRSE, x: torch.Tensor, stride: int) -> torch.Tensor:
    def bn(m, t):
        return (t - m.running_mean[None, :, None, None]) / torch.sqrt(m.running_var[None, :, None, None] + m.eps) \
            * m.weight[None, :, None, None] + m.bias[None, :, None, None]

    r = unit.res_layer
    h = bn(r[0], x)
    h = F.conv2d(h, r[1].weight, padding=1)
    h = torch.where(h > 0, h, r[2].weight[None, :, None, None] * h)
    h = F.conv2d(h, r[3].weight, stride=stride, padding=1)
    h = bn(r[4], h)
    s = h.mean(dim=(2, 3), keepdim=True)
    h = h * torch.sigmoid(F.conv2d(torch.relu(F.conv2d(s, r[5].fc1.weight)), r[5].fc2.weight))
    if isinstance(unit.shortcut_layer, nn.MaxPool2d):
        short = x[:, :, ::stride, ::stride]
    else:
        short = bn(unit.shortcut_layer[1], F.conv2d(x, unit.shortcut_layer[0].weight, stride=stride))
    return h + short


@pytest.mark.parametrize("cin,depth,stride", [(16, 16, 2), (16, 32, 2), (32, 32, 1)])
def test_bottleneck_matches_functional_reference(cin, depth, stride):
    torch.manual_seed(0)
    unit = BottleneckIRSE(cin, depth, stride).double()
    for m in unit.modules():  # Non-trivial BN statistics and affine parameters.
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
            m.weight.data.normal_()
            m.bias.data.normal_()
    unit.eval()
    x = torch.randn(2, cin, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(unit(x), reference_unit(unit, x, stride))
    assert unit(x).shape == (2, depth, (9 - 1) // stride + 1, (9 - 1) // stride + 1)


@pytest.mark.parametrize("res", [16, 32, 64])
def test_tiny_backbone_feature_shapes(res):
    net = IRSEBackbone(**TINY).eval()
    assert net.stage_ends == [0, 2, 3, 4]
    assert net(torch.zeros(2, 3, res, res)).shape == (2, 64, res // 16, res // 16)


def test_width_scales_channels():
    net = IRSEBackbone(num_layers=50, width=0.25)
    assert net.stage_channels == [16, 32, 64, 128]
    assert net.body[0].res_layer[5].fc1.weight.shape == (1, 16, 1, 1)


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="num_layers=34"):
        IRSEBackbone(num_layers=34)
    with pytest.raises(ValueError, match="one positive unit count"):
        IRSEBackbone(units_per_stage=(1, 1), stage_channels=(8, 8, 8))
    with pytest.raises(ValueError, match=r"expected images \[N, 3, H, W\]"):
        IRSEBackbone(**TINY)(torch.zeros(1, 4, 16, 16))


@pytest.mark.parametrize("res", [16, 32])
def test_full_size_encoder_forward_small_inputs(res):
    torch.manual_seed(0)
    enc = WEncoder(w_dim=512, num_ws=14).eval()
    with torch.no_grad():
        w = enc(torch.rand(1, 3, res, res) * 2 - 1)
    assert w.shape == (1, 512) and torch.isfinite(w).all()


def test_w_encoder_is_pooled_linear_plus_w_avg():
    torch.manual_seed(0)
    w_avg = torch.randn(8)
    enc = WEncoder(w_dim=8, num_ws=3, backbone_kwargs=TINY, w_avg=w_avg).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    feats = IRSEBackbone.forward(enc, x)
    pooled = feats.mean(dim=(2, 3))
    gain = 1 / 64 ** 0.5  # Equalised learning rate: lr_multiplier / sqrt(in_features), bias gain 1.
    expected = pooled @ (enc.linear.weight * gain).t() + enc.linear.bias + w_avg
    torch.testing.assert_close(enc(x), expected)
    ws = enc.broadcast(enc(x))
    assert ws.shape == (2, 3, 8) and torch.equal(ws[:, 2], enc(x))


def test_w_encoder_rebuilds_from_json_kwargs_and_state_dict():
    torch.manual_seed(0)
    enc = WEncoder(w_dim=8, num_ws=3, backbone_kwargs=TINY, lr_multiplier=0.5, w_avg=torch.randn(8)).eval()
    kwargs = json.loads(json.dumps(enc.init_kwargs))
    clone = WEncoder(**kwargs)
    clone.load_state_dict(enc.state_dict())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(clone.eval()(x), enc(x))


def test_he_init_conv_std_and_fc_untouched():
    torch.manual_seed(0)
    enc = WEncoder(w_dim=8, num_ws=2, backbone_kwargs=dict(units_per_stage=(1, 1, 1, 1),
                                                           stage_channels=(64, 64, 64, 64)))
    linear_before = enc.linear.weight.clone()
    bn_before = enc.body[0].res_layer[0].weight.clone()
    extra = nn.Linear(400, 300)  # nn.Linear gets He init and zero bias too.
    enc.extra = extra
    he_init_(enc)
    conv = enc.body[1].res_layer[1].weight  # fan_in = 64 * 9.
    assert abs(conv.std().item() - (2 / (64 * 9)) ** 0.5) < 0.05 * (2 / (64 * 9)) ** 0.5
    assert abs(extra.weight.std().item() - (2 / 400) ** 0.5) < 0.05 * (2 / 400) ** 0.5
    assert torch.equal(extra.bias, torch.zeros(300))
    assert torch.equal(enc.linear.weight, linear_before)
    assert torch.equal(enc.body[0].res_layer[0].weight, bn_before)
    assert isinstance(enc.linear, FullyConnectedLayer)


# Minimal generator stand-in: records what synthesis receives and returns a tensor built from ws.
class StubG(nn.Module):
    img_resolution, num_ws = 16, 3

    def synthesis(self, ws, noise_mode="random"):
        self.seen = (ws, noise_mode)
        return ws.sum(dim=(1, 2))[:, None, None, None].expand(-1, 3, 16, 16)


def test_invert_resizes_to_generator_resolution_without_grad():
    torch.manual_seed(0)
    enc = WEncoder(w_dim=8, num_ws=3, backbone_kwargs=TINY, w_avg=torch.randn(8))
    with torch.no_grad():  # Non-trivial BN running statistics so eval vs. train mode matters.
        for m in enc.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
    enc.train()
    levels = torch.tensor([-0.5, 0.3]).view(2, 1, 1, 1)
    big = levels.expand(2, 3, 32, 32).clone().requires_grad_(True)  # Constant images: resizing keeps them.
    w = invert(enc, StubG(), big)
    assert enc.training and not w.requires_grad
    enc.eval()
    torch.testing.assert_close(w, enc(levels.expand(2, 3, 16, 16)))
    with pytest.raises(ValueError, match="invert"):
        invert(enc, StubG(), torch.zeros(2, 1, 16, 16))


def test_reconstruct_broadcasts_w_and_passes_noise_mode():
    torch.manual_seed(0)
    enc = WEncoder(w_dim=8, num_ws=3, backbone_kwargs=TINY).eval()
    G = StubG()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    w, img = reconstruct(enc, G, x, noise_mode="none")
    ws, mode = G.seen
    assert mode == "none" and ws.shape == (2, 3, 8) and torch.equal(ws[:, 1], w)
    torch.testing.assert_close(img[:, 0, 0, 0], 3 * w.sum(dim=1))


# On CPU the W encoder's activations are channels_last from 128 px (IRSEBackbone.memory_format): output, input
# gradient and weight gradients equal a contiguous run's (stage 2 trains it, projection differentiates it).
def test_cpu_channels_last_w_encoder_matches_contiguous(monkeypatch):
    assert IRSEBackbone.memory_format(torch.zeros(1, 3, 64, 64)) == torch.contiguous_format
    x = (torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1).requires_grad_(True)
    runs = []
    for contiguous in (False, True):
        if contiguous:
            monkeypatch.setattr(IRSEBackbone, "memory_format", staticmethod(lambda x: torch.contiguous_format))
        torch.manual_seed(0)
        enc = WEncoder(w_dim=8, num_ws=3, backbone_kwargs=TINY).train()
        feats = IRSEBackbone.forward(enc, x)
        w = enc(x)
        x.grad = None
        w.square().sum().backward()
        runs.append((feats.is_contiguous(memory_format=torch.channels_last), w, x.grad,
                     {n: p.grad for n, p in enc.named_parameters()}))
    (last, w, x_grad, grads), (last_c, w_c, x_grad_c, grads_c) = runs
    assert last and not last_c
    torch.testing.assert_close(w, w_c, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x_grad, x_grad_c, rtol=1e-4, atol=1e-6)
    for name, grad in grads.items():
        ref = grads_c[name]  # weight gradients sum over every pixel: tolerance relative to their scale
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4 * max(1.0, ref.abs().max().item()), msg=name)
