"""Frozen feature networks for FID (Inception-v3, TF graph 2015-12-05) and FVD (I3D, tf.hub Kinetics-400; VideoMAE-v2
for the content-debiased FVD, metrics/videomae.py).

All are our own eager modules; the published files are used only as weight containers:
NVIDIA `inception-2015-12-05.pt` (TorchScript, its state_dict is read), pytorch-fid
`pt_inception-2015-12-05-6726825d.pth` (plain state dict), StyleGAN-V `i3d_torchscript.pt` (TorchScript) and
VideoMAE-v2 `vit_g_hybrid_pt_1200e_ssv2_ft.pth` (a torch checkpoint holding the state dict under 'model' or 'module').
Files are found by explicit path, then $STYLEINV_DETECTOR_DIR, then the cache folders; nothing is downloaded.
"""

import argparse
import functools
import hashlib
import importlib.util
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import dnnlib
from metrics.videomae import PUBLISHED_DEPTH, VIDEOMAE_PREPROCESS, VideoMAEv2, num_blocks

DETECTOR_ENV_VAR = "STYLEINV_DETECTOR_DIR"

# Published weight containers, in the order they are searched for each detector. `sha256` is a published
# checksum (None: none is published); pytorch-fid's file name carries the torch-hub SHA-256 prefix.
WEIGHT_FILES = {
    "inception": [
        dict(file="inception-2015-12-05.pt", sha256=None,
             url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"),
        dict(file="pt_inception-2015-12-05-6726825d.pth", sha256="6726825d",
             url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth"),
    ],
    "i3d": [
        dict(file="i3d_torchscript.pt", sha256="bec6519f66ea534e953026b4ae2c65553c17bf105611c746d904657e5860a5e2",
             url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"),
    ],
    "videomae": [  # The file cd-fvd downloads (also in OpenGVLab/InternVideoMAE_models, mae-g/); no checksum published.
        dict(file="vit_g_hybrid_pt_1200e_ssv2_ft.pth", sha256=None,
             url="https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/internvideo/videomaev2/"
                 "vit_g_hybrid_pt_1200e_ssv2_ft.pth"),
    ],
}
INCEPTION_PREPROCESS = ("nvidia_tf1", "pytorch_fid")
I3D_PREPROCESS = ("stylegan_v", "tf1", "none")

# ----------------------------------------------------------------------------------------------------------------
# Resizing.


# Bilinear resize of TF1 `tf.image.resize_bilinear` (align_corners=False, no half-pixel centres): output pixel i
# samples input coordinate i * in/out, the upper neighbour clamped to the border. NVIDIA's Inception emulates this
# with affine_grid + grid_sample; this is the same sampling written as two separable gathers.
def tf1_legacy_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if x.ndim != 4:
        raise ValueError(f"tf1_legacy_resize expects [N, C, H, W], got shape {tuple(x.shape)}")
    x = x.float() if not x.is_floating_point() else x
    for dim, n_out in ((2, size[0]), (3, size[1])):
        n_in = x.shape[dim]
        if n_in == n_out:
            continue
        src = torch.arange(n_out, dtype=torch.float64, device=x.device) * (n_in / n_out)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        frac = (src - i0).to(x.dtype)
        frac = frac.view(-1, 1) if dim == 2 else frac.view(1, -1)
        a, b = x.index_select(dim, i0), x.index_select(dim, i1)
        x = a + (b - a) * frac
    return x


# ----------------------------------------------------------------------------------------------------------------
# Inception-v3 for FID (torchvision / pytorch-fid parameter layout; TF pooling quirks).


# Conv (no bias) + BatchNorm (eps 1e-3; gamma is 1 in the TF graph) + ReLU.
class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


# 3x3 stride-1 pool branch. TF's SAME average pool ignores the padding (count_include_pad=False);
# `tf_pooling=False` gives torchvision's plain Inception3 behaviour (used as a test oracle only).
def _pool3x3(x, kind: str, tf_pooling: bool):
    if kind == "max":
        return F.max_pool2d(x, 3, stride=1, padding=1)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=not tf_pooling)


# Mixed_5b-5d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1.
class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int, tf_pooling: bool = True):
        super().__init__()
        self.tf_pooling = tf_pooling
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_pool3x3(x, "avg", self.tf_pooling)),
        ], 1)


