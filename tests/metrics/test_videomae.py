"""Tests for metrics/videomae.py (VideoMAE-v2 ViT-g features of the content-debiased FVD) and its loading."""

import argparse
import math
import sys
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metrics import detectors
from metrics.detectors import find_detector_file, load_detector, random_detector, read_weight_file
from metrics.videomae import VideoMAEv2, sinusoid_table

TINY = dict(embed_dim=32, depth=2, num_heads=4, mlp_hidden=48, img_size=28, num_frames=4)  # grid 2 x 2 x 2.


# ---------------------------------------------------------------------------------------------------------------
# Architecture at full size (meta device: shapes and names without 4 GB of weights).


# The published vit_g_hybrid_pt_1200e_ssv2_ft.pth: 526 tensors, these names and shapes (VideoMAE-v2 ViT-g/14).
def _published_layout() -> dict:
    D, HID = 1408, 6144
    layout = {"patch_embed.proj.weight": (D, 3, 2, 14, 14), "patch_embed.proj.bias": (D,),
              "fc_norm.weight": (D,), "fc_norm.bias": (D,), "head.weight": (174, D), "head.bias": (174,)}
    for i in range(40):
        b = f"blocks.{i}."
        layout.update({b + "norm1.weight": (D,), b + "norm1.bias": (D,), b + "attn.q_bias": (D,),
                       b + "attn.v_bias": (D,), b + "attn.qkv.weight": (3 * D, D), b + "attn.proj.weight": (D, D),
                       b + "attn.proj.bias": (D,), b + "norm2.weight": (D,), b + "norm2.bias": (D,),
                       b + "mlp.fc1.weight": (HID, D), b + "mlp.fc1.bias": (HID,), b + "mlp.fc2.weight": (D, HID),
                       b + "mlp.fc2.bias": (D,)})
    return layout


def test_full_size_model_has_the_published_names_and_shapes():
    with torch.device("meta"):
        model = VideoMAEv2()
    sd = model.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == _published_layout() and len(sd) == 526
    assert sum(v.numel() for v in sd.values()) == 1_011_855_918  # ~4.05 GB in float32.
    for frames in (16, 128):  # 8 x 16 x 16 and (interpolated codes) 64 x 16 x 16 tokens -> one 1408-d feature.
        out = model(torch.zeros(2, 3, frames, 64, 64, dtype=torch.uint8, device="meta"))
        assert tuple(out.shape) == (2, 1408) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="multiple of 2 frames"):
        model(torch.zeros(1, 3, 15, 64, 64, dtype=torch.uint8, device="meta"))


# ---------------------------------------------------------------------------------------------------------------
# Numerics against a slow reference written here (float64, loops over tokens and heads).


def _ref_layer_norm(x, w, b, eps=1e-6):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


