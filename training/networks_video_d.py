"""First-frame-aware video discriminator of StyleInV (StyleGAN-V design; paper Sec. 3.4, Eq. 3, App. F; SPEC 3)."""

import math

import torch
from torch import nn

from training.networks_stylegan2 import Conv2dLayer, DiscriminatorBlock, DiscriminatorEpilogue, MappingNetwork
from training.plain_data import store_init_kwargs


# Embedding of the F-1 time differences between consecutive frames (SPEC 3.3): for each difference d (frames),
# a learned constant embedding indexed by round(d) concatenated with fixed Fourier features
# [sin(c_j d), cos(c_j d)], c_j = 2^j pi / R, j < log2 R, R = max_num_frames rounded up to a power of two.
class TimeDifferenceEncoder(nn.Module):
    def __init__(self, num_diffs: int, max_num_frames: int = 128, const_dim: int = 256):
        super().__init__()
        self.max_num_frames = max_num_frames
        self.const_embed = nn.Embedding(max_num_frames, const_dim) if const_dim > 0 else None
        resolution = 2 ** math.ceil(math.log2(max(max_num_frames, 2)))
        coefs = 2.0 ** torch.arange(int(math.log2(resolution)), dtype=torch.float64) * math.pi / resolution
        self.register_buffer("fourier_coefs", coefs.float(), persistent=False)
        self.out_dim = num_diffs * (const_dim + 2 * len(coefs))

    # times [N, F] in frames (non-decreasing, differences below max_num_frames) -> [N, out_dim].
    def forward(self, times: torch.Tensor) -> torch.Tensor:
        diffs = (times[:, 1:] - times[:, :-1]).float()
        lo, hi = (float(x) for x in torch.aminmax(diffs.detach()))
        if not (lo >= 0 and round(hi) < self.max_num_frames):
            raise ValueError(f"TimeDifferenceEncoder: time differences must lie in [0, {self.max_num_frames}) "
                             f"frames (times sorted), got range [{lo}, {hi}]")
        angles = diffs.unsqueeze(2) * self.fourier_coefs
        feats = [torch.sin(angles), torch.cos(angles)]
        if self.const_embed is not None:
            feats.insert(0, self.const_embed(diffs.round().long()))
        return torch.cat(feats, dim=2).flatten(1)


# The first shared block after the frame concat (SPEC 3.2): a StyleGAN2 resnet DiscriminatorBlock whose input
# is wider than its body (in = num_frames * C/2, tmp = C), so conv0 maps in -> tmp and the skip in -> out.
class ConcatDiscriminatorBlock(DiscriminatorBlock):
    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 first_layer_idx: int, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, freeze_layers: int = 0, **block_kwargs):
        super().__init__(tmp_channels, tmp_channels, out_channels, resolution, img_channels, first_layer_idx,
                         architecture="resnet", activation=activation, resample_filter=resample_filter,
                         conv_clamp=conv_clamp, freeze_layers=freeze_layers, **block_kwargs)
        self.in_channels = in_channels
        common = dict(channels_last=self.channels_last)
        self.conv0 = Conv2dLayer(in_channels, tmp_channels, 3, activation=activation, conv_clamp=conv_clamp,
                                 trainable=first_layer_idx >= freeze_layers, **common)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter,
                                trainable=first_layer_idx + 2 >= freeze_layers, **common)