# Mixed_6a (grid reduction 35 -> 17): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2.
class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


# Mixed_6b-6e: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1.
class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, tf_pooling: bool = True):
        super().__init__()
        self.tf_pooling = tf_pooling
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_pool3x3(x, "avg", self.tf_pooling))], 1)


# Mixed_7a (grid reduction 17 -> 8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2.
class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


# Mixed_7b/7c: 1x1 | 1x1-{1x3,3x1} | 1x1-3x3-{1x3,3x1} | pool-1x1. The TF graph's last block (Mixed_7c) uses a
# max pool in its pool branch, the one before it an average pool.
class InceptionE(nn.Module):
    def __init__(self, cin: int, pool: str = "avg", tf_pooling: bool = True):
        super().__init__()
        self.pool, self.tf_pooling = pool, tf_pooling
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = self.pool if self.tf_pooling else "avg"
        return torch.cat([
            self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(_pool3x3(x, pool, self.tf_pooling)),
        ], 1)


# Inception-v3 of the TF graph `inception-2015-12-05` (94 conv units); features = 2048-d pool3.
# Input: [N, 3, H, W], 0..255 (uint8 or float), any H x W; resized to 299 per `preprocess`:
#   nvidia_tf1:  TF1-legacy bilinear resize, then (x - 128) / 128   (NVIDIA / StyleGAN-V / StyleInV FID);
#   pytorch_fid: half-pixel bilinear F.interpolate of x / 255, then 2x - 1   (pytorch-fid).
class InceptionV3FID(nn.Module):
    feature_dim = 2048

    def __init__(self, preprocess: str = "nvidia_tf1", tf_pooling: bool = True):
        super().__init__()
        if preprocess not in INCEPTION_PREPROCESS:
            raise ValueError(f"Inception preprocess must be one of {INCEPTION_PREPROCESS}, got '{preprocess}'")
        self.preprocess = preprocess
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32, tf_pooling)
        self.Mixed_5c = InceptionA(256, 64, tf_pooling)
        self.Mixed_5d = InceptionA(288, 64, tf_pooling)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128, tf_pooling)
        self.Mixed_6c = InceptionC(768, 160, tf_pooling)
        self.Mixed_6d = InceptionC(768, 160, tf_pooling)
        self.Mixed_6e = InceptionC(768, 192, tf_pooling)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg", tf_pooling)
        self.Mixed_7c = InceptionE(2048, "max", tf_pooling)
        self.fc = nn.Linear(2048, 1008)  # Softmax logits of the TF graph; unused for FID.
        self.eval()

    def train(self, mode: bool = True):  # A detector is always in inference mode (BN uses running statistics).
        return super().train(False)

    # Network on normalized 299x299 input -> [N, 2048] pool3 features.
    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))  # AvgPool 8x8 at 299 input.

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        x = img.to(torch.float32)
        if self.preprocess == "nvidia_tf1":
            return (tf1_legacy_resize(x, (299, 299)) - 128) / 128
        x = F.interpolate(x / 255, size=(299, 299), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] not in (1, 3):
            raise ValueError(f"Inception expects images [N, 3, H, W] in 0..255, got shape {tuple(img.shape)}")
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return self.forward_normalized(self.normalize(img)).float()


# ----------------------------------------------------------------------------------------------------------------
# I3D (Inception-v1 inflated to 3D; tf.hub `i3d-kinetics-400/1`), parameter layout of the hassony2-derived port.


# TF "SAME" padding of the trailing len(kernel) dims: out = ceil(in / stride), total padding
# max((out - 1) * stride + k - in, 0), the extra pixel after (asymmetric when stride 2 meets an even size).
def tf_same_pad(x: torch.Tensor, kernel, stride, value: float = 0.0) -> torch.Tensor:
    pads = []
    for size, k, s in reversed(list(zip(x.shape[-len(kernel):], kernel, stride, strict=True))):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


