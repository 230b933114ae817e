"""VideoMAE-v2 ViT-g/14 video features for the content-debiased FVD (Ge et al., "On the Content Bias in Fréchet
Video Distance", CVPR 2024; their `cd-fvd` package). Our own eager module; the published fine-tuned checkpoint
`vit_g_hybrid_pt_1200e_ssv2_ft.pth` (VideoMAE-v2, Wang et al. CVPR 2023, fine-tuned on Something-Something v2) is
read as a weight container: its parameter names are this module's.

Architecture (VideoMAE-v2 `vit_giant_patch14_224`, as built by cd-fvd): tubelets of 2 frames x 14 x 14 pixels
embedded by a Conv3d to 1408 channels, fixed sinusoidal position codes for a 8 x 16 x 16 grid (interpolated in
time for other clip lengths), 40 pre-norm blocks (LayerNorm eps 1e-6, 16-head attention whose qkv projection has a
query and a value bias but no key bias, GELU MLP of width 6144), then the mean over tokens and a LayerNorm
(`fc_norm`). The feature is that 1408-d vector (cd-fvd's `forward_features`); the SSv2 classifier `head` is unused.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

VIDEOMAE_PREPROCESS = ("cdfvd", "none")
PUBLISHED_DEPTH = 40  # Transformer blocks of the published ViT-g (the constructor's defaults are its sizes).


# Tubelet embedding: Conv3d with kernel = stride = (tubelet, patch, patch), flattened to tokens [N, L, D].
class TubeletEmbed(nn.Module):
    def __init__(self, embed_dim: int, patch_size: int, tubelet_size: int):
        super().__init__()
        self.proj = nn.Conv3d(3, embed_dim, (tubelet_size, patch_size, patch_size),
                              stride=(tubelet_size, patch_size, patch_size))

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


# Multi-head self-attention; the qkv bias is (q_bias, 0, v_bias) as in BEiT / VideoMAE.
class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, L, D = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(B, L, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(head_dim)) v
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


# Pre-norm transformer block (no layer scale: the checkpoint has none).
class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, mlp_hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# Sinusoidal position codes [n, dim] (Vaswani et al.): channel j of position p is sin (j even) or cos (j odd) of
# p / 10000^(2 floor(j/2) / dim), computed in float64.
def sinusoid_table(n: int, dim: int, device=None) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float64, device=device)[:, None]
    j = torch.arange(dim, device=device)
    angle = pos / torch.pow(10000.0, (2 * (j // 2)).to(torch.float64) / dim)
    return torch.where(j % 2 == 0, torch.sin(angle), torch.cos(angle)).to(torch.float32)


# VideoMAE-v2 ViT (defaults: ViT-g/14 of the published checkpoint; smaller configs exist for tests).
# Input: [N, 3, T, H, W], T a multiple of the tubelet size. `preprocess`:
#   cdfvd: uint8 0..255 -> x / 255, each frame resized to img_size with bilinear F.interpolate (align_corners=False,
#          no antialias); no mean/std normalisation (cd-fvd's preprocess_videomae);
#   none:  float input already in [0, 1] at img_size.
# T != num_frames interpolates the position codes in time (trilinear, scale (T/tubelet + 0.1) / grid_t, as cd-fvd),
# so 128-frame clips give one 1408-d feature from 64 x 16 x 16 tokens.
class VideoMAEv2(nn.Module):
    def __init__(self, preprocess: str = "cdfvd", embed_dim: int = 1408, depth: int = 40, num_heads: int = 16,
                 mlp_hidden: int = 6144, patch_size: int = 14, tubelet_size: int = 2, img_size: int = 224,
                 num_frames: int = 16, num_classes: int = 174):
        super().__init__()
        if preprocess not in VIDEOMAE_PREPROCESS:
            raise ValueError(f"VideoMAE preprocess must be one of {VIDEOMAE_PREPROCESS}, got '{preprocess}'")
        self.preprocess, self.feature_dim, self.img_size = preprocess, embed_dim, img_size
        self.tubelet_size, self.grid = tubelet_size, (num_frames // tubelet_size, img_size // patch_size)
        self.min_frames = tubelet_size
        self.patch_embed = TubeletEmbed(embed_dim, patch_size, tubelet_size)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_hidden) for _ in range(depth)])
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)  # SSv2 logits; in the checkpoint, unused for FVD.
        self.eval()

    def train(self, mode: bool = True):  # A detector is always in inference mode.
        return super().train(False)

    # Position codes [1, L, D] for clips of T frames.
    def position_codes(self, T: int, device) -> torch.Tensor:
        t0, side = self.grid
        table = sinusoid_table(t0 * side * side, self.feature_dim, device)[None]
        t = T // self.tubelet_size
        if t == t0:
            return table
        grid = table.transpose(1, 2).reshape(1, self.feature_dim, t0, side, side)
        grid = F.interpolate(grid, scale_factor=((t + 0.1) / t0, 1, 1), mode="trilinear")  # +0.1: floor gives t.
        return grid.reshape(1, self.feature_dim, -1).transpose(1, 2)

    # Network on normalised input [N, 3, T, img, img] -> [N, D] features (mean token, fc_norm).
    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[2]
        if T < self.tubelet_size or T % self.tubelet_size:
            raise ValueError(f"VideoMAE needs a multiple of {self.tubelet_size} frames per clip, got {T}")
        x = self.patch_embed(x)
        x = x + self.position_codes(T, x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.fc_norm(x.mean(1))

    def normalize(self, video: torch.Tensor) -> torch.Tensor:
        if self.preprocess == "none":
            return video.to(torch.float32)
        n, c, t, h, w = video.shape
        x = (video.to(torch.float32) / 255).permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        return x.reshape(n, t, c, self.img_size, self.img_size).permute(0, 2, 1, 3, 4)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[1] not in (1, 3):
            raise ValueError(f"VideoMAE expects videos [N, 3, T, H, W], got shape {tuple(video.shape)}")
        if video.shape[1] == 1:
            video = video.expand(-1, 3, -1, -1, -1)
        return self.forward_normalized(self.normalize(video)).float()


# Blocks in a VideoMAE state dict (the published file has 40; a smaller count is a test or smoke-run file).
def num_blocks(sd: dict) -> int:
    return len({k.split(".")[1] for k in sd if k.startswith("blocks.")})