# Position codes of a T/2 x side x side grid: the table for grid_t = 2 time steps, linearly interpolated in time
# with PyTorch's half-pixel rule at scale s = (t + 0.1) / grid_t: source = (i + 0.5) / s - 0.5, clamped at 0.
def _ref_positions(t, grid_t, side, dim):
    table = torch.tensor([[math.sin(p / 10000 ** (2 * (j // 2) / dim)) if j % 2 == 0 else
                           math.cos(p / 10000 ** (2 * (j // 2) / dim)) for j in range(dim)]
                          for p in range(grid_t * side * side)], dtype=torch.float32).reshape(grid_t, side * side, dim)
    table = table.double()  # Stored in float32, as VideoMAE's table; interpolated here in float64.
    if t == grid_t:
        return table.reshape(-1, dim)
    scale, rows = (t + 0.1) / grid_t, []
    for i in range(t):
        src = max((i + 0.5) / scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), grid_t - 1)
        i1, frac = min(i0 + 1, grid_t - 1), src - min(int(math.floor(src)), grid_t - 1)
        rows.append(table[i0] + (table[i1] - table[i0]) * frac)
    return torch.stack(rows).reshape(-1, dim)


def _reference_features(sd: dict, x: torch.Tensor, num_heads: int, patch: int = 14, tubelet: int = 2,
                        grid_t: int = 2) -> torch.Tensor:
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    N, _, T, H, W = x.shape
    D = sd["patch_embed.proj.weight"].shape[0]
    w_patch = sd["patch_embed.proj.weight"].reshape(D, -1)
    out = []
    for n in range(N):
        tokens = [w_patch @ x[n, :, a:a + tubelet, i:i + patch, j:j + patch].reshape(-1) + sd["patch_embed.proj.bias"]
                  for a in range(0, T, tubelet) for i in range(0, H, patch) for j in range(0, W, patch)]
        z = torch.stack(tokens) + _ref_positions(T // tubelet, grid_t, H // patch, D)
        depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
        for blk in range(depth):
            p = lambda name, blk=blk: sd[f"blocks.{blk}.{name}"]  # noqa: E731
            h = _ref_layer_norm(z, p("norm1.weight"), p("norm1.bias"))
            q = h @ p("attn.qkv.weight")[:D].T + p("attn.q_bias")
            k = h @ p("attn.qkv.weight")[D:2 * D].T
            v = h @ p("attn.qkv.weight")[2 * D:].T + p("attn.v_bias")
            hd = D // num_heads
            heads = []
            for e in range(num_heads):
                s = slice(e * hd, (e + 1) * hd)
                logits = q[:, s] @ k[:, s].T / math.sqrt(hd)
                weights = torch.exp(logits - logits.max(1, keepdim=True).values)
                heads.append((weights / weights.sum(1, keepdim=True)) @ v[:, s])
            z = z + torch.cat(heads, 1) @ p("attn.proj.weight").T + p("attn.proj.bias")
            h = _ref_layer_norm(z, p("norm2.weight"), p("norm2.bias"))
            h = h @ p("mlp.fc1.weight").T + p("mlp.fc1.bias")
            h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
            z = z + h @ p("mlp.fc2.weight").T + p("mlp.fc2.bias")
        out.append(_ref_layer_norm(z.mean(0), sd["fc_norm.weight"], sd["fc_norm.bias"]))
    return torch.stack(out)


def test_sinusoid_table_formula():
    expected = [[math.sin(p / 10000 ** (2 * (j // 2) / 6)) if j % 2 == 0 else math.cos(p / 10000 ** (2 * (j // 2) / 6))
                 for j in range(6)] for p in range(5)]
    torch.testing.assert_close(sinusoid_table(5, 6), torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("frames", [4, 6, 8])  # 4: the native grid; 6 and 8: position codes interpolated in time.
def test_features_match_slow_reference(frames):
    model = random_detector("videomae", seed=3, preprocess="none", **TINY).double()
    x = torch.rand(2, 3, frames, 28, 28, generator=torch.Generator().manual_seed(frames), dtype=torch.float64)
    ours = model.forward_normalized(x)
    # float64 throughout except the position codes (float32 in both, interpolated in float32 by the model).
    torch.testing.assert_close(ours, _reference_features(model.state_dict(), x, num_heads=4), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(ours[0], ours[1])


def test_cdfvd_preprocess_is_per_frame_bilinear_of_x_over_255():
    model = random_detector("videomae", seed=0, **TINY)
    video = torch.randint(0, 256, (1, 3, 2, 10, 14), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = model.normalize(video)
    assert x.shape == (1, 3, 2, 28, 28) and 0 <= x.min() and x.max() <= 1  # No mean/std normalisation.
    for t in range(2):
        torch.testing.assert_close(x[:, :, t], F.interpolate(video[:, :, t].double() / 255, size=(28, 28),
                                                             mode="bilinear", align_corners=False).float())
    flat = model.normalize(torch.full((1, 3, 2, 5, 5), 51, dtype=torch.uint8))
    torch.testing.assert_close(flat, torch.full((1, 3, 2, 28, 28), 0.2))


# ---------------------------------------------------------------------------------------------------------------
# Against the cd-fvd package's own model code (requirements-dev.txt), under shared random weights.


def _cdfvd_vit(dim: int, heads: int, hidden: int, depth: int):
    vit = pytest.importorskip("cdfvd.third_party.VideoMAEv2.videomaev2_finetune")
    return vit.VisionTransformer(patch_size=14, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=hidden / dim,
                                 qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_classes=174,
                                 all_frames=16, tubelet_size=2, use_mean_pooling=True).eval()


def _compare_with_cdfvd(dim, heads, hidden, depth, frames, batch):
    ours = random_detector("videomae", seed=5, embed_dim=dim, num_heads=heads, mlp_hidden=hidden, depth=depth)
    theirs = _cdfvd_vit(dim, heads, hidden, depth)
    theirs.load_state_dict(ours.state_dict(), strict=True)  # Same names: the published file loads into both.
    utils = pytest.importorskip("cdfvd.third_party.VideoMAEv2.utils")
    videos = np.random.default_rng(frames).integers(0, 256, (batch, frames, 40, 40, 3), dtype=np.uint8)  # BTHWC
    x = utils.preprocess_videomae(videos)
    ours_x = ours.normalize(torch.from_numpy(videos).permute(0, 4, 1, 2, 3))
    torch.testing.assert_close(ours_x, x, rtol=0, atol=1e-6)  # Same resize; the kernels' layouts differ (1 ulp).
    with torch.no_grad():
        torch.testing.assert_close(ours.forward_normalized(x), theirs.forward_features(x), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("frames", [16, 32])
def test_matches_cdfvd_model_code_small_width(frames):
    _compare_with_cdfvd(dim=64, heads=4, hidden=256, depth=2, frames=frames, batch=2)


@pytest.mark.slow  # One full-width ViT-g block on a 16 x 224^2 clip (~35 s on 2 cores, both models).
def test_matches_cdfvd_model_code_full_width_one_block():
    _compare_with_cdfvd(dim=1408, heads=16, hidden=6144, depth=1, frames=16, batch=1)


# ---------------------------------------------------------------------------------------------------------------
# The published file's container and lookup.


def test_published_container_loads_with_its_arguments(tmp_path):
    sd = random_detector("videomae", seed=1, depth=1).state_dict()
    path = tmp_path / "vit_g_hybrid_pt_1200e_ssv2_ft.pth"
    torch.save({"model": sd, "args": argparse.Namespace(model="vit_giant_patch14_224", nb_classes=174)}, path)
    with pytest.warns(UserWarning, match="1 transformer blocks.*has 40"):
        model = load_detector("videomae", tmp_path, check="off")
    assert model.info["layout"] == "videomaev2" and model.info["blocks"] == 1 and model.info["published"] is None
    assert model.info["preprocess"] == "cdfvd" and model.feature_dim == 1408
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    torch.save({"module": {"x": torch.ones(1)}, "epoch": 3}, tmp_path / "other.pth")
    assert list(read_weight_file(tmp_path / "other.pth")) == ["x"]


def test_missing_videomae_file_names_file_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("TORCH_HOME", "STYLEINV_CACHE_DIR", "DNNLIB_CACHE_DIR", detectors.DETECTOR_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "cdfvd", None)  # No installed cd-fvd to look into.
    monkeypatch.setattr(detectors, "_cdfvd_dirs", lambda name: [])
    with pytest.raises(FileNotFoundError, match="vit_g_hybrid_pt_1200e_ssv2_ft.pth.*internvideo/videomaev2"):
        find_detector_file("videomae", tmp_path)


def test_cdfvd_package_folder_is_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("TORCH_HOME", "STYLEINV_CACHE_DIR", "DNNLIB_CACHE_DIR", detectors.DETECTOR_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    package = tmp_path / "site" / "cdfvd"
    (package / "third_party" / "VideoMAEv2").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "third_party" / "VideoMAEv2" / "vit_g_hybrid_pt_1200e_ssv2_ft.pth").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "cdfvd", raising=False)
    found = find_detector_file("videomae")
    assert found == package / "third_party" / "VideoMAEv2" / "vit_g_hybrid_pt_1200e_ssv2_ft.pth"