# Conv3d + BatchNorm3d (eps 1e-3) + ReLU with TF SAME padding; the logits layer has a bias and no BN/ReLU.
class Unit3D(nn.Module):
    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), use_bn=True, bias=False, relu=True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, bias=bias)
        self.batch3d = nn.BatchNorm3d(cout, eps=1e-3) if use_bn else None

    def forward(self, x):
        x = self.conv3d(tf_same_pad(x, self.kernel, self.stride))
        if self.batch3d is not None:
            x = self.batch3d(x)
        return F.relu(x) if self.relu else x


# Max pool with TF SAME padding (padded cells never win: they are -inf).
class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(tf_same_pad(x, self.kernel, self.stride, value=float("-inf")), self.kernel, self.stride)


# Inception-v1 block inflated to 3D: 1x1 | 1x1-3x3x3 | 1x1-3x3x3 | maxpool3-1x1.
# `ch` = [branch_0, branch_1 reduce, branch_1, branch_2 reduce, branch_2, branch_3].
class Mixed3D(nn.Module):
    def __init__(self, cin: int, ch: list[int]):
        super().__init__()
        self.branch_0 = Unit3D(cin, ch[0])
        self.branch_1 = nn.Sequential(Unit3D(cin, ch[1]), Unit3D(ch[1], ch[2], (3, 3, 3)))
        self.branch_2 = nn.Sequential(Unit3D(cin, ch[3]), Unit3D(ch[3], ch[4], (3, 3, 3)))
        self.branch_3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, ch[5]))

    def forward(self, x):
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], 1)


# I3D RGB (Carreira & Zisserman 2017), the FVD embedding of Unterthiner et al.: the 400 Kinetics logits before the
# softmax, averaged over the remaining time positions (tf.hub tensor `RGB/inception_i3d/Mean:0`).
# Input: [N, 3, T, H, W] with T >= 9. `preprocess`:
#   stylegan_v: uint8 0..255 -> 2x/255 - 1, each frame resized to 224 with half-pixel bilinear F.interpolate
#               (StyleGAN-V's TorchScript with rescale=True, resize=True; the exact resize mode there is unverified);
#   tf1:        TF1-legacy bilinear resize to 224, then 2x/255 - 1 (the original TF FVD code);
#   none:       float input already in [-1, 1] (no resize).
class I3D(nn.Module):
    feature_dim = 400
    min_frames = 9

    def __init__(self, preprocess: str = "stylegan_v", num_classes: int = 400):
        super().__init__()
        if preprocess not in I3D_PREPROCESS:
            raise ValueError(f"I3D preprocess must be one of {I3D_PREPROCESS}, got '{preprocess}'")
        self.preprocess = preprocess
        self.conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.pool_2a = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.conv3d_2b_1x1 = Unit3D(64, 64)
        self.conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.pool_3a = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.mixed_3b = Mixed3D(192, [64, 96, 128, 16, 32, 32])
        self.mixed_3c = Mixed3D(256, [128, 128, 192, 32, 96, 64])
        self.pool_4a = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.mixed_4b = Mixed3D(480, [192, 96, 208, 16, 48, 64])
        self.mixed_4c = Mixed3D(512, [160, 112, 224, 24, 64, 64])
        self.mixed_4d = Mixed3D(512, [128, 128, 256, 24, 64, 64])
        self.mixed_4e = Mixed3D(512, [112, 144, 288, 32, 64, 64])
        self.mixed_4f = Mixed3D(528, [256, 160, 320, 32, 128, 128])
        self.pool_5a = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.mixed_5b = Mixed3D(832, [256, 160, 320, 32, 128, 128])
        self.mixed_5c = Mixed3D(832, [384, 192, 384, 48, 128, 128])
        self.conv3d_0c_1x1 = Unit3D(1024, num_classes, use_bn=False, bias=True, relu=False)
        self.eval()

    def train(self, mode: bool = True):  # A detector is always in inference mode.
        return super().train(False)

    # Network on normalized input -> 1024-d Mixed_5c features [N, 1024, T', H', W'].
    def forward_mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("conv3d_1a_7x7", "pool_2a", "conv3d_2b_1x1", "conv3d_2c_3x3", "pool_3a", "mixed_3b", "mixed_3c",
                     "pool_4a", "mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f", "pool_5a", "mixed_5b",
                     "mixed_5c"):
            x = getattr(self, name)(x)
        return x

    # AvgPool (2, 7, 7) stride 1 VALID, 1x1x1 logits conv, mean over the remaining positions. The spatial window
    # is 7 at 224 input; smaller inputs (tests) pool what remains.
    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] < self.min_frames:
            raise ValueError(f"I3D needs at least {self.min_frames} frames per clip, got {x.shape[2]}")
        x = self.forward_mixed_5c(x)
        x = F.avg_pool3d(x, (2, min(7, x.shape[3]), min(7, x.shape[4])), stride=1)
        return self.conv3d_0c_1x1(x).mean(dim=(2, 3, 4))

    def normalize(self, video: torch.Tensor) -> torch.Tensor:
        if self.preprocess == "none":
            return video.to(torch.float32)
        n, c, t, h, w = video.shape
        x = video.to(torch.float32).permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        if self.preprocess == "tf1":
            x = tf1_legacy_resize(x, (224, 224))
        elif (h, w) != (224, 224):
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        x = x * (2 / 255) - 1
        return x.reshape(n, t, c, 224, 224).permute(0, 2, 1, 3, 4)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[1] not in (1, 3):
            raise ValueError(f"I3D expects videos [N, 3, T, H, W], got shape {tuple(video.shape)}")
        if video.shape[1] == 1:
            video = video.expand(-1, 3, -1, -1, -1)
        return self.forward_normalized(self.normalize(video)).float()


