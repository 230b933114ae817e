"""Tests for training/perceptual.py: LPIPS (VGG/AlexNet v0.1) and the ArcFace identity network and loss."""

import pytest
import torch
import torch.nn.functional as F
import torchvision

from tests.training.test_networks_encoder import fake_state, published_backbone_layout
from training import perceptual
from training.perceptual import LPIPS, ArcFace, IdentityLoss, load_arcface, load_lpips

TINY = dict(units_per_stage=(1, 1, 1, 1), stage_channels=(16, 16, 32, 32))
# Channels of the 5 LPIPS taps and the torchvision `features` index of each tapped ReLU.
TAPS = {"vgg": ((64, 128, 256, 512, 512), (3, 8, 15, 22, 29)),
        "alex": ((64, 192, 384, 256, 256), (1, 4, 7, 9, 11))}


# torchvision's own `features` module (built on the meta device, then materialised without the classifier).
def torchvision_features(net: str) -> torch.nn.Sequential:
    with torch.device("meta"):
        model = torchvision.models.vgg16() if net == "vgg" else torchvision.models.alexnet()
    return model.features.to_empty(device="cpu")


# Our backbone's weights under torchvision's key names (net.slice{k}.{i}.p -> features.{i}.p).
def as_torchvision_keys(lpips: LPIPS) -> dict[str, torch.Tensor]:
    return {"features." + k.split(".", 2)[2]: v for k, v in lpips.state_dict().items() if k.startswith("net.")}


def random_lpips(net: str, seed: int = 0) -> LPIPS:
    torch.manual_seed(seed)
    model = LPIPS(net, pretrained=False).eval()
    with torch.no_grad():  # Head weights are non-negative in the published files; make them so here too.
        for k in range(5):
            getattr(model, f"lin{k}").model[1].weight.uniform_(0, 1)
    return model


# Slow LPIPS from the definition, on torchvision's feature stack: shift/scale, tap the 5 ReLUs, unit-normalise
# each pixel's feature vector, squared difference, weight channels by the head, spatial mean, sum over layers.
def reference_lpips(model: LPIPS, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    features = torchvision_features(model.net_name)
    features.load_state_dict({k.removeprefix("features."): v for k, v in as_torchvision_keys(model).items()})
    _, taps = TAPS[model.net_name]
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def tapped(img):
        h, outs = (img - shift) / scale, []
        for i, layer in enumerate(features[:taps[-1] + 1]):
            h = layer(h)
            if i in taps:
                outs.append(h.clone())
        return outs

    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for k, (fx, fy) in enumerate(zip(tapped(x), tapped(y), strict=True)):
        nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        weight = getattr(model, f"lin{k}").model[1].weight.view(1, -1, 1, 1)
        total += ((nx - ny) ** 2 * weight).sum(dim=1).mean(dim=(1, 2))
    return total


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_layout_matches_torchvision_and_lpips_heads(net):
    with torch.device("meta"):
        model = LPIPS(net, pretrained=False)
    ours = {k: tuple(v.shape) for k, v in as_torchvision_keys(model).items()}
    tv = {f"features.{k}": tuple(v.shape) for k, v in torchvision_features(net).state_dict().items()}
    last_tap = TAPS[net][1][-1]
    assert ours == {k: s for k, s in tv.items() if int(k.split(".")[1]) < last_tap}
    channels, _ = TAPS[net]
    heads = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("lin")}
    assert heads == {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(channels)}
    assert model.state_dict()["scaling_layer.shift"].shape == (1, 3, 1, 1)


@pytest.mark.parametrize("net,res", [("alex", 64), ("vgg", 32)])
def test_lpips_matches_slow_reference(net, res):
    model = random_lpips(net)
    torch.manual_seed(1)
    x, y = torch.rand(2, 3, res, res) * 2 - 1, torch.rand(2, 3, res, res) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x, y), reference_lpips(model, x, y), rtol=1e-4, atol=1e-6)


def test_lpips_zero_on_equal_inputs_symmetric_and_differentiable():
    model = random_lpips("alex")
    torch.manual_seed(1)
    x = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(model(y, y), torch.zeros(3))
    d = model(x, y)
    assert d.shape == (3,) and (d > 0).all()
    torch.testing.assert_close(d, model(y, x))
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_lpips_upsamples_inputs_below_backbone_minimum():
    model = random_lpips("alex")
    torch.manual_seed(1)
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    up = [F.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False) for t in (x, y)]
    with torch.no_grad():
        torch.testing.assert_close(model(x, y), reference_lpips(model, *up), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="equal shape"):
        model(x, y[:1])
    with pytest.raises(ValueError, match="net='squeeze'"):
        LPIPS("squeeze", pretrained=False)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torchvision deprecation warnings raised inside lpips.
def test_lpips_matches_lpips_package_with_same_random_weights():
    lpips = pytest.importorskip("lpips")
    theirs = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False).eval()
    ours = LPIPS("alex", pretrained=False).eval()
    their_state = theirs.state_dict()
    ours.load_state_dict({k: their_state[k] for k in ours.state_dict()})
    torch.manual_seed(1)
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x, y), theirs(x, y).flatten(), rtol=1e-5, atol=1e-7)


