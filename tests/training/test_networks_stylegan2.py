"""Tests for training/networks_stylegan2.py: ADA layout, slow reference G and D, noise, truncation, w_avg."""

import math

import pytest
import torch
import torch.nn.functional as F

from training import networks_stylegan2
from training.networks_stylegan2 import Discriminator, Generator, MinibatchStdLayer, SynthesisLayer
from training.presets import STYLEGAN2_PRESETS, stylegan2_preset

SQRT2 = math.sqrt(2)

# Small CPU nets: 16 px, 8-16 channels, fp32 only.
TINY_G = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
              synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=256))
TINY_D = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16, conv_clamp=256,
              epilogue_kwargs=dict(mbstd_group_size=2))


def _tiny_g(c_dim=0, **synthesis):
    kwargs = dict(TINY_G, c_dim=c_dim)
    kwargs["synthesis_kwargs"] = dict(TINY_G["synthesis_kwargs"], **synthesis)
    return Generator(**kwargs)


# Random non-trivial values for every parameter and buffer (the init has zero biases and noise strengths).
def _randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            if "resample_filter" in name:
                continue
            t.copy_(torch.randn(t.shape, generator=gen) * (0.3 if t.ndim <= 1 else 1.0))
    return net


# ----------------------------------------------------------------------------------------------------------
# State-dict layout at paper256, written out from STYLEGAN2.md 1.2/1.3 (not produced by the code under test).