# ----------------------------------------------------------------------------------------------------------------
# Published state-dict layouts -> ours.

# NVIDIA TorchScript Inception (TF graph names): top-level `layers.<block>` and `output`; each conv unit holds
# `weight` (conv), `beta`, `mean`, `var` (BN without gamma). Unit paths inside a block are compared with '.'
# and '_' treated alike (`tower.mixed.conv` == `tower_mixed_conv`). Our unit name -> TF unit name:
_NVIDIA_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
                "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_NVIDIA_BLOCKS = {
    "A": {"branch1x1": "conv", "branch5x5_1": "tower_conv", "branch5x5_2": "tower_conv_1",
          "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3": "tower_1_conv_2",
          "branch_pool": "tower_2_conv"},
    "B": {"branch3x3": "conv", "branch3x3dbl_1": "tower_conv", "branch3x3dbl_2": "tower_conv_1",
          "branch3x3dbl_3": "tower_conv_2"},
    "C": {"branch1x1": "conv", "branch7x7_1": "tower_conv", "branch7x7_2": "tower_conv_1",
          "branch7x7_3": "tower_conv_2", "branch7x7dbl_1": "tower_1_conv", "branch7x7dbl_2": "tower_1_conv_1",
          "branch7x7dbl_3": "tower_1_conv_2", "branch7x7dbl_4": "tower_1_conv_3", "branch7x7dbl_5": "tower_1_conv_4",
          "branch_pool": "tower_2_conv"},
    "D": {"branch3x3_1": "tower_conv", "branch3x3_2": "tower_conv_1", "branch7x7x3_1": "tower_1_conv",
          "branch7x7x3_2": "tower_1_conv_1", "branch7x7x3_3": "tower_1_conv_2", "branch7x7x3_4": "tower_1_conv_3"},
    "E": {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
          "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
          "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1",
          "branch_pool": "tower_2_conv"},
}
_NVIDIA_MIXED = [("Mixed_5b", "mixed", "A"), ("Mixed_5c", "mixed_1", "A"), ("Mixed_5d", "mixed_2", "A"),
                 ("Mixed_6a", "mixed_3", "B"), ("Mixed_6b", "mixed_4", "C"), ("Mixed_6c", "mixed_5", "C"),
                 ("Mixed_6d", "mixed_6", "C"), ("Mixed_6e", "mixed_7", "C"), ("Mixed_7a", "mixed_8", "D"),
                 ("Mixed_7b", "mixed_9", "E"), ("Mixed_7c", "mixed_10", "E")]