# StyleGAN-V's sparse-frame discriminator, made first-frame aware by its input (Eq. 3): the F frames of a video
# [x_0, x_t1, x_t2, x_t3] (for fakes x_0 = G(w0), SPEC 3.4) go through StyleGAN2 resnet blocks as independent
# images down to concat_res (the block reaching concat_res has its channels divided by num_frames_div_factor),
# are concatenated along channels in frame order, then shared 2-D blocks down to 4x4 and the mbstd epilogue
# project onto cmap = mapping(embedding of the F-1 time differences).
# num_frames=3 with the caller dropping frame 0 and its time is Table 3 #3/#4 ("no first frame in D").
class VideoDiscriminator(nn.Module):
    @store_init_kwargs
    def __init__(self, img_resolution: int, img_channels: int = 3, num_frames: int = 4, concat_res: int = 16,
                 channel_base: int = 16384, channel_max: int = 512, num_fp16_res: int = 4, conv_clamp=256,
                 mapping_kwargs: dict | None = None, epilogue_kwargs: dict | None = None,
                 time_enc_kwargs: dict | None = None, max_num_frames: int = 128, cmap_dim: int | None = None,
                 num_frames_div_factor: int = 2, block_kwargs: dict | None = None):
        super().__init__()
        mapping_kwargs = {"num_layers": 2, **(mapping_kwargs or {})}  # Release config defaults (SPEC 3).
        epilogue_kwargs = {"mbstd_group_size": 8, "mbstd_num_channels": 1, **(epilogue_kwargs or {})}
        time_enc_kwargs, block_kwargs = dict(time_enc_kwargs or {}), dict(block_kwargs or {})
        log2 = int(math.log2(img_resolution)) if img_resolution >= 4 else 0
        if img_resolution != 2 ** log2 or not (8 <= concat_res < img_resolution) or concat_res & (concat_res - 1):
            raise ValueError(f"VideoDiscriminator: need power-of-two img_resolution > concat_res >= 8, got "
                             f"img_resolution={img_resolution}, concat_res={concat_res}")
        if num_frames < 2:
            raise ValueError(f"VideoDiscriminator: num_frames must be >= 2 (one time difference), got {num_frames}")
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.num_frames, self.concat_res = num_frames, concat_res
        resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in resolutions + [4]}
        cmap_dim = channels[4] if cmap_dim is None else cmap_dim
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        frame_channels = channels[concat_res] // num_frames_div_factor  # Per-frame channels at the concat.

        cur_layer_idx = 0
        for res in resolutions:
            in_channels = 0 if res == img_resolution else channels[res]
            out_channels = frame_channels if res // 2 == concat_res else channels[res // 2]
            common = dict(resolution=res, img_channels=img_channels, first_layer_idx=cur_layer_idx,
                          use_fp16=res >= fp16_resolution, conv_clamp=conv_clamp, **block_kwargs)
            if res == concat_res:
                block = ConcatDiscriminatorBlock(frame_channels * num_frames, channels[res], out_channels, **common)
            else:
                block = DiscriminatorBlock(in_channels, channels[res], out_channels, architecture="resnet", **common)
            setattr(self, f"b{res}", block)
            cur_layer_idx += block.num_layers
        self.time_encoder = TimeDifferenceEncoder(num_frames - 1, max_num_frames, **time_enc_kwargs)
        self.mapping = MappingNetwork(z_dim=0, c_dim=self.time_encoder.out_dim, w_dim=cmap_dim, num_ws=None,
                                      w_avg_beta=None, **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, img_channels=img_channels,
                                        architecture="resnet", conv_clamp=conv_clamp, **epilogue_kwargs)

    # Logits [N, 1] of videos given as frames [N, F, C, H, W] at frame times [N, F] (first frame first).
    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        expected = (self.num_frames, self.img_channels, self.img_resolution, self.img_resolution)
        if frames.ndim != 5 or tuple(frames.shape[1:]) != expected or tuple(times.shape) != tuple(frames.shape[:2]):
            raise ValueError(f"VideoDiscriminator: expected frames [N, {', '.join(map(str, expected))}] and times "
                             f"[N, {self.num_frames}], got {tuple(frames.shape)} and {tuple(times.shape)}")
        N, num_frames = frames.shape[:2]
        x, img = None, frames.flatten(0, 1)
        res = self.img_resolution
        while res > 4:
            if res == self.concat_res:
                x = x.reshape(N, num_frames * x.shape[1], *x.shape[2:])  # Frame-major channel concat.
            x, img = getattr(self, f"b{res}")(x, img)
            res //= 2
        cmap = self.mapping(None, self.time_encoder(times.to(frames.device)))
        return self.b4(x, None, cmap)
