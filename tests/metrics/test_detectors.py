"""Tests for metrics/detectors.py: resizes, TF SAME padding, Inception/I3D plumbing, published weight layouts."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from metrics import detectors
from metrics.detectors import (
    I3D,
    InceptionV3FID,
    MaxPool3dSame,
    find_detector_file,
    load_detector,
    random_detector,
    tf1_legacy_resize,
    tf_same_pad,
)


@pytest.fixture(scope="module")
def inception():
    return random_detector("inception", seed=1)


@pytest.fixture(scope="module")
def i3d_none():
    return random_detector("i3d", seed=2, preprocess="none")


# ---------------------------------------------------------------------------------------------------------------
# Resizing.


# Direct loop over output pixels of TF1 resize_bilinear (align_corners=False): src = dst * in / out.
def _numpy_tf1_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    in_h, in_w = img.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        sy = i * in_h / out_h
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, in_h - 1), sy - y0
        for j in range(out_w):
            sx = j * in_w / out_w
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, in_w - 1), sx - x0
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * fx
            bottom = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * fx
            out[i, j] = top + (bottom - top) * fy
    return out


@pytest.mark.parametrize("src,dst", [((5, 7), (9, 4)), ((8, 8), (3, 11)), ((6, 6), (6, 6))])
def test_tf1_resize_matches_numpy_reference(src, dst):
    img = np.random.default_rng(0).uniform(0, 255, src)
    ours = tf1_legacy_resize(torch.from_numpy(img)[None, None], dst)[0, 0].numpy()
    np.testing.assert_allclose(ours, _numpy_tf1_resize(img, *dst), atol=1e-10)


def test_tf1_resize_matches_nvidia_grid_sample_formulation():
    # NVIDIA's Inception: identity affine grid shifted by 1/in - 1/out, bilinear grid_sample with border padding.
    x = torch.rand(2, 3, 13, 10, dtype=torch.float64) * 255
    theta = torch.eye(2, 3, dtype=torch.float64)
    theta[0, 2] += 1 / 10 - 1 / 17
    theta[1, 2] += 1 / 13 - 1 / 17
    grid = F.affine_grid(theta[None].repeat(2, 1, 1), [2, 3, 17, 17], align_corners=False)
    reference = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(tf1_legacy_resize(x, (17, 17)), reference, atol=1e-9, rtol=0)


def test_inception_preprocess_modes():
    img = torch.randint(0, 256, (2, 3, 20, 24), dtype=torch.uint8)
    with torch.device("meta"):  # normalize() uses no weights.
        models = {p: InceptionV3FID(p) for p in ("nvidia_tf1", "pytorch_fid")}
    nvidia = models["nvidia_tf1"].normalize(img)
    torch.testing.assert_close(nvidia, (tf1_legacy_resize(img.double(), (299, 299)).float() - 128) / 128)
    fid = models["pytorch_fid"].normalize(img)
    expected = 2 * F.interpolate(img.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(fid, expected)
    with pytest.raises(ValueError, match="preprocess"):
        InceptionV3FID("bicubic")


def test_i3d_stylegan_v_preprocess_is_per_frame_bilinear_of_rescaled_video():
    video = torch.randint(0, 256, (1, 3, 4, 30, 40), dtype=torch.uint8)
    with torch.device("meta"):
        models = {p: I3D(p) for p in ("stylegan_v", "tf1")}
    ours = models["stylegan_v"].normalize(video)
    # Independent path: trilinear on the 5-D clip with T unchanged equals per-frame bilinear.
    expected = F.interpolate(video.float() * 2 / 255 - 1, size=(4, 224, 224), mode="trilinear", align_corners=False)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    tf1 = models["tf1"].normalize(video)
    frame = tf1_legacy_resize(video[:, :, 2].float(), (224, 224)) * 2 / 255 - 1
    torch.testing.assert_close(tf1[:, :, 2], frame)


# ---------------------------------------------------------------------------------------------------------------
# TF SAME padding and I3D shapes.


def test_tf_same_pad_known_cases():
    # METRICS.md: conv1 7/2 on 224 pads 2 before, 3 after; pool (1,3,3)/(1,2,2) on 112 pads 0/1; T=17 7/2 pads 3/3.
    x = torch.zeros(1, 1, 17, 224, 112)
    assert tf_same_pad(x, (7, 7, 3), (2, 2, 2)).shape == (1, 1, 17 + 6, 224 + 5, 112 + 1)
    y = torch.zeros(1, 1, 8, 112, 112)
    assert tf_same_pad(y, (1, 3, 3), (1, 2, 2)).shape == (1, 1, 8, 113, 113)
    padded = tf_same_pad(torch.ones(1, 1, 1, 224), (7,), (2,))
    assert padded[0, 0, 0, :2].sum() == 0 and padded[0, 0, 0, 2] == 1 and padded[0, 0, 0, -3:].sum() == 0


@pytest.mark.parametrize("size,kernel,stride", [(9, 3, 2), (10, 3, 2), (7, 2, 2), (5, 3, 1), (16, 7, 2)])
def test_same_max_pool_matches_tf_definition(size, kernel, stride):
    # TF SAME: out = ceil(n / s); window i covers [i*s - before, i*s - before + k), out-of-range cells ignored.
    x = torch.randn(1, 1, size, 1, 1)
    out = MaxPool3dSame((kernel, 1, 1), (stride, 1, 1))(x)[0, 0, :, 0, 0]
    n_out = math.ceil(size / stride)
    before = max((n_out - 1) * stride + kernel - size, 0) // 2
    v = x[0, 0, :, 0, 0]
    expected = [max(v[j] for j in range(i * stride - before, i * stride - before + kernel) if 0 <= j < size)
                for i in range(n_out)]
    torch.testing.assert_close(out, torch.stack(expected))


@pytest.mark.parametrize("frames,positions", [(9, 1), (16, 1), (17, 2), (128, 15)])
def test_i3d_time_positions_before_mean(frames, positions):
    with torch.device("meta"):  # Shapes only, no compute.
        model = I3D("none")
    seen = {}
    model.conv3d_0c_1x1.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    out = model(torch.empty(2, 3, frames, 224, 224, device="meta"))
    assert seen["shape"] == (2, 400, positions, 1, 1) and out.shape == (2, 400)


def test_i3d_rejects_short_clips_and_bad_layout(i3d_none):
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d_none(torch.zeros(1, 3, 8, 16, 16))
    with pytest.raises(ValueError, match=r"\[N, 3, T, H, W\]"):
        i3d_none(torch.zeros(1, 16, 3, 32))


def test_i3d_features_shape_dtype_determinism_batch_invariance(i3d_none):
    video = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        batch = i3d_none(video)
        single = [i3d_none(video[i:i + 1]) for i in range(2)]
        again = i3d_none(video[:1])
    assert batch.shape == (2, 400) and batch.dtype == torch.float32 and torch.isfinite(batch).all()
    assert torch.equal(single[0], again)
    scale = batch.abs().max().item()
    torch.testing.assert_close(batch, torch.cat(single), rtol=0, atol=1e-4 * scale)
    assert not torch.allclose(batch[0], batch[1])


def test_inception_matches_torchvision_without_tf_pooling():
    # Same parameter names, wiring and concatenation order as torchvision's Inception3 (pytorch-fid's base).
    torchvision = pytest.importorskip("torchvision")
    ours = random_detector("inception", seed=3, tf_pooling=False)
    with torch.device("meta"):
        tv = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    tv.load_state_dict(ours.state_dict(), assign=True)
    tv.eval().fc = nn.Identity()
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(ours.forward_normalized(x), tv(x), rtol=1e-5, atol=1e-5)


def test_inception_tf_pooling_quirks(inception):
    # Mixed_5b pools without counting padding; Mixed_7c's pool branch is a max pool.
    x = torch.rand(1, 192, 7, 7)
    block = inception.Mixed_5b
    with torch.no_grad():
        pool = block(x)[:, -32:]
        expected = block.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        torch.testing.assert_close(pool, expected)
        x7 = torch.rand(1, 2048, 3, 3)
        torch.testing.assert_close(inception.Mixed_7c(x7)[:, -192:],
                                   inception.Mixed_7c.branch_pool(F.max_pool2d(x7, 3, 1, 1)))


def test_inception_features_shape_dtype_determinism_batch_invariance(inception):
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        batch = inception.forward_normalized(x)
        single = torch.cat([inception.forward_normalized(x[i:i + 1]) for i in range(2)])
        assert torch.equal(single[:1], inception.forward_normalized(x[:1]))
        full = inception(torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8))  # Real 299x299 path, once.
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-4 * batch.abs().max().item())
    assert full.shape == (1, 2048) and full.dtype == torch.float32 and torch.isfinite(full).all()
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        inception(torch.zeros(2, 4, 8, 8))


# ---------------------------------------------------------------------------------------------------------------
# Published layouts (names and shapes written out here, not taken from our modules).

_I3D_MIXED = {"3b": (192, [64, 96, 128, 16, 32, 32]), "3c": (256, [128, 128, 192, 32, 96, 64]),
              "4b": (480, [192, 96, 208, 16, 48, 64]), "4c": (512, [160, 112, 224, 24, 64, 64]),
              "4d": (512, [128, 128, 256, 24, 64, 64]), "4e": (512, [112, 144, 288, 32, 64, 64]),
              "4f": (528, [256, 160, 320, 32, 128, 128]), "5b": (832, [256, 160, 320, 32, 128, 128]),
              "5c": (832, [384, 192, 384, 48, 128, 128])}


# I3D conv units as (unit name pieces, cin, cout, kernel); `mixed` keys map to the 6 branch convs.
def _i3d_units():
    units = [("1a_7x7", 3, 64, 7), ("2b_1x1", 64, 64, 1), ("2c_3x3", 64, 192, 3)]
    for name, (cin, ch) in _I3D_MIXED.items():
        units += [((name, 0), cin, ch[0], 1), ((name, 1), cin, ch[1], 1), ((name, 2), ch[1], ch[2], 3),
                  ((name, 3), cin, ch[3], 1), ((name, 4), ch[3], ch[4], 3), ((name, 5), cin, ch[5], 1)]
    return units


# hassony2 `i3dpt.py` layout (conv3d / batch3d; Sequential branches; branch_3 = [pool, conv]).
def _hassony2_layout(g) -> dict:
    branch = ["branch_0", "branch_1.0", "branch_1.1", "branch_2.0", "branch_2.1", "branch_3.1"]
    sd = {}
    for unit, cin, cout, k in _i3d_units():
        prefix = f"conv3d_{unit}" if isinstance(unit, str) else f"mixed_{unit[0]}.{branch[unit[1]]}"
        sd[f"{prefix}.conv3d.weight"] = torch.randn(cout, cin, k, k, k, generator=g) * (2 / (cin * k ** 3)) ** 0.5
        sd[f"{prefix}.batch3d.weight"] = torch.ones(cout)
        sd[f"{prefix}.batch3d.bias"] = torch.randn(cout, generator=g) * 0.1
        sd[f"{prefix}.batch3d.running_mean"] = torch.randn(cout, generator=g) * 0.1
        sd[f"{prefix}.batch3d.running_var"] = torch.rand(cout, generator=g) + 0.5
        sd[f"{prefix}.batch3d.num_batches_tracked"] = torch.tensor(0)
    sd["conv3d_0c_1x1.conv3d.weight"] = torch.randn(400, 1024, 1, 1, 1, generator=g) * 0.03
    sd["conv3d_0c_1x1.conv3d.bias"] = torch.randn(400, generator=g)
    return sd


# piergiaj/pytorch-i3d layout: Conv3d_*/Mixed_*.b0..b3b with `.bn.`, `logits.conv3d`.
def _piergiaj_layout(g) -> dict:
    branch = ["b0", "b1a", "b1b", "b2a", "b2b", "b3b"]
    sd = {}
    for key, value in _hassony2_layout(g).items():
        parts = key.split(".")
        if parts[0].startswith("mixed_"):
            idx = ["branch_0", "branch_1.0", "branch_1.1", "branch_2.0", "branch_2.1", "branch_3.1"].index(
                ".".join(parts[1:3]) if parts[1] != "branch_0" else "branch_0")
            rest = parts[3:] if parts[1] != "branch_0" else parts[2:]
            parts = [f"Mixed_{parts[0][6:]}", branch[idx], *rest]
        elif parts[0] == "conv3d_0c_1x1":
            parts[0] = "logits"
        else:
            parts[0] = "Conv3d" + parts[0][6:]
        sd[".".join("bn" if p == "batch3d" else p for p in parts)] = value
    return sd


# NVIDIA TorchScript Inception layout (TF graph names): layers.<block>.<tower path> with weight/beta/mean/var;
# towers of A-D blocks are nested modules, E-block units are flat attributes (as in the file's printed code).
def _nvidia_layout(g) -> dict:
    def unit(cin, cout, kh, kw=None):
        return dict(weight=torch.randn(cout, cin, kh, kw or kh, generator=g) * (2 / (cin * kh * (kw or kh))) ** 0.5,
                    beta=torch.randn(cout, generator=g) * 0.1, mean=torch.randn(cout, generator=g) * 0.1,
                    var=torch.rand(cout, generator=g) + 0.5)
    units = {"conv": unit(3, 32, 3), "conv_1": unit(32, 32, 3), "conv_2": unit(32, 64, 3), "conv_3": unit(64, 80, 1),
             "conv_4": unit(80, 192, 3)}
    for block, cin, pool in (("mixed", 192, 32), ("mixed_1", 256, 64), ("mixed_2", 288, 64)):
        units |= {f"{block}.conv": unit(cin, 64, 1), f"{block}.tower.conv": unit(cin, 48, 1),
                  f"{block}.tower.conv_1": unit(48, 64, 5), f"{block}.tower_1.conv": unit(cin, 64, 1),
                  f"{block}.tower_1.conv_1": unit(64, 96, 3), f"{block}.tower_1.conv_2": unit(96, 96, 3),
                  f"{block}.tower_2.conv": unit(cin, pool, 1)}
    units |= {"mixed_3.conv": unit(288, 384, 3), "mixed_3.tower.conv": unit(288, 64, 1),
              "mixed_3.tower.conv_1": unit(64, 96, 3), "mixed_3.tower.conv_2": unit(96, 96, 3)}
    for block, c7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        units |= {f"{block}.conv": unit(768, 192, 1), f"{block}.tower.conv": unit(768, c7, 1),
                  f"{block}.tower.conv_1": unit(c7, c7, 1, 7), f"{block}.tower.conv_2": unit(c7, 192, 7, 1),
                  f"{block}.tower_1.conv": unit(768, c7, 1), f"{block}.tower_1.conv_1": unit(c7, c7, 7, 1),
                  f"{block}.tower_1.conv_2": unit(c7, c7, 1, 7), f"{block}.tower_1.conv_3": unit(c7, c7, 7, 1),
                  f"{block}.tower_1.conv_4": unit(c7, 192, 1, 7), f"{block}.tower_2.conv": unit(768, 192, 1)}
    units |= {"mixed_8.tower.conv": unit(768, 192, 1), "mixed_8.tower.conv_1": unit(192, 320, 3),
              "mixed_8.tower_1.conv": unit(768, 192, 1), "mixed_8.tower_1.conv_1": unit(192, 192, 1, 7),
              "mixed_8.tower_1.conv_2": unit(192, 192, 7, 1), "mixed_8.tower_1.conv_3": unit(192, 192, 3)}
    for block, cin in (("mixed_9", 1280), ("mixed_10", 2048)):
        units |= {f"{block}.conv": unit(cin, 320, 1), f"{block}.tower_conv": unit(cin, 384, 1),
                  f"{block}.tower_mixed_conv": unit(384, 384, 1, 3),
                  f"{block}.tower_mixed_conv_1": unit(384, 384, 3, 1),
                  f"{block}.tower_1_conv": unit(cin, 448, 1), f"{block}.tower_1_conv_1": unit(448, 384, 3),
                  f"{block}.tower_1_mixed_conv": unit(384, 384, 1, 3),
                  f"{block}.tower_1_mixed_conv_1": unit(384, 384, 3, 1), f"{block}.tower_2_conv": unit(cin, 192, 1)}
    sd = {f"layers.{u}.{p}": t for u, params in units.items() for p, t in params.items()}
    sd["output.weight"], sd["output.bias"] = torch.randn(1008, 2048, generator=g), torch.randn(1008, generator=g)
    return sd


class _Holder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# Save a flat state dict as a TorchScript archive whose module tree follows the key names.
def _save_torchscript(sd: dict, path) -> None:
    root = _Holder()
    for key, tensor in sd.items():
        *path_parts, leaf = key.split(".")
        module = root
        for p in path_parts:
            if not hasattr(module, p):
                module.add_module(p, _Holder())
            module = getattr(module, p)
        module.register_buffer(leaf, tensor)
    with pytest.warns(FutureWarning):
        torch.jit.script(root).save(str(path))


def test_nvidia_inception_layout_loads(tmp_path):
    # Saved as a plain state dict here (the TorchScript container path is exercised by the I3D test).
    sd = _nvidia_layout(torch.Generator().manual_seed(0))
    assert sum(k.endswith(".beta") for k in sd) == 94
    torch.save(sd, tmp_path / "inception-2015-12-05.pt")
    model = load_detector("inception", tmp_path)
    assert model.info["layout"] == "nvidia" and model.info["published"] is None
    assert model.info["file"].endswith("inception-2015-12-05.pt") and len(model.info["sha256"]) == 64
    ours = model.state_dict()
    torch.testing.assert_close(ours["Mixed_7b.branch3x3dbl_3a.conv.weight"],
                               sd["layers.mixed_9.tower_1_mixed_conv.weight"])
    torch.testing.assert_close(ours["Mixed_6b.branch7x7dbl_4.bn.running_var"], sd["layers.mixed_4.tower_1.conv_3.var"])
    torch.testing.assert_close(ours["Mixed_5d.branch_pool.bn.bias"], sd["layers.mixed_2.tower_2.conv.beta"])
    torch.testing.assert_close(ours["Conv2d_2b_3x3.bn.running_mean"], sd["layers.conv_2.mean"])
    torch.testing.assert_close(ours["fc.weight"], sd["output.weight"])
    assert torch.equal(ours["Mixed_7a.branch7x7x3_2.bn.weight"], torch.ones(192))


def test_pytorch_fid_layout_loads_from_torchvision_names(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    torch.save(tv.state_dict(), tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    with pytest.warns(UserWarning, match="not the published"):
        model = load_detector("inception", tmp_path / "pt_inception-2015-12-05-6726825d.pth", preprocess="pytorch_fid")
    assert model.info["layout"] == "pytorch_fid" and model.info["published"] is False
    assert model.preprocess == "pytorch_fid"
    torch.testing.assert_close(model.state_dict()["Mixed_7c.branch3x3dbl_3b.conv.weight"],
                               tv.state_dict()["Mixed_7c.branch3x3dbl_3b.conv.weight"])
    with pytest.raises(ValueError, match="not the published"):
        load_detector("inception", tmp_path / "pt_inception-2015-12-05-6726825d.pth", check="error")


def test_hassony2_torchscript_i3d_loads_and_runs(tmp_path, monkeypatch):
    sd = _hassony2_layout(torch.Generator().manual_seed(1))
    _save_torchscript(sd, tmp_path / "i3d_torchscript.pt")
    monkeypatch.setenv(detectors.DETECTOR_ENV_VAR, str(tmp_path))  # Found through the environment variable.
    with pytest.warns(UserWarning, match="not the published"):
        model = load_detector("i3d", preprocess="none")
    assert model.info["layout"] == "i3dpt" and model.info["published"] is False
    torch.testing.assert_close(model.state_dict()["mixed_4f.branch_2.1.conv3d.weight"],
                               sd["mixed_4f.branch_2.1.conv3d.weight"])
    with torch.no_grad():
        assert model(torch.rand(1, 3, 9, 16, 16) * 2 - 1).shape == (1, 400)


def test_piergiaj_i3d_layout_loads(tmp_path):
    g = torch.Generator().manual_seed(2)
    sd = _piergiaj_layout(g)
    assert "Mixed_3b.b1b.conv3d.weight" in sd and "logits.conv3d.bias" in sd and "Conv3d_2c_3x3.bn.bias" in sd
    torch.save(sd, tmp_path / "i3d_pretrained_400.pt")
    model = load_detector("i3d", tmp_path / "i3d_pretrained_400.pt")
    assert model.info["layout"] == "piergiaj"
    torch.testing.assert_close(model.state_dict()["mixed_3b.branch_3.1.batch3d.bias"], sd["Mixed_3b.b3b.bn.bias"])
    torch.testing.assert_close(model.state_dict()["conv3d_0c_1x1.conv3d.bias"], sd["logits.conv3d.bias"])


def test_wrong_layout_and_pickles_are_rejected(tmp_path):
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "i3d_torchscript.pt")
    with pytest.raises(KeyError, match="Unrecognised i3d"):
        load_detector("i3d", tmp_path / "i3d_torchscript.pt", check="off")
    (tmp_path / "inception-2015-12-05.pkl").write_bytes(b"x")
    with pytest.raises(ValueError, match="pickles"):
        load_detector("inception", tmp_path / "inception-2015-12-05.pkl")


def test_missing_file_names_file_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("STYLEINV_CACHE_DIR", raising=False)
    monkeypatch.delenv("DNNLIB_CACHE_DIR", raising=False)
    monkeypatch.delenv(detectors.DETECTOR_ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="i3d_torchscript.pt.*dropbox"):
        find_detector_file("i3d", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_detector_file("i3d", tmp_path / "nope.pt")
    # StyleGAN-V's dnnlib download cache (<md5>_<name>) is searched last.
    cached = tmp_path / ".cache" / "dnnlib" / "downloads" / "0123abcd_i3d_torchscript.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert find_detector_file("i3d") == cached


def test_explicit_folder_wins_over_file_name_order(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "styleinv").mkdir(parents=True)
    (cache / "styleinv" / "inception-2015-12-05.pt").write_bytes(b"")  # Preferred name, but only in the cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("STYLEINV_CACHE_DIR", raising=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"")
    monkeypatch.setenv(detectors.DETECTOR_ENV_VAR, str(mine))
    assert find_detector_file("inception") == mine / "pt_inception-2015-12-05-6726825d.pth"
    monkeypatch.delenv(detectors.DETECTOR_ENV_VAR)
    assert find_detector_file("inception") == cache / "styleinv" / "inception-2015-12-05.pt"