# A torchvision-layout AlexNet file (features.* with random values plus a classifier entry to be ignored) and
# an lpips-layout head file, written to tmp_path.
def write_alex_files(tmp_path):
    torch.manual_seed(0)
    backbone = {f"features.{k}": torch.randn(v.shape) for k, v in torchvision_features("alex").state_dict().items()}
    head = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(TAPS["alex"][0])}
    torch.save({**backbone, "classifier.1.weight": torch.zeros(4, 4)}, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(head, tmp_path / "alex.pth")
    return backbone, head


def test_load_lpips_from_files_is_frozen(tmp_path, monkeypatch):
    backbone, head = write_alex_files(tmp_path)
    monkeypatch.setenv("STYLEINV_LPIPS_DIR", str(tmp_path))
    model = load_lpips("alex")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for k, v in as_torchvision_keys(model).items():
        assert torch.equal(v, backbone[k]), k
    for k, v in head.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_published_lpips_head_files_load():
    lpips = pytest.importorskip("lpips")
    del lpips
    for net in ("vgg", "alex"):
        file = perceptual._lpips_package_file(f"{net}.pth")
        model = LPIPS(net, pretrained=False)
        perceptual.load_checked(model, perceptual.read_state_dict(file), file, prefixes=("lin",))
        assert (model.lin0.model[1].weight >= 0).all()


def test_missing_lpips_files_name_file_and_source(tmp_path, monkeypatch):
    for var in ("STYLEINV_CACHE_DIR", "XDG_CACHE_HOME", "TORCH_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "empty"))
    monkeypatch.delenv("STYLEINV_LPIPS_DIR", raising=False)
    monkeypatch.setattr(perceptual, "_lpips_package_file", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"vgg16-397923af\.pth.*download\.pytorch\.org"):
        load_lpips("vgg")
    write_alex_files(tmp_path)
    (tmp_path / "alex.pth").unlink()
    with pytest.raises(FileNotFoundError, match=r"'alex\.pth'.*PerceptualSimilarity"):
        load_lpips("alex", backbone_path=tmp_path / "alexnet-owt-7be5be79.pth")


# ----------------------------------------------------------------------------------------------------------
# ArcFace.


# model_ir_se50.pth's output_layer entries (BN2d 512 -> Linear 512*7*7 -> 512 -> BN1d 512), from SPEC 5.
def published_output_layout() -> dict[str, tuple]:
    layout = {"output_layer.3.weight": (512, 512 * 7 * 7), "output_layer.3.bias": (512,)}
    for i in (0, 4):
        layout.update({f"output_layer.{i}.{s}": (512,) for s in ("weight", "bias", "running_mean", "running_var")})
        layout[f"output_layer.{i}.num_batches_tracked"] = ()
    return layout


def test_arcface_layout_matches_published_file():
    with torch.device("meta"):
        model = ArcFace()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == {**published_backbone_layout(), **published_output_layout()}


def test_load_arcface_from_published_layout_is_frozen(tmp_path):
    layout = {k: s for k, s in {**published_backbone_layout(), **published_output_layout()}.items()
              if not k.endswith("num_batches_tracked")}  # Old files lack the BN counters.
    state = fake_state(layout)
    torch.save(state, tmp_path / "model_ir_se50.pth")
    model = load_arcface(tmp_path / "model_ir_se50.pth")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    own = model.state_dict()
    for k in ("input_layer.0.weight", "body.23.res_layer.5.fc2.weight", "output_layer.3.weight",
              "output_layer.4.running_var"):
        assert torch.equal(own[k], state[k]), k
    del state["output_layer.3.bias"]
    torch.save(state, tmp_path / "model_ir_se50.pth")
    with pytest.raises(ValueError, match=r"model_ir_se50\.pth.*missing: output_layer\.3\.bias"):
        load_arcface(tmp_path)


def test_missing_arcface_file_names_file(tmp_path, monkeypatch):
    for var in ("STYLEINV_CACHE_DIR", "XDG_CACHE_HOME", "TORCH_HOME"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.delenv("STYLEINV_IRSE50", raising=False)
    with pytest.raises(FileNotFoundError, match=r"model_ir_se50\.pth"):
        load_arcface()


def tiny_arcface(seed: int = 0) -> ArcFace:
    torch.manual_seed(seed)
    return perceptual.freeze(ArcFace(backbone_kwargs=TINY, embedding_dim=16))


@pytest.mark.parametrize("res", [64, 256])
def test_arcface_embeddings_are_unit_vectors(res):
    model = tiny_arcface()
    emb = model(torch.rand(3, 3, res, res) * 2 - 1)
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("res", [128, 256])
def test_arcface_only_sees_the_face_crop(res):
    model = tiny_arcface()
    torch.manual_seed(1)
    x = torch.rand(2, 3, res, res) * 2 - 1
    top, bottom, left, right = (round(v * res / 256) for v in (35, 223, 32, 220))
    outside = x.clone()
    outside[:, :, :top] = 1
    outside[:, :, bottom:] = -1
    outside[:, :, :, :left] = 1
    outside[:, :, :, right:] = -1
    inside = x.clone()
    inside[:, :, top:top + 8, left:left + 8] = 1
    with torch.no_grad():
        torch.testing.assert_close(model(outside), model(x))
        assert not torch.allclose(model(inside), model(x))


def test_arcface_crop_at_256_is_psp_crop_and_pool():
    model = tiny_arcface()
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    torch.testing.assert_close(model.crop_face(x), F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112)))


def test_identity_loss_is_one_minus_cosine_with_detached_target():
    loss_fn = IdentityLoss(tiny_arcface())
    torch.manual_seed(1)
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    y = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    loss = loss_fn(x, y)
    with torch.no_grad():
        fx, fy = loss_fn.arcface(x), loss_fn.arcface(y)
    torch.testing.assert_close(loss, (1 - F.cosine_similarity(fx, fy, dim=1)).mean())
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and y.grad is None
    torch.testing.assert_close(loss_fn(y, y), torch.tensor(0.0), atol=1e-6, rtol=0)
