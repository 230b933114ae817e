"""IR-SE-50 backbone and the pSp-style W-space inversion encoder E (StyleInV Sec. 3.1, Eq. 1)."""

import json
import os

import torch
import torch.nn.functional as F
from torch import nn

import dnnlib
from training.networks_stylegan2 import FullyConnectedLayer

# Where the ArcFace IR-SE-50 weights (`model_ir_se50.pth`, a plain state dict) are published.
IRSE50_SOURCE = ("the pixel2style2pixel README, 'IR-SE50 Model' link (ArcFace IR-SE50 from "
                 "TreB1eN/InsightFace_Pytorch, https://github.com/eladrich/pixel2style2pixel)")
IRSE50_FILE = "model_ir_se50.pth"
IRSE50_ENV = "STYLEINV_IRSE50"

# Units per stage of the published IR-SE backbones, keyed by depth.
UNITS_PER_STAGE = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
BASE_STAGE_CHANNELS = (64, 128, 256, 512)

# ----------------------------------------------------------------------------------------------------------
# Building blocks (SPEC 2.1).


# Squeeze-and-excitation: global average -> 1x1 conv C->C/r -> ReLU -> 1x1 conv C/r->C -> sigmoid gate.
class SEModule(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


# The bottleneck_IR_SE unit: BN-conv-PReLU-conv(stride)-BN-SE residual plus a (max-pool | conv+BN) shortcut.
# Submodule indices match model_ir_se50.pth (res_layer.0..5, shortcut_layer.0..1); no activation after the sum.
class BottleneckIRSE(nn.Module):
    def __init__(self, in_channels: int, depth: int, stride: int, se_reduction: int = 16):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, se_reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


# Plain JSON-able copy of constructor arguments (tuples become lists).
def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# IR-SE backbone (pSp / ArcFace body, SPEC 2.1): input layer conv-BN-PReLU, then 4 stages of bottleneck_IR_SE
# units in one flat `body` (keys body.N.*), stride 2 at the first unit of each stage. Depth and width are
# configurable for small CPU configs; the defaults give the published IR-SE-50 (24 units, 64/128/256/512).
class IRSEBackbone(nn.Module):
    def __init__(self, num_layers: int = 50, width: float = 1.0, in_channels: int = 3,
                 units_per_stage=None, stage_channels=None, se_reduction: int = 16):
        super().__init__()
        if units_per_stage is None:
            if num_layers not in UNITS_PER_STAGE:
                raise ValueError(f"IRSEBackbone: num_layers={num_layers} is not one of {sorted(UNITS_PER_STAGE)}; "
                                 f"pass units_per_stage explicitly")
            units_per_stage = UNITS_PER_STAGE[num_layers]
        if stage_channels is None:
            stage_channels = [max(1, int(round(c * width))) for c in BASE_STAGE_CHANNELS]
        units_per_stage, stage_channels = [int(u) for u in units_per_stage], [int(c) for c in stage_channels]
        if len(units_per_stage) != len(stage_channels) or min(units_per_stage) < 1 or min(stage_channels) < 1:
            raise ValueError(f"IRSEBackbone: need one positive unit count and channel count per stage, got "
                             f"units_per_stage={units_per_stage}, stage_channels={stage_channels}")
        self.units_per_stage, self.stage_channels = units_per_stage, stage_channels
        self.in_channels, self.out_channels = in_channels, stage_channels[-1]
        self.input_layer = nn.Sequential(
            nn.Conv2d(in_channels, stage_channels[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(stage_channels[0]),
            nn.PReLU(stage_channels[0]),
        )
        units, self.stage_ends, prev = [], [], stage_channels[0]
        for n, depth in zip(units_per_stage, stage_channels, strict=True):
            for i in range(n):
                units.append(BottleneckIRSE(prev if i == 0 else depth, depth, 2 if i == 0 else 1, se_reduction))
            self.stage_ends.append(len(units) - 1)
            prev = depth
        self.body = nn.Sequential(*units)

    # Feature map [N, out_channels, H/16, W/16] (ceil) of images [N, in_channels, H, W].
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected images [N, {self.in_channels}, H, W], "
                             f"got {tuple(x.shape)}")
        x = self.input_layer(x.contiguous(memory_format=self.memory_format(x)))
        for unit in self.body:
            x = unit(x)
        return x

    # Layout of the activations for images x: channels_last on CPU from 128 px, where oneDNN runs IR-SE-50 at
    # 256 px 1.3x faster forward and 1.06x forward + backward; the demo's small encoder at 32 px is 10-20% slower
    # in it (docs/PERFORMANCE.md). Layers keep the layout they are given; ops that drop it (repeat_interleave,
    # instance_norm) need it re-applied.
    @staticmethod
    def memory_format(x: torch.Tensor) -> torch.memory_format:
        if x.device.type == "cpu" and x.shape[-1] >= 128:
            return torch.channels_last
        return torch.contiguous_format


# ----------------------------------------------------------------------------------------------------------
# The W-space inversion encoder (Eq. 1: Inv(x) = E(x) + w_avg; SPEC 5 `BackboneEncoderUsingLastLayerIntoW`).


# pSp W encoder: IR-SE backbone (input_layer.*, body.* at the top level, as SPEC 2.6 loads them), global average
# pool, equalised FC to w_dim (`linear.*`), plus the generator's average latent (buffer `w_avg`).
class WEncoder(IRSEBackbone):
    def __init__(self, w_dim: int = 512, num_ws: int = 14, backbone_kwargs: dict | None = None,
                 lr_multiplier: float = 1.0, w_avg: torch.Tensor | None = None):
        backbone_kwargs = dict(backbone_kwargs or {})
        super().__init__(**backbone_kwargs)
        self.w_dim, self.num_ws = int(w_dim), int(num_ws)
        self.init_kwargs = _plain(dict(w_dim=self.w_dim, num_ws=self.num_ws, backbone_kwargs=backbone_kwargs,
                                       lr_multiplier=float(lr_multiplier)))
        json.dumps(self.init_kwargs)  # Fails early if a backbone kwarg is not plain data.
        self.linear = FullyConnectedLayer(self.out_channels, self.w_dim, lr_multiplier=lr_multiplier)
        self.register_buffer("w_avg", torch.zeros(self.w_dim))
        if w_avg is not None:
            self.w_avg.copy_(torch.as_tensor(w_avg).reshape(self.w_dim))

    # w = E(x) + w_avg for images x [N, 3, H, W] in [-1, 1] (any H, W: the pooling is adaptive) -> [N, w_dim].
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = super().forward(x)
        return self.linear(features.mean(dim=(2, 3))) + self.w_avg.to(features.dtype)

    # Broadcast W latents [N, w_dim] to the generator's [N, num_ws, w_dim].
    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)


# SPEC 2.6 step 1: kaiming-normal (fan_in, relu) for every nn.Conv2d / nn.Linear, biases 0. Equalised
# FullyConnectedLayer instances are neither, so they keep their own randn init; BN and PReLU are left alone.
@torch.no_grad()
def he_init_(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, FullyConnectedLayer):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                m.bias.zero_()
    return module


# ----------------------------------------------------------------------------------------------------------
# Loading the published model_ir_se50.pth.


# Read a weight file as a plain state dict of tensors (weights_only) and check it is one.
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"'{path}' is not a plain state dict of tensors (got {type(state).__name__})")
    return state


