"""Frozen perceptual networks for the pSp (SPEC 5) and style-transfer (SPEC 7) losses: LPIPS and ArcFace identity."""

import importlib.util
import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import dnnlib
from training.networks_encoder import (
    IRSE50_ENV,
    IRSE50_FILE,
    IRSE50_SOURCE,
    IRSEBackbone,
    load_checked,
    read_state_dict,
)

LPIPS_ENV = "STYLEINV_LPIPS_DIR"
LPIPS_HEAD_SOURCE = ("the lpips package (PyPI 'lpips', folder lpips/weights/v0.1/) or "
                     "https://github.com/richzhang/PerceptualSimilarity/tree/master/lpips/weights/v0.1")


# The head file bundled with an installed lpips package (lpips/weights/v0.1/<name>), found without importing it.
def _lpips_package_file(name: str) -> Path | None:
    spec = importlib.util.find_spec("lpips")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        file = Path(folder) / "weights" / "v0.1" / name
        if file.is_file():
            return file
    return None


# Per backbone: the end index (into torchvision's `features`) of each of the 5 slices, their output channels,
# the smallest input the backbone accepts, and the torchvision weight file and where it is published.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
LPIPS_NETS = {
    "vgg": dict(slice_ends=(4, 9, 16, 23, 30), channels=(64, 128, 256, 512, 512), min_size=16,
                backbone_file="vgg16-397923af.pth",
                backbone_source="https://download.pytorch.org/models/vgg16-397923af.pth"),
    "alex": dict(slice_ends=(2, 5, 8, 10, 12), channels=(64, 192, 384, 256, 256), min_size=32,
                 backbone_file="alexnet-owt-7be5be79.pth",
                 backbone_source="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
}


# torchvision's VGG16 `features` (conv3x3-ReLU blocks and 2x2 max-pools), up to relu5_3.
def _vgg16_layers() -> list[nn.Module]:
    layers, prev = [], 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(prev, v, 3, padding=1), nn.ReLU()]
            prev = v
    return layers


# torchvision's AlexNet `features`, up to relu5.
def _alexnet_layers() -> list[nn.Module]:
    return [nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()]


# The backbone cut into 5 slices (slice1..slice5) whose children keep torchvision's `features` indices, so
# `features.{i}.*` in the torchvision file is `slice{k}.{i}.*` here (the lpips package's layout).
class FeatureSlices(nn.Module):
    def __init__(self, layers: list[nn.Module], slice_ends: tuple[int, ...]):
        super().__init__()
        start = 0
        for k, end in enumerate(slice_ends):
            self.add_module(f"slice{k + 1}", nn.Sequential(OrderedDict((str(i), layers[i]) for i in range(start, end))))
            start = end
        self.num_slices = len(slice_ends)

    # The 5 tapped activations (relu1_2 .. relu5_3 for VGG, relu1 .. relu5 for AlexNet).
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k in range(self.num_slices):
            x = getattr(self, f"slice{k + 1}")(x)
            outs.append(x)
        return outs


# LPIPS v0.1 linear head: dropout then a bias-free 1x1 conv C -> 1 (keys `model.1.weight`, shape [1, C, 1, 1]).
class LinearHead(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# Unit-normalise features along channels (zero vectors stay zero; the norm's gradient at 0 is taken as 0).
def normalize_features(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + eps)


# LPIPS (Zhang et al. 2018, v0.1): d(x, y) = sum_l mean_hw( w_l . (f_l(x) - f_l(y))^2 ) on channel-normalised
# backbone features f_l of the shifted/scaled inputs. Parameter names follow the lpips package
# (scaling_layer.shift/scale, net.slice{k}.{i}.*, lin{l}.model.1.weight).
class LPIPS(nn.Module):
    def __init__(self, net: str = "vgg", pretrained: bool = True, path: str | os.PathLike | None = None,
                 backbone_path: str | os.PathLike | None = None):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"LPIPS: net='{net}' is not one of {sorted(LPIPS_NETS)}")
        self.net_name, cfg = net, LPIPS_NETS[net]
        self.min_size = cfg["min_size"]
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1))
        self.scaling_layer.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1))
        layers = _vgg16_layers() if net == "vgg" else _alexnet_layers()
        self.net = FeatureSlices(layers, cfg["slice_ends"])
        for k, c in enumerate(cfg["channels"]):
            self.add_module(f"lin{k}", LinearHead(c))
        self.num_layers = len(cfg["channels"])
        if pretrained:
            self.load_pretrained(path, backbone_path)

    # Load the torchvision backbone file and the lpips v0.1 head file (found by explicit path, $STYLEINV_LPIPS_DIR,
    # the cache folders, and for the head file last the weights folder of an installed lpips package).
    def load_pretrained(self, path: str | os.PathLike | None = None,
                        backbone_path: str | os.PathLike | None = None) -> None:
        cfg = LPIPS_NETS[self.net_name]
        backbone_file = dnnlib.find_weight_file(cfg["backbone_file"], backbone_path, env_var=LPIPS_ENV,
                                                source=cfg["backbone_source"])
        try:
            head_file = dnnlib.find_weight_file(f"{self.net_name}.pth", path, env_var=LPIPS_ENV,
                                                source=LPIPS_HEAD_SOURCE)
        except FileNotFoundError:
            head_file = _lpips_package_file(f"{self.net_name}.pth") if path is None else None
            if head_file is None:
                raise
        tv_state = read_state_dict(backbone_file)
        feature_names = {name.split(".")[1] for name, _ in self.net.named_parameters()}
        backbone = {f"net.{self._slice_of(int(k.split('.')[1]))}.{k.split('.', 1)[1]}": v
                    for k, v in tv_state.items() if k.startswith("features.") and k.split(".")[1] in feature_names}
        load_checked(self, backbone, backbone_file, prefixes=("net.",))
        load_checked(self, read_state_dict(head_file), head_file, prefixes=("lin",))

    # Name of the slice holding torchvision `features` index i.
    def _slice_of(self, i: int) -> str:
        start = 0
        for k, end in enumerate(LPIPS_NETS[self.net_name]["slice_ends"]):
            if start <= i < end:
                return f"slice{k + 1}"
            start = end
        raise KeyError(i)

    # Distances [N] between image batches x, y [N, 3, H, W] in [-1, 1]. Inputs smaller than the backbone
    # accepts (32 px AlexNet, 16 px VGG) are bilinearly upsampled first.
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two image batches [N, 3, H, W] of equal shape, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[2:]) < self.min_size:
            size = [max(s, self.min_size) for s in x.shape[2:]]
            x, y = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (x, y))
        fx = self.net((x - self.scaling_layer.shift) / self.scaling_layer.scale)
        fy = self.net((y - self.scaling_layer.shift) / self.scaling_layer.scale)
        dist = 0
        for k in range(self.num_layers):
            diff = (normalize_features(fx[k]) - normalize_features(fy[k])).square()
            dist = dist + getattr(self, f"lin{k}")(diff).mean(dim=(1, 2, 3))
        return dist