# (our unit prefix, NVIDIA normalized unit name) for all 94 conv units.
def nvidia_inception_units() -> list[tuple[str, str]]:
    units = [(ours, tf) for ours, tf in _NVIDIA_STEM.items()]
    for ours_block, tf_block, kind in _NVIDIA_MIXED:
        units += [(f"{ours_block}.{o}", f"{tf_block}_{t}") for o, t in _NVIDIA_BLOCKS[kind].items()]
    return units


def _nvidia_unit_key(key: str) -> tuple[str, str]:
    path, param = key.rsplit(".", 1)
    block, _, rest = path.removeprefix("layers.").partition(".")
    return (f"{block}_{rest.replace('.', '_')}" if rest else block), param


# NVIDIA TorchScript state dict -> InceptionV3FID state dict (gamma = 1).
def convert_nvidia_inception(sd: dict) -> dict:
    units = {}
    for key, value in sd.items():
        if key.startswith("layers."):
            unit, param = _nvidia_unit_key(key)
            if param in units.setdefault(unit, {}):
                raise ValueError(f"Ambiguous NVIDIA Inception key '{key}' (unit '{unit}' seen twice)")
            units[unit][param] = value
    out, used = {}, set()
    for ours, tf in nvidia_inception_units():
        p = units.get(tf)
        if p is None or not {"weight", "beta", "mean", "var"} <= p.keys():
            raise KeyError(f"NVIDIA Inception state dict has no complete conv unit '{tf}' (for {ours}); "
                           f"found units like {sorted(units)[:8]}")
        out[f"{ours}.conv.weight"] = p["weight"]
        out[f"{ours}.bn.weight"] = torch.ones_like(p["beta"])
        out[f"{ours}.bn.bias"] = p["beta"]
        out[f"{ours}.bn.running_mean"] = p["mean"]
        out[f"{ours}.bn.running_var"] = p["var"]
        used.add(tf)
    if set(units) - used:
        raise KeyError(f"NVIDIA Inception state dict has unexpected units {sorted(set(units) - used)[:8]}")
    out["fc.weight"], out["fc.bias"] = sd["output.weight"], sd["output.bias"]
    return out


# piergiaj/pytorch-i3d layout (e.g. VideoGPT/TATS `i3d_pretrained_400.pt`) -> ours.
def convert_piergiaj_i3d(sd: dict) -> dict:
    branch = {"b0": "branch_0", "b1a": "branch_1.0", "b1b": "branch_1.1", "b2a": "branch_2.0", "b2b": "branch_2.1",
              "b3b": "branch_3.1"}
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "logits":
            parts[0] = "conv3d_0c_1x1"
        elif parts[0].startswith("Mixed_"):
            parts[0] = parts[0].lower()
            parts[1:2] = branch[parts[1]].split(".")
        else:
            parts[0] = parts[0].lower()
        out[".".join("batch3d" if p == "bn" else p for p in parts)] = value
    return out