# Copy the entries of `state` whose keys start with one of `prefixes` into `module`, after checking that they
# match the module's keys and shapes exactly (BatchNorm's num_batches_tracked may be absent from old files).
def load_checked(module: nn.Module, state: dict[str, torch.Tensor], file: str | os.PathLike,
                 prefixes: tuple[str, ...] | None = None) -> None:
    own = module.state_dict()
    if prefixes is not None:
        own = {k: v for k, v in own.items() if k.startswith(prefixes)}
        state = {k: v for k, v in state.items() if k.startswith(prefixes)}
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(k for k in own if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                   for k, v in own.items() if k in state and state[k].shape != v.shape)
    if missing or unexpected or wrong:
        parts = [f"{name}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                 if keys]
        raise ValueError(f"Weight file '{file}' does not match {type(module).__name__}'s layout; "
                         + "; ".join(parts))
    with torch.no_grad():
        for k, v in own.items():
            if k in state:
                v.copy_(state[k])


# Initialise the backbone part (input_layer.*, body.*) of `module` from the published ArcFace IR-SE-50 file
# (SPEC 5 init); its output_layer.* is ignored and any head (`linear`) is left untouched.
def load_ir_se50_backbone(module: IRSEBackbone, path: str | os.PathLike | None = None) -> IRSEBackbone:
    file = dnnlib.find_weight_file(IRSE50_FILE, path, env_var=IRSE50_ENV, source=IRSE50_SOURCE)
    load_checked(module, read_state_dict(file), file, prefixes=("input_layer.", "body."))
    return module


# ----------------------------------------------------------------------------------------------------------
# Inversion with a trained encoder (used by generate.py --init-image).


# Bring images [N, 3, H, W] in [-1, 1] to the generator's resolution (anti-aliased bilinear) if needed.
def _to_resolution(images: torch.Tensor, resolution: int) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"invert: expected images [N, 3, H, W] in [-1, 1], got {tuple(images.shape)}")
    if images.shape[2:] != (resolution, resolution):
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                               antialias=True)
    return images


# Eq. 1 inversion Inv(x) = E(x) + w_avg: W latents [N, w_dim] of images at (or resized to) G's resolution.
# Runs without gradients with the encoder in eval mode (BN running statistics), restoring its mode after.
@torch.no_grad()
def invert(encoder: WEncoder, G: nn.Module, images: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
    del noise_mode  # Part of the public signature for symmetry with reconstruct(); E does not use noise.
    param = next(encoder.parameters())
    images = _to_resolution(images.to(param.device, param.dtype), int(G.img_resolution))
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder(images)
    finally:
        encoder.train(was_training)


# Eq. 1 reconstruction x_hat = G(Inv(x)): returns (w [N, w_dim], x_hat [N, 3, R, R]).
@torch.no_grad()
def reconstruct(encoder: WEncoder, G: nn.Module, images: torch.Tensor,
                noise_mode: str = "const") -> tuple[torch.Tensor, torch.Tensor]:
    w = invert(encoder, G, images)
    ws = w.unsqueeze(1).expand(-1, int(G.num_ws), -1)
    return w, G.synthesis(ws, noise_mode=noise_mode)