def _expected_generator_layout(c_dim: int, map_layers: int) -> list[tuple[str, list[int]]]:
    ch = lambda r: min(16384 // r, 512)
    out = []

    def synthesis_layer(prefix, cin, cout, r):
        return [(f"{prefix}.weight", [cout, cin, 3, 3]), (f"{prefix}.noise_strength", []), (f"{prefix}.bias", [cout]),
                (f"{prefix}.resample_filter", [4, 4]), (f"{prefix}.noise_const", [r, r]),
                (f"{prefix}.affine.weight", [cin, 512]), (f"{prefix}.affine.bias", [cin])]

    for r in [4, 8, 16, 32, 64, 128, 256]:
        b = f"synthesis.b{r}"
        if r == 4:
            out += [(f"{b}.const", [512, 4, 4]), (f"{b}.resample_filter", [4, 4])]
        else:
            out += [(f"{b}.resample_filter", [4, 4])] + synthesis_layer(f"{b}.conv0", ch(r // 2), ch(r), r)
        out += synthesis_layer(f"{b}.conv1", ch(r), ch(r), r)
        out += [(f"{b}.torgb.weight", [3, ch(r), 1, 1]), (f"{b}.torgb.bias", [3]),
                (f"{b}.torgb.affine.weight", [ch(r), 512]), (f"{b}.torgb.affine.bias", [ch(r)])]
    out += [("mapping.w_avg", [512])]
    if c_dim:
        out += [("mapping.embed.weight", [512, c_dim]), ("mapping.embed.bias", [512])]
    for i in range(map_layers):
        out += [(f"mapping.fc{i}.weight", [512, (512 + (512 if c_dim else 0)) if i == 0 else 512]),
                (f"mapping.fc{i}.bias", [512])]
    return out


def _expected_discriminator_layout(c_dim: int) -> list[tuple[str, list[int]]]:
    ch = lambda r: min(16384 // r, 512)
    out = []
    for r in [256, 128, 64, 32, 16, 8]:
        b = f"b{r}"
        if r == 256:
            out += [(f"{b}.resample_filter", [4, 4]), (f"{b}.fromrgb.weight", [ch(r), 3, 1, 1]),
                    (f"{b}.fromrgb.bias", [ch(r)]), (f"{b}.fromrgb.resample_filter", [4, 4])]
        else:
            out += [(f"{b}.resample_filter", [4, 4])]
        out += [(f"{b}.conv0.weight", [ch(r), ch(r), 3, 3]), (f"{b}.conv0.bias", [ch(r)]),
                (f"{b}.conv0.resample_filter", [4, 4]),
                (f"{b}.conv1.weight", [ch(r // 2), ch(r), 3, 3]), (f"{b}.conv1.bias", [ch(r // 2)]),
                (f"{b}.conv1.resample_filter", [4, 4]),
                (f"{b}.skip.weight", [ch(r // 2), ch(r), 1, 1]), (f"{b}.skip.resample_filter", [4, 4])]
    if c_dim:
        out += [("mapping.embed.weight", [512, c_dim]), ("mapping.embed.bias", [512])]
        out += sum([[(f"mapping.fc{i}.weight", [512, 512]), (f"mapping.fc{i}.bias", [512])] for i in range(8)], [])
    out += [("b4.conv.weight", [512, 513, 3, 3]), ("b4.conv.bias", [512]), ("b4.conv.resample_filter", [4, 4]),
            ("b4.fc.weight", [512, 8192]), ("b4.fc.bias", [512]),
            ("b4.out.weight", [512 if c_dim else 1, 512]), ("b4.out.bias", [512 if c_dim else 1])]
    return out


def _layout(net: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in net.state_dict().items()]


# Same keys, shapes and order as ADA's modules (per module: parameters, then buffers, then children).
def _assert_layout(net, expected):
    got = _layout(net)
    assert sorted(got) == sorted(expected)
    assert got == expected


def test_paper256_generator_layout():
    G = Generator(**stylegan2_preset("paper256").G_kwargs)
    _assert_layout(G, _expected_generator_layout(c_dim=0, map_layers=8))
    assert G.num_ws == G.synthesis.num_ws == 14
    num_params = sum(p.numel() for p in G.parameters())
    assert num_params == 24_767_458  # STYLEGAN2.md 1.2 (verified on ADA by instantiation)
    assert len(list(G.parameters())) == 110 and len(list(G.buffers())) == 34
    assert not any(p.requires_grad is False for p in G.parameters())


def test_auto_generator_parameter_count():
    G = Generator(**stylegan2_preset("auto", 256).G_kwargs)
    assert sum(p.numel() for p in G.parameters()) == 23_191_522  # STYLEGAN2.md 1.2, 2 mapping layers


def test_paper256_discriminator_layout():
    D = Discriminator(**stylegan2_preset("paper256").D_kwargs)
    _assert_layout(D, _expected_discriminator_layout(c_dim=0))
    assert sum(p.numel() for p in D.parameters()) == 24_001_089  # STYLEGAN2.md 1.3
    assert len(list(D.parameters())) == 38 and len(list(D.buffers())) == 26


def test_conditional_layouts():
    cfg = stylegan2_preset("paper256", c_dim=10)
    G = Generator(**cfg.G_kwargs)
    assert sorted(_layout(G)) == sorted(_expected_generator_layout(c_dim=10, map_layers=8))
    D = Discriminator(**cfg.D_kwargs)
    assert sorted(_layout(D)) == sorted(_expected_discriminator_layout(c_dim=10))


def test_no_noise_generator_has_no_noise_tensors():
    G = _tiny_g(use_noise=False)
    assert not any("noise" in k for k in G.state_dict())
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(G(z, None, noise_mode="random"), G(z, None, noise_mode="const"))
    assert STYLEGAN2_PRESETS["paper256_nn"]["use_noise"] is False


def test_init_kwargs_rebuild_same_layout():
    G = _tiny_g(c_dim=3)
    assert _layout(Generator(**G.init_kwargs)) == _layout(G)
    D = Discriminator(**TINY_D)
    assert _layout(Discriminator(**D.init_kwargs)) == _layout(D)
    # StyleGAN3-style flat synthesis kwargs build the same network.
    flat = dict(TINY_G)
    flat.update(flat.pop("synthesis_kwargs"))
    assert _layout(Generator(**flat)) == _layout(_tiny_g())


# ----------------------------------------------------------------------------------------------------------
# A slow reference written from STYLEGAN2.md 1.4 with per-sample loops and torch.nn.functional.

FIR = torch.tensor([1.0, 3.0, 3.0, 1.0])
FIR2D = torch.outer(FIR, FIR) / 64


def ref_fc(x, w, b, lr=1.0, act="linear"):
    y = x @ (w * (lr / math.sqrt(w.shape[1]))).t() + b * lr
    return F.leaky_relu(y, 0.2) * SQRT2 if act == "lrelu" else y


def ref_fir(x, pad, gain=1.0):  # depthwise 4x4 [1,3,3,1] filter after zero padding (l, r, t, b)
    c = x.shape[1]
    return F.conv2d(F.pad(x, pad), (FIR2D * gain).expand(c, 1, 4, 4), groups=c)


def ref_upsample(img):  # zero-insertion 2x, pad (2, 1), FIR with gain 4
    n, c, h, w = img.shape
    z = torch.zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = img
    return ref_fir(z, [2, 1, 2, 1], gain=4)


def ref_modconv(x, weight, styles, demodulate, up):  # per sample: scale weights, demodulate, conv
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w * (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        if up:  # transposed stride-2 conv with the unflipped kernel, then FIR (pad 1, gain 4)
            y = ref_fir(F.conv_transpose2d(x[n:n + 1], w.transpose(0, 1), stride=2), [1, 1, 1, 1], gain=4)
        else:
            y = F.conv2d(x[n:n + 1], w, padding=w.shape[-1] // 2)
        out.append(y)
    return torch.cat(out)


def ref_synthesis_layer(sd, p, x, w, up, noise_mode):
    styles = ref_fc(w, sd[f"{p}.affine.weight"], sd[f"{p}.affine.bias"])
    y = ref_modconv(x, sd[f"{p}.weight"], styles, demodulate=True, up=up)
    if noise_mode == "const" and f"{p}.noise_const" in sd:
        y = y + sd[f"{p}.noise_const"] * sd[f"{p}.noise_strength"]
    y = F.leaky_relu(y + sd[f"{p}.bias"].reshape(1, -1, 1, 1), 0.2) * SQRT2
    return y.clamp(-256, 256)


def ref_torgb(sd, p, x, w):
    styles = ref_fc(w, sd[f"{p}.affine.weight"], sd[f"{p}.affine.bias"]) / math.sqrt(x.shape[1])
    y = ref_modconv(x, sd[f"{p}.weight"], styles, demodulate=False, up=False)
    return (y + sd[f"{p}.bias"].reshape(1, -1, 1, 1)).clamp(-256, 256)


def ref_mapping(sd, z, c, num_layers, num_ws, prefix="mapping"):
    norm = lambda v: v / (v.square().mean(dim=1, keepdim=True) + 1e-8).sqrt()
    parts = [norm(z)] if z is not None else []
    if c is not None and f"{prefix}.embed.weight" in sd:
        parts.append(norm(ref_fc(c, sd[f"{prefix}.embed.weight"], sd[f"{prefix}.embed.bias"])))
    x = torch.cat(parts, dim=1)
    for i in range(num_layers):
        x = ref_fc(x, sd[f"{prefix}.fc{i}.weight"], sd[f"{prefix}.fc{i}.bias"], lr=0.01, act="lrelu")
    return x if num_ws is None else x.unsqueeze(1).repeat(1, num_ws, 1)


def ref_synthesis(sd, ws, resolution, noise_mode="const"):
    x = sd["synthesis.b4.const"].unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
    x = ref_synthesis_layer(sd, "synthesis.b4.conv1", x, ws[:, 0], False, noise_mode)
    img = ref_torgb(sd, "synthesis.b4.torgb", x, ws[:, 1])
    idx, r = 1, 8
    while r <= resolution:
        b = f"synthesis.b{r}"
        x = ref_synthesis_layer(sd, f"{b}.conv0", x, ws[:, idx], True, noise_mode)
        x = ref_synthesis_layer(sd, f"{b}.conv1", x, ws[:, idx + 1], False, noise_mode)
        img = ref_upsample(img) + ref_torgb(sd, f"{b}.torgb", x, ws[:, idx + 2])
        idx, r = idx + 2, r * 2
    return img


def ref_conv_layer(sd, p, x, down=False, act=True, gain=1.0, bias=True):
    w = sd[f"{p}.weight"] / math.sqrt(sd[f"{p}.weight"][0].numel())
    k = w.shape[-1]
    if down and k == 1:
        y = F.conv2d(ref_fir(x, [1, 1, 1, 1])[:, :, ::2, ::2], w)
    elif down:
        y = F.conv2d(ref_fir(x, [2, 2, 2, 2]), w, stride=2)
    else:
        y = F.conv2d(x, w, padding=k // 2)
    if bias:
        y = y + sd[f"{p}.bias"].reshape(1, -1, 1, 1)
    y = F.leaky_relu(y, 0.2) * SQRT2 * gain if act else y * gain
    return y.clamp(-256 * gain, 256 * gain) if act else y


def ref_mbstd(x, group):
    n = x.shape[0]
    g = min(group, n)
    stds = torch.zeros(n)
    for i in range(n):  # sample i is grouped with the samples j = i mod (n / g)
        members = x[[j for j in range(n) if j % (n // g) == i % (n // g)]]
        stds[i] = members.var(dim=0, unbiased=False).add(1e-8).sqrt().mean()
    return torch.cat([x, stds.reshape(n, 1, 1, 1).expand(n, 1, *x.shape[2:])], dim=1)


def ref_discriminator(sd, img, c, resolution, group, c_dim):
    x = ref_conv_layer(sd, f"b{resolution}.fromrgb", img)
    r = resolution
    while r > 4:
        y = ref_conv_layer(sd, f"b{r}.skip", x, down=True, act=False, gain=math.sqrt(0.5), bias=False)
        x = ref_conv_layer(sd, f"b{r}.conv0", x)
        x = y + ref_conv_layer(sd, f"b{r}.conv1", x, down=True, gain=math.sqrt(0.5))
        r //= 2
    x = ref_conv_layer(sd, "b4.conv", ref_mbstd(x, group))
    x = ref_fc(x.flatten(1), sd["b4.fc.weight"], sd["b4.fc.bias"], act="lrelu")
    x = ref_fc(x, sd["b4.out.weight"], sd["b4.out.bias"])
    if c_dim:
        cmap = ref_mapping(sd, None, c, 8, None)
        x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(cmap.shape[1])
    return x


@pytest.mark.parametrize("c_dim", [0, 5])
def test_generator_matches_reference(c_dim):
    torch.manual_seed(1)
    G = _randomize(_tiny_g(c_dim=c_dim)).eval()
    z, c = torch.randn(3, 8), F.one_hot(torch.tensor([0, 2, 4]), 5).float() if c_dim else torch.zeros(3, 0)
    sd = G.state_dict()
    ws_ref = ref_mapping(sd, z, c if c_dim else None, 2, G.num_ws)
    img_ref = ref_synthesis(sd, ws_ref, 16)
    with torch.no_grad():
        ws = G.mapping(z, c)
        torch.testing.assert_close(ws, ws_ref, rtol=1e-5, atol=1e-5)
        img = G(z, c, noise_mode="const")  # eval on CPU: activation scaling + batched NHWC convs
        img_fused = G.synthesis(ws, noise_mode="const", fused_modconv=True)  # grouped convs (CUDA inference)
        G.train()
        img_train = G.synthesis(ws, noise_mode="const")  # training: activation scaling (non-fused)
    assert img.shape == (3, 3, 16, 16) and img.dtype == torch.float32
    torch.testing.assert_close(img, img_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(img_train, img_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(img_fused, img_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c_dim", [0, 4])
def test_discriminator_matches_reference(c_dim):
    torch.manual_seed(2)
    D = _randomize(Discriminator(**dict(TINY_D, c_dim=c_dim))).eval()
    img = torch.randn(4, 3, 16, 16)
    c = torch.randn(4, c_dim)
    with torch.no_grad():
        logits = D(img, c)
    assert logits.shape == (4, 1)
    torch.testing.assert_close(logits, ref_discriminator(D.state_dict(), img, c, 16, 2, c_dim), rtol=1e-4, atol=1e-4)


def test_minibatch_std_grouping():
    x = torch.randn(6, 4, 3, 3)
    torch.testing.assert_close(MinibatchStdLayer(group_size=3)(x), ref_mbstd(x, 3))
    torch.testing.assert_close(MinibatchStdLayer(group_size=8)(x), ref_mbstd(x, 8))  # group = min(8, N)
    with pytest.raises(ValueError, match="divisible"):
        MinibatchStdLayer(group_size=4)(x)


def test_resnet_and_orig_synthesis_architectures_run():
    for arch in ["resnet", "orig"]:
        G = _tiny_g(architecture=arch)
        img = G(torch.randn(2, 8), None)
        assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
        img.square().sum().backward()  # in-place residual adds must not break autograd
        assert G.synthesis.b4.const.grad is not None
        assert ("synthesis.b16.skip.weight" in G.state_dict()) == (arch == "resnet")
        assert "synthesis.b8.torgb.weight" not in G.state_dict()  # only the last block has torgb
        assert G.num_ws == 1 + 2 + 2 + 1  # conv1 at 4, conv0+conv1 at 8 and 16, and the final torgb


# ----------------------------------------------------------------------------------------------------------
# Behaviour: gradients, noise modes, truncation, w_avg, freezing.


@pytest.mark.parametrize("c_dim", [0, 3])
def test_forward_backward_reaches_every_parameter(c_dim):
    G = _tiny_g(c_dim=c_dim)
    D = Discriminator(**dict(TINY_D, c_dim=c_dim))
    with torch.no_grad():
        for layer in G.modules():
            if isinstance(layer, SynthesisLayer):
                layer.noise_strength.fill_(0.1)  # zero strength would still get a gradient; make it realistic
    z, c = torch.randn(4, 8), torch.randn(4, c_dim)
    loss = F.softplus(-D(G(z, c), c)).mean()
    loss.backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("fused_modconv", [False, True])
def test_cpu_channels_last_blocks_match_contiguous(monkeypatch, fused_modconv):
    # CPU blocks run in channels_last for speed (docs/PERFORMANCE.md); the layout must not change what is computed:
    # images, D logits, every weight gradient of a G+D loss, and the R1 penalty's gradients (double backward).
    def run(memory_format):
        calls = []
        monkeypatch.setattr(networks_stylegan2, "_block_memory_format",
                            lambda *args: calls.append(args) or memory_format)
        G, D = _randomize(_tiny_g()), _randomize(Discriminator(**TINY_D), seed=1)
        z, reals = torch.randn(4, 8, generator=torch.Generator().manual_seed(2)), \
            torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
        images = G(z, None, noise_mode="const", fused_modconv=fused_modconv)
        fake_logits, real_logits = D(images, None), D(reals, None)
        (r1_grads,) = torch.autograd.grad(real_logits.sum(), [reals], create_graph=True)
        (F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean() + r1_grads.square().sum()).backward()
        grads = {f"{tag}.{name}": p.grad for tag, net in (("G", G), ("D", D)) for name, p in net.named_parameters()}
        assert len(calls) >= 2 * len(D.block_resolutions)  # every block of G and D asked for its layout
        return images.detach(), fake_logits.detach(), r1_grads.detach(), grads

    fast, plain = run(torch.channels_last), run(torch.contiguous_format)
    for a, b in zip(fast[:3], plain[:3]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert fast[3].keys() == plain[3].keys()
    for name in plain[3]:
        torch.testing.assert_close(fast[3][name], plain[3][name], rtol=1e-4, atol=1e-5, msg=name)


def test_inference_without_autograd_matches_autograd_bitwise():
    # Without autograd the ops run in place (bias_act, demodulation + noise); the images must not change at all.
    G = _randomize(_tiny_g()).eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        fast = G(z, None, noise_mode="const")
    slow = G(z, None, noise_mode="const")
    assert slow.requires_grad and torch.equal(fast, slow.detach())


def test_noise_modes():
    G = _randomize(_tiny_g()).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        const1, const2 = G(z, None, noise_mode="const"), G(z, None, noise_mode="const")
        rand1, rand2 = G(z, None, noise_mode="random"), G(z, None, noise_mode="random")
        none = G(z, None, noise_mode="none")
        torch.manual_seed(5)
        seeded1 = G(z, None)
        torch.manual_seed(5)
        seeded2 = G(z, None)
        for layer in G.modules():
            if isinstance(layer, SynthesisLayer):
                layer.noise_strength.zero_()
        silent_const = G(z, None, noise_mode="const")
    assert torch.equal(const1, const2)
    assert not torch.allclose(rand1, rand2) and not torch.allclose(rand1, const1)
    assert torch.equal(seeded1, seeded2)
    torch.testing.assert_close(none, silent_const)  # 'none' == const noise with zero strength
    assert not torch.allclose(none, const1)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, None, noise_mode="fixed")


def test_truncation():
    G = _randomize(_tiny_g()).eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        ws = G.mapping(z, None)
        w_avg = G.mapping.w_avg
        torch.testing.assert_close(G.mapping(z, None, truncation_psi=0), w_avg.expand_as(ws))
        half = G.mapping(z, None, truncation_psi=0.5)
        torch.testing.assert_close(half, w_avg + 0.5 * (ws - w_avg))
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        torch.testing.assert_close(cut[:, :2], half[:, :2])
        torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
        img_avg = G(torch.randn(2, 8), None, truncation_psi=0, noise_mode="const")
    torch.testing.assert_close(img_avg[0], img_avg[1])  # psi = 0: every z gives the average image


def test_w_avg_update():
    G = _tiny_g()
    mapping = G.mapping
    z = torch.randn(5, 8)
    before = mapping.w_avg.clone()
    w = mapping(z, None)[:, 0]
    torch.testing.assert_close(mapping.w_avg, before * 0.995 + w.detach().mean(0) * 0.005)
    after = mapping.w_avg.clone()
    mapping(z, None, skip_w_avg_update=True)
    assert torch.equal(mapping.w_avg, after)
    mapping.eval()
    mapping(z, None)
    assert torch.equal(mapping.w_avg, after)


def test_discriminator_freeze_layers():
    D = Discriminator(**dict(TINY_D, block_kwargs=dict(freeze_layers=4)))
    params = dict(D.named_parameters())
    # b16 holds layers 0-3 (fromrgb, conv0, conv1, skip): frozen as buffers; b8 (layers 4-6) is trainable.
    assert not any(k.startswith("b16.") for k in params)
    assert {"b8.conv0.weight", "b8.conv1.weight", "b8.skip.weight"} <= set(params)
    assert sorted(_layout(D)) == sorted(_layout(Discriminator(**TINY_D)))  # same keys and shapes either way


def test_tiny_presets_build_and_step():
    for name in ["tiny", "small"]:
        cfg = stylegan2_preset(name)
        assert cfg.resolution == 32
        G, D = Generator(**cfg.G_kwargs), Discriminator(**cfg.D_kwargs)
        z = torch.randn(4, G.z_dim)
        D(G(z, None), None).sum().backward()
        assert all(p.grad is not None for p in G.parameters())


def test_bad_arguments():
    with pytest.raises(ValueError, match="power of two"):
        Generator(**dict(TINY_G, img_resolution=24))
    with pytest.raises(ValueError, match="preset"):
        stylegan2_preset("paper9000")
    with pytest.raises(AssertionError):
        _tiny_g()(torch.randn(2, 7), None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_on_cuda_matches_fp32():
    G = _randomize(_tiny_g(num_fp16_res=2)).eval().cuda()
    D = _randomize(Discriminator(**dict(TINY_D, num_fp16_res=2))).eval().cuda()
    z = torch.randn(4, 8, device="cuda")
    with torch.no_grad():
        img16, img32 = G(z, None, noise_mode="const"), G(z, None, noise_mode="const", force_fp32=True)
        torch.testing.assert_close(img16, img32, rtol=0.05, atol=0.05)
        torch.testing.assert_close(D(img32, None), D(img32, None, force_fp32=True), rtol=0.05, atol=0.05)
        assert torch.equal(G.cpu()(z.cpu(), None, noise_mode="const"),
                           G(z.cpu(), None, noise_mode="const", force_fp32=True))  # CPU always runs fp32