# Detect the layout of a state dict from its keys and convert it to our parameter names.
def convert_state_dict(name: str, sd: dict) -> tuple[dict, str]:
    sd = {k.removeprefix("module."): v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    if name == "inception":
        if "Mixed_7c.branch_pool.conv.weight" in sd:
            return sd, "pytorch_fid"
        if "output.weight" in sd and any(k.startswith("layers.") for k in sd):
            return convert_nvidia_inception(sd), "nvidia"
    elif name == "i3d":
        if "conv3d_1a_7x7.conv3d.weight" in sd:
            return sd, "i3dpt"
        if "Conv3d_1a_7x7.conv3d.weight" in sd:
            return convert_piergiaj_i3d(sd), "piergiaj"
    elif name == "videomae":
        if "patch_embed.proj.weight" in sd and "blocks.0.attn.qkv.weight" in sd:
            return sd, "videomaev2"
    raise KeyError(f"Unrecognised {name} weight layout; first keys: {list(sd)[:6]}")


# ----------------------------------------------------------------------------------------------------------------
# Files.


# SHA-256 of a file, streamed in 1 MiB chunks.
def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Folders where dnnlib.util.open_url caches downloads (`<md5(url)>_<file name>`), as used by StyleGAN-V/StyleInV.
def _dnnlib_download_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("DNNLIB_CACHE_DIR"):
        dirs.append(Path(os.environ["DNNLIB_CACHE_DIR"]) / "downloads")
    dirs.append(Path.home() / ".cache" / "dnnlib" / "downloads")
    return dirs


# Where an installed cd-fvd package keeps the VideoMAE file it downloaded (located without importing cd-fvd).
def _cdfvd_dirs(name: str) -> list[Path]:
    spec = importlib.util.find_spec("cdfvd") if name == "videomae" else None
    return [Path(spec.origin).parent / "third_party" / "VideoMAEv2"] if spec and spec.origin else []


# Locate the weight file of detector `name`: explicit `path` (file, or folder holding a published file name),
# $STYLEINV_DETECTOR_DIR, dnnlib.cache_dirs() (incl. $TORCH_HOME/hub/checkpoints), ~/.cache/dnnlib/downloads, then
# (VideoMAE) an installed cd-fvd package's folder.
def find_detector_file(name: str, path: str | os.PathLike | None = None) -> Path:
    if name not in WEIGHT_FILES:
        raise ValueError(f"Unknown detector '{name}'; expected one of {sorted(WEIGHT_FILES)}")
    if path is not None and Path(path).is_file():
        return Path(path)
    if path is not None and not Path(path).is_dir():
        raise FileNotFoundError(f"Detector file '{path}' does not exist")
    for folder in (path, os.environ.get(DETECTOR_ENV_VAR)):  # An explicit folder wins over file-name order.
        for entry in WEIGHT_FILES[name] if folder and Path(folder).is_dir() else []:
            if (Path(folder) / entry["file"]).is_file():
                return Path(folder) / entry["file"]
    messages = []
    for entry in WEIGHT_FILES[name]:
        try:
            return dnnlib.find_weight_file(entry["file"], path=path, env_var=DETECTOR_ENV_VAR, source=entry["url"])
        except FileNotFoundError as e:
            messages.append(str(e))
        for d in _dnnlib_download_dirs():
            hits = sorted(d.glob(f"*_{entry['file']}")) if d.is_dir() else []
            if hits:
                return hits[0]
        for d in _cdfvd_dirs(name):
            if (d / entry["file"]).is_file():
                return d / entry["file"]
    also = ", ".join([f"{d}/*_<file>" for d in _dnnlib_download_dirs()] + [str(d) for d in _cdfvd_dirs(name)])
    raise FileNotFoundError(f"No weight file for detector '{name}' (searched also {also}). " + " ".join(messages))


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


# Tensors of a weight file: TorchScript archives via torch.jit.load(...).state_dict() (weights only, the
# scripted code is never run), anything else via torch.load(weights_only=True) (argparse.Namespace allowed: training
# checkpoints store their arguments), taking the state dict under 'state_dict', 'model' or 'module' if there.
def read_weight_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    if path.suffix == ".pkl":
        raise ValueError(f"'{path}': network pickles are not read; use the TorchScript .pt or pytorch-fid .pth file")
    if _is_torchscript(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        with torch.serialization.safe_globals([argparse.Namespace]):
            sd = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model", "module"):
            if isinstance(sd, dict) and isinstance(sd.get(key), dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"'{path}' does not hold a state dict of tensors")
    return {k: v.detach().clone() for k, v in sd.items()}


# An uninitialised (meta-device) detector module: 'inception', 'i3d' or 'videomae' (kwargs: VideoMAEv2 sizes).
def build_detector(name: str, preprocess: str | None = None, **kwargs) -> nn.Module:
    with torch.device("meta"):
        if name == "inception":
            return InceptionV3FID(preprocess or "nvidia_tf1", **kwargs)
        if name == "i3d":
            return I3D(preprocess or "stylegan_v", **kwargs)
        if name == "videomae":
            return VideoMAEv2(preprocess or VIDEOMAE_PREPROCESS[0], **kwargs)
    raise ValueError(f"Unknown detector '{name}'; expected one of {sorted(WEIGHT_FILES)}")


# Build detector `name` ('inception', 'i3d' or 'videomae') with the weights of `path` (or the file found by
# find_detector_file). Returns an eval-mode module with `.info` = {name, file, sha256, layout, preprocess,
# published, blocks (VideoMAE: transformer blocks in the file, 40 in the published one)}; `published` is
# True/False when a published checksum exists, None otherwise. `check`='error' raises on a checksum mismatch,
# 'warn' warns, 'off' skips it.
def load_detector(name: str, path: str | os.PathLike | None = None, preprocess: str | None = None,
                  device: str | torch.device = "cpu", check: str = "warn") -> nn.Module:
    file = find_detector_file(name, path)
    digest = sha256_file(file)
    published = _published_match(name, file.name, digest)
    if published is False and check != "off":
        msg = (f"'{file}' has SHA-256 {digest}, which is not the published {file.name}; "
               f"its metric values are not comparable with published numbers")
        if check == "error":
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    sd, layout = convert_state_dict(name, read_weight_file(file))
    sizes = dict(depth=num_blocks(sd)) if name == "videomae" else {}
    if sizes and sizes["depth"] != PUBLISHED_DEPTH:
        warnings.warn(f"'{file}' has {sizes['depth']} transformer blocks, the published VideoMAE-v2 ViT-g has "
                      f"{PUBLISHED_DEPTH}; its features are not those of the content-debiased FVD", stacklevel=2)
    module = build_detector(name, preprocess, **sizes)  # Weights come from the file; no random initialisation.
    missing, unexpected = module.load_state_dict(sd, strict=False, assign=True)
    if missing or unexpected:
        raise KeyError(f"'{file}' ({layout} layout) does not fit {name}: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}")
    module.info = dict(name=name, file=str(file), sha256=digest, layout=layout, preprocess=module.preprocess,
                       published=published, **({"blocks": sizes["depth"]} if sizes else {}))
    return module.requires_grad_(False).to(device)


def _published_match(name: str, file_name: str, digest: str) -> bool | None:
    for entry in WEIGHT_FILES[name]:
        if entry["sha256"] is not None:
            if file_name == entry["file"] or digest.startswith(entry["sha256"]):
                return digest.startswith(entry["sha256"])
    return None


# load_detector memoised per (name, path, preprocess, device): the training loop computes metrics at every
# snapshot; the cache keeps at most 4 detectors.
@functools.lru_cache(maxsize=4)
def load_detector_cached(name: str, path: str | None, preprocess: str | None, device: str, check: str = "warn"):
    return load_detector(name, path, preprocess, device, check)


# He-normal conv weights, identity BN (mean 0, var 1, gamma 1, beta 0), small random logits: a random-weight
# detector whose activations keep their scale through the network (for tests, benchmarks, smoke runs).
def init_random_weights_(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * np.sqrt(2 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                m.weight.fill_(1)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.zero_()
                m.running_var.fill_(1)
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            else:  # Loose parameters (VideoMAE's q_bias, v_bias).
                for p in m.parameters(recurse=False):
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return module


# A random-weight detector ('inception', 'i3d' or 'videomae'; kwargs go to the constructor, e.g. depth=2 for a
# small VideoMAE), initialised once (no default init).
def random_detector(name: str, seed: int = 0, **kwargs) -> nn.Module:
    module = init_random_weights_(build_detector(name, **kwargs).to_empty(device="cpu"), seed)
    for key, buf in module.named_buffers():
        if key.endswith("num_batches_tracked"):
            buf.zero_()
    return module.requires_grad_(False)


# State dict of a random-weight detector in our layout (== pytorch-fid's for Inception, the i3dpt layout for I3D,
# the published file's for VideoMAE); torch.save it to get a file that load_detector accepts.
def random_detector_state_dict(name: str, seed: int = 0, **kwargs) -> dict:
    return random_detector(name, seed, **kwargs).state_dict()