# Freeze a loss network: no parameter gradients, eval mode (BN statistics, no dropout).
def freeze(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.eval()


# Frozen pretrained LPIPS ('vgg' for style transfer SPEC 7, 'alex' for pSp SPEC 5).
def load_lpips(net: str = "vgg", path: str | os.PathLike | None = None,
               backbone_path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> LPIPS:
    return freeze(LPIPS(net, pretrained=True, path=path, backbone_path=backbone_path).to(device))


# ----------------------------------------------------------------------------------------------------------
# ArcFace identity network (SPEC 5 ID loss; SPEC 7 identity loss).


# Flatten [N, C, H, W] -> [N, C*H*W] (a parameter-free stand-in at output_layer.2).
class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


# ArcFace IR-SE-50 with the published output_layer (BN2d -> Dropout -> Flatten -> Linear(C*7*7, 512) -> BN1d),
# keys exactly as in model_ir_se50.pth. Input: face images in [-1, 1] at any resolution; the face region
# [35:223, 32:220] of a 256 px image (scaled proportionally for other sizes) is resized to 112 px.
class ArcFace(IRSEBackbone):
    def __init__(self, backbone_kwargs: dict | None = None, embedding_dim: int = 512, input_size: int = 112,
                 drop_ratio: float = 0.6):
        super().__init__(**(backbone_kwargs or {}))
        self.input_size = input_size
        spatial = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(self.out_channels), nn.Dropout(drop_ratio), Flatten(),
            nn.Linear(self.out_channels * spatial * spatial, embedding_dim), nn.BatchNorm1d(embedding_dim))

    # pSp's face crop, generalised: rows 35/256..223/256 and columns 32/256..220/256 of the image, then resized
    # to input_size (adaptive average pooling as pSp when shrinking, bilinear when enlarging).
    def crop_face(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        x = x[:, :, round(35 * h / 256):round(223 * h / 256), round(32 * w / 256):round(220 * w / 256)]
        if min(x.shape[2:]) >= self.input_size:
            return F.adaptive_avg_pool2d(x, self.input_size)
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)

    # L2-normalised embeddings [N, embedding_dim] of images [N, 3, H, W] in [-1, 1].
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = super().forward(self.crop_face(x))
        return F.normalize(self.output_layer(features), dim=1)


# Identity loss: mean over the batch of 1 - cos(f(x), f(y)), with the target embeddings f(y) detached.
class IdentityLoss(nn.Module):
    def __init__(self, arcface: ArcFace):
        super().__init__()
        self.arcface = arcface

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.arcface(x), self.arcface(y).detach()
        return (1 - (fx * fy).sum(dim=1)).mean()


# Frozen pretrained ArcFace from model_ir_se50.pth (path, $STYLEINV_IRSE50, cache folders). The file must
# match exactly (input_layer.*, body.*, output_layer.*).
def load_arcface(path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                 **arcface_kwargs) -> ArcFace:
    file = dnnlib.find_weight_file(IRSE50_FILE, path, env_var=IRSE50_ENV, source=IRSE50_SOURCE)
    arcface = ArcFace(**arcface_kwargs)
    load_checked(arcface, read_state_dict(file), file)
    return freeze(arcface.to(device))
