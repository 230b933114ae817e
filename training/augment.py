"""ADA augmentation pipe (Karras et al. 2020, "Training GANs with limited data"), video-consistent, plus adaptive p.

One random transform is drawn per sample; for videos ([N, F*C, H, W] with num_frames=F, or [N, F, C, H, W]) the
same transform is applied to every frame of the sample (SPEC 3.5, 4.4). Stages, in order:
  geometric: a 3x3 inverse matrix G_inv (output pixel -> input pixel, centred pixel units) composed of xflip,
      rotate90, integer translation, isotropic scale, rotation, anisotropic scale, rotation, fractional translation;
      executed as reflect padding, 2x upsampling (Lanczos-3), bilinear grid_sample, 2x downsampling (Lanczos-3).
  colour: a 4x4 matrix C on homogeneous RGB composed of brightness, contrast, luma flip, hue rotation, saturation.
  image-space filtering: per-sample gains of 4 frequency bands (separable zero-phase filter bank).
  additive Gaussian noise (one noise image per sample, shared by its frames) and cutout (one square per sample).
Every transform is gated by probability p * (its multiplier). Samples whose transform is the identity pass through
unchanged. Everything is differentiable to second order (grid_sample natively, the filters through
`depthwise_conv2d`), so the R1 penalty can differentiate through the pipe.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils.ops.depthwise_conv import depthwise_conv2d

# Named presets (ADA's `--augpipe`): transform-probability multipliers.
_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
AUGMENT_PRESETS: dict[str, dict] = {
    "blit": dict(_BLIT), "geom": dict(_GEOM), "color": dict(_COLOR),
    "filter": dict(imgfilter=1), "noise": dict(noise=1), "cutout": dict(cutout=1),
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
}
_BAND_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)  # expected power of the 4 bands (ADA's 1/f assumption)


# 1-D Lanczos-3 kernel for 2x resampling: 12 taps at offsets -5.5 ... 5.5 of the 2x grid, normalised to sum 1.
def lanczos_2x_filter() -> np.ndarray:
    t = (np.arange(12) - 5.5) / 2  # offsets in units of the coarse grid
    h = np.sinc(t) * np.sinc(t / 3)
    return h / h.sum()


# Zero-phase windowed-sinc low-pass filter with cutoff `fc` (cycles/sample), `taps` odd, normalised to sum 1.
def _lowpass(fc: float, taps: int) -> np.ndarray:
    n = np.arange(taps) - (taps - 1) // 2
    h = 2 * fc * np.sinc(2 * fc * n) * np.hanning(taps + 2)[1:-1]
    return h / h.sum()


# Filter bank of 4 zero-phase bands splitting [0, 1/2] cycles/sample at 1/16, 1/8, 1/4 (octaves, low to high);
# the bands sum to a unit impulse, so unit gains leave the image unchanged. [4, 31].
def filter_bank(taps: int = 31) -> np.ndarray:
    delta = np.zeros(taps)
    delta[taps // 2] = 1
    lows = [_lowpass(fc, taps) for fc in (1 / 16, 1 / 8, 1 / 4)]
    return np.stack([lows[0], lows[1] - lows[0], lows[2] - lows[1], delta - lows[2]])


# Batched 3x3 homogeneous 2-D matrices from per-sample values [N].
def _mat3(rows: list[list]) -> torch.Tensor:
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _translate2d(tx, ty):
    o, z = torch.ones_like(tx), torch.zeros_like(tx)
    return _mat3([[o, z, tx], [z, o, ty], [z, z, o]])


def _scale2d(sx, sy):
    o, z = torch.ones_like(sx), torch.zeros_like(sx)
    return _mat3([[sx, z, z], [z, sy, z], [z, z, o]])


def _rotate2d(theta):
    c, s, o, z = theta.cos(), theta.sin(), torch.ones_like(theta), torch.zeros_like(theta)
    return _mat3([[c, -s, z], [s, c, z], [z, z, o]])


# Per-sample value `value` where a coin with probability `prob` lands, else `identity`.
def _gate(value: torch.Tensor, identity: float, prob) -> torch.Tensor:
    keep = torch.rand(value.shape[:1], device=value.device) < prob
    return torch.where(keep.reshape([-1] + [1] * (value.ndim - 1)), value, torch.full_like(value, identity))


# Depthwise separable convolution of x [N, C, H, W] with the 1-D filter f (same filter on both axes), or with a
# per-(sample*channel) filter bank f [N*C, K]; valid padding, optional stride.
def _sep_conv(x: torch.Tensor, f: torch.Tensor, stride: int = 1) -> torch.Tensor:
    n, c, h, w = x.shape
    if f.ndim == 1:
        fw = f.reshape(1, 1, 1, -1).expand(c, 1, 1, -1)
        x = depthwise_conv2d(x, fw, stride=(1, stride))
        return depthwise_conv2d(x, fw.transpose(2, 3), stride=(stride, 1))
    fw = f.reshape(n * c, 1, 1, -1)
    x = depthwise_conv2d(x.reshape(1, n * c, h, w), fw)
    x = depthwise_conv2d(x, fw.transpose(2, 3))
    return x.reshape(n, c, x.shape[2], x.shape[3])


# 2x upsampling with the 12-tap filter f (sum 1): zero insertion, then the filter with gain 2 per axis. Output pixel
# m lies at input position (m + 0.5) / 2 - 0.5 (half-pixel convention).
def upsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    z = torch.stack([x, torch.zeros_like(x)], dim=-1).reshape(n, c, h, 2 * w)
    z = torch.stack([z, torch.zeros_like(z)], dim=-2).reshape(n, c, 2 * h, 2 * w)
    return _sep_conv(F.pad(z, [6, 5, 6, 5]), f * 2)


# 2x downsampling with the 12-tap filter f (sum 1): output pixel k averages input positions around 2k + 0.5.
def downsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _sep_conv(F.pad(x, [5, 5, 5, 5]), f, stride=2)


# Apply per-sample inverse geometric transforms G_inv [N, 3, 3] (output -> input, pixel units centred on the
# image) to x [N, C, H, W]: reflect-pad what the transformed frame needs, upsample 2x, sample bilinearly on a 2x
# output grid (with a 5-pixel margin for the downsampling filter), downsample 2x. Outside the padding is zero.
def apply_geometric(x: torch.Tensor, G_inv: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    reach = 4  # output margin (downsampling filter) and input margin (upsampling filter), in pixels
    corners = torch.tensor([[-cx - reach, -cy - reach, 1], [cx + reach, -cy - reach, 1],
                            [cx + reach, cy + reach, 1], [-cx - reach, cy + reach, 1]], dtype=x.dtype, device=x.device)
    pts = G_inv.to(x.dtype) @ corners.T  # [N, 3, 4]: input positions of the output corners
    lo = (-pts[:, :2].amin(dim=(0, 2)) - torch.tensor([cx, cy], dtype=x.dtype, device=x.device) + reach)
    hi = (pts[:, :2].amax(dim=(0, 2)) - torch.tensor([cx, cy], dtype=x.dtype, device=x.device) + reach)
    px0, py0 = [int(v) for v in lo.ceil().clamp(0).tolist()]
    px1, py1 = [int(v) for v in hi.ceil().clamp(0).tolist()]
    px0, px1, py0, py1 = min(px0, w - 1), min(px1, w - 1), min(py0, h - 1), min(py1, h - 1)
    x = upsample2x(F.pad(x, [px0, px1, py0, py1], mode="reflect"), f)
    margin = 5
    ox = (torch.arange(2 * w + 2 * margin, dtype=x.dtype, device=x.device) - margin + 0.5) / 2 - 0.5 - cx
    oy = (torch.arange(2 * h + 2 * margin, dtype=x.dtype, device=x.device) - margin + 0.5) / 2 - 0.5 - cy
    gy, gx = torch.meshgrid(oy, ox, indexing="ij")
    out_pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # [Ho, Wo, 3]
    src = torch.einsum("nij,hwj->nhwi", G_inv[:, :2].to(x.dtype), out_pts)  # centred input positions
    up_w, up_h = x.shape[3], x.shape[2]
    grid = torch.stack([(4 * (src[..., 0] + cx + px0) + 2) / up_w - 1,
                        (4 * (src[..., 1] + cy + py0) + 2) / up_h - 1], dim=-1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _sep_conv(x, f, stride=2)  # the margin replaces downsample2x's padding: 2w + 10 -> w


# Random per-sample 4x4 colour matrices (brightness, contrast, luma flip, hue, saturation) for `pipe`.
def _color_matrices(pipe, n: int, device) -> torch.Tensor:
    eye = torch.eye(4, device=device).expand(n, 4, 4)
    C = eye
    v = torch.tensor([1, 1, 1, 0], dtype=torch.float32, device=device) / math.sqrt(3)  # luma axis
    vv = torch.outer(v, v)
    p = pipe.p
    if pipe.brightness > 0:
        b = _gate(torch.randn([n], device=device) * pipe.brightness_std, 0, p * pipe.brightness)
        C = _translate3d(b) @ C
    if pipe.contrast > 0:
        s = _gate(torch.exp2(torch.randn([n], device=device) * pipe.contrast_std), 1, p * pipe.contrast)
        C = _scale3d(s) @ C
    if pipe.lumaflip > 0:
        i = _gate(torch.randint(0, 2, [n], device=device).float(), 0, p * pipe.lumaflip)
        C = (eye - 2 * vv * i[:, None, None]) @ C
    if pipe.hue > 0:
        theta = _gate((torch.rand([n], device=device) * 2 - 1) * math.pi * pipe.hue_max, 0, p * pipe.hue)
        C = _rotate3d((1 / math.sqrt(3),) * 3, theta) @ C
    if pipe.saturation > 0:
        s = _gate(torch.exp2(torch.randn([n], device=device) * pipe.saturation_std), 1, p * pipe.saturation)
        C = (vv + (eye - vv) * s[:, None, None]) @ C
    return C


def _translate3d(b):
    C = torch.eye(4, device=b.device).repeat(len(b), 1, 1)
    C[:, :3, 3] = b[:, None]
    return C


def _scale3d(s):
    return torch.diag_embed(torch.stack([s, s, s, torch.ones_like(s)], dim=-1))


# Rotation by theta [N] about the unit axis u = (ux, uy, uz) (Rodrigues), as 4x4 homogeneous matrices.
def _rotate3d(u: tuple[float, float, float], theta: torch.Tensor) -> torch.Tensor:
    K = torch.tensor([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]], device=theta.device)
    s, c = theta.sin()[:, None, None], theta.cos()[:, None, None]
    R = torch.eye(3, device=theta.device) + s * K + (1 - c) * (K @ K)
    C = torch.eye(4, device=theta.device).repeat(len(theta), 1, 1)
    C[:, :3, :3] = R
    return C


# The ADA augmentation pipe. Constructor arguments are ADA's: per-transform probability multipliers (xflip,
# rotate90, ..., cutout) and their ranges. `p` is a registered buffer (overall strength). `init_kwargs` holds the
# constructor arguments for the checkpoint format.
class AugmentPipe(torch.nn.Module):
    def __init__(self, xflip=0, rotate90=0, xint=0, xint_max=0.125, scale=0, rotate=0, aniso=0, xfrac=0,
                 scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125, brightness=0, contrast=0, lumaflip=0,
                 hue=0, saturation=0, brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1,
                 imgfilter=0, imgfilter_bands=(1, 1, 1, 1), imgfilter_std=1, noise=0, cutout=0, noise_std=0.1,
                 cutout_size=0.5):
        super().__init__()
        kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        kwargs["imgfilter_bands"] = [float(b) for b in imgfilter_bands]
        self.init_kwargs = {k: (float(v) if not isinstance(v, list) else v) for k, v in kwargs.items()}
        for k, v in self.init_kwargs.items():
            setattr(self, k, v)
        if len(self.imgfilter_bands) != 4:
            raise ValueError(f"imgfilter_bands must have 4 entries, got {imgfilter_bands}")
        self.register_buffer("p", torch.zeros([]))
        self.register_buffer("resample_filter", torch.tensor(lanczos_2x_filter(), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("band_filters", torch.tensor(filter_bank(), dtype=torch.float32), persistent=False)

    # x: [N, F*C, H, W] (with num_frames=F) or [N, F, C, H, W], float in [-1, 1]. Returns the same shape.
    def forward(self, x: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        shape = x.shape
        if x.ndim == 5:
            num_frames = shape[1]
            x = x.reshape(shape[0], shape[1] * shape[2], shape[3], shape[4])
        if x.ndim != 4 or x.shape[1] % num_frames != 0:
            raise ValueError(f"AugmentPipe expects [N, F*C, H, W] or [N, F, C, H, W]; got {list(shape)} with "
                             f"num_frames={num_frames}")
        channels = x.shape[1] // num_frames
        x = self._geometric(x)
        x = self._color(x, num_frames, channels)
        x = self._imgfilter(x)
        x = self._noise_cutout(x, num_frames, channels)
        return x.reshape(shape)

    # Inverse geometric matrices composed in ADA's order; applied only to samples that are not the identity.
    def _geometric(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        dev, p = x.device, self.p
        G = torch.eye(3, device=dev).repeat(n, 1, 1)
        if self.xflip > 0:
            i = _gate(torch.randint(0, 2, [n], device=dev).float(), 0, p * self.xflip)
            G = G @ _scale2d(1 - 2 * i, torch.ones_like(i))
        if self.rotate90 > 0:
            i = _gate(torch.randint(0, 4, [n], device=dev).float(), 0, p * self.rotate90)
            G = G @ _rotate2d(math.pi / 2 * i)
        if self.xint > 0:
            t = _gate((torch.rand([n, 2], device=dev) * 2 - 1) * self.xint_max, 0, p * self.xint)
            G = G @ _translate2d(-(t[:, 0] * w).round(), -(t[:, 1] * h).round())
        if self.scale > 0:
            s = _gate(torch.exp2(torch.randn([n], device=dev) * self.scale_std), 1, p * self.scale)
            G = G @ _scale2d(1 / s, 1 / s)
        p_rot = 1 - torch.sqrt((1 - self.rotate * p).clamp(0, 1))  # rotation is drawn twice (before/after aniso)
        if self.rotate > 0:
            G = G @ _rotate2d(-_gate((torch.rand([n], device=dev) * 2 - 1) * math.pi * self.rotate_max, 0, p_rot))
        if self.aniso > 0:
            s = _gate(torch.exp2(torch.randn([n], device=dev) * self.aniso_std), 1, p * self.aniso)
            G = G @ _scale2d(1 / s, s)
        if self.rotate > 0:
            G = G @ _rotate2d(-_gate((torch.rand([n], device=dev) * 2 - 1) * math.pi * self.rotate_max, 0, p_rot))
        if self.xfrac > 0:
            t = _gate(torch.randn([n, 2], device=dev) * self.xfrac_std, 0, p * self.xfrac)
            G = G @ _translate2d(-t[:, 0] * w, -t[:, 1] * h)
        moved = ((G - torch.eye(3, device=dev)).abs().amax(dim=(1, 2)) >= 1e-6).nonzero()[:, 0]
        if len(moved) == 0:
            return x
        # Only the transformed samples are resampled: at the small p of early training most are not.
        y = apply_geometric(x[moved], G[moved], self.resample_filter.to(x.dtype))
        return x.index_copy(0, moved, y)

    # Colour matrix per sample, the same for every frame (SPEC 3.5). Grayscale: mean of the RGB outputs.
    def _color(self, x: torch.Tensor, num_frames: int, channels: int) -> torch.Tensor:
        if not any(getattr(self, k) > 0 for k in ("brightness", "contrast", "lumaflip", "hue", "saturation")):
            return x
        C = _color_matrices(self, x.shape[0], x.device).to(x.dtype)
        n, _, h, w = x.shape
        y = x.reshape(n, num_frames, channels, h * w)
        if channels == 3:
            y = torch.einsum("nij,nfjp->nfip", C[:, :3, :3], y) + C[:, None, :3, 3:]
        elif channels == 1:
            gain, bias = C[:, :3, :3].sum(2).mean(1), C[:, :3, 3].mean(1)
            y = y * gain[:, None, None, None] + bias[:, None, None, None]
        else:
            raise ValueError(f"colour transforms need 1 or 3 channels per frame, got {channels}")
        return y.reshape(x.shape)

    # Per-sample gains of the 4 frequency bands (log-normal, gated per band), renormalised so the expected image
    # power is kept: g_j = a_j / prod_i sqrt(1 - P_i + P_i a_i^2) with P the expected band powers.
    def _imgfilter(self, x: torch.Tensor) -> torch.Tensor:
        if self.imgfilter <= 0:
            return x
        n, c, h, w = x.shape
        bands = torch.tensor(self.imgfilter_bands, device=x.device)
        amp = torch.exp2(torch.randn([n, 4], device=x.device) * self.imgfilter_std)
        applied = torch.rand([n, 4], device=x.device) < self.p * self.imgfilter * bands
        amp = torch.where(applied, amp, torch.ones_like(amp))
        power = torch.tensor(_BAND_POWER, device=x.device)
        g = amp / torch.sqrt(1 - power + power * amp.square()).prod(dim=1, keepdim=True)
        changed = applied.any(dim=1)
        if not bool(changed.any()):
            return x
        f = (g @ self.band_filters.to(g.dtype)).to(x.dtype)  # [N, K]
        pad = f.shape[1] // 2
        mode = "reflect" if min(h, w) > pad else "replicate"
        y = _sep_conv(F.pad(x, [pad, pad, pad, pad], mode=mode), f.repeat_interleave(c, dim=0))
        return torch.where(changed[:, None, None, None], y, x)

    # Additive noise (sigma = |N(0, noise_std)| per sample, one noise image shared by the frames) and cutout (a
    # square of side cutout_size * size at a uniform centre, zeroed in every frame).
    def _noise_cutout(self, x: torch.Tensor, num_frames: int, channels: int) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.noise > 0:
            sigma = _gate(torch.randn([n], device=x.device).abs() * self.noise_std, 0, self.p * self.noise)
            noise = torch.randn([n, 1, channels, h, w], device=x.device, dtype=x.dtype)
            x = (x.reshape(n, num_frames, channels, h, w) + noise * sigma.to(x.dtype)[:, None, None, None, None])
            x = x.reshape(n, num_frames * channels, h, w)
        if self.cutout > 0:
            size = _gate(torch.full([n], self.cutout_size, device=x.device), 0, self.p * self.cutout)
            center = torch.rand([n, 2], device=x.device)
            cy = ((torch.arange(h, device=x.device) + 0.5) / h)[None, :, None]
            cx = ((torch.arange(w, device=x.device) + 0.5) / w)[None, None, :]
            half = size[:, None, None] / 2
            keep = ((cx - center[:, 0, None, None]).abs() >= half) | ((cy - center[:, 1, None, None]).abs() >= half)
            x = x * keep[:, None].to(x.dtype)
        return x


# Pipe with the probability multipliers of a named preset (see AUGMENT_PRESETS).
def augment_pipe_from_preset(name: str, **overrides) -> AugmentPipe:
    if name not in AUGMENT_PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r}; expected one of {sorted(AUGMENT_PRESETS)}")
    return AugmentPipe(**{**AUGMENT_PRESETS[name], **overrides})


# Adaptive discriminator augmentation: every `interval` steps,
#   p <- max(0, p + sign(E[sign(D(real))] - target) * batch_size * interval / (ada_kimg * 1000)),
# with the expectation over everything accumulated since the last update (summed over ranks when
# torch.distributed is initialised). `batch_size` is the global batch size per step.
class AdaptiveAugment:
    def __init__(self, pipe: AugmentPipe, target: float = 0.6, ada_kimg: float = 500, interval: int = 4):
        self.pipe, self.target, self.ada_kimg, self.interval = pipe, float(target), float(ada_kimg), int(interval)
        self.step = 0
        self.last_rt: float | None = None  # the last E[sign(D(real))] used for an update
        self._stats: torch.Tensor | None = None  # [sum of signs, count], on the logits' device

    # Collect sign(D(real)) of one batch of real logits.
    def accumulate(self, real_logits: torch.Tensor) -> None:
        s = real_logits.detach().flatten().sign().to(torch.float64)
        stats = torch.stack([s.sum(), torch.tensor(float(s.numel()), dtype=torch.float64, device=s.device)])
        self._stats = stats if self._stats is None else self._stats + stats.to(self._stats.device)

    # Call once per training step.
    def update(self, batch_size: int) -> None:
        self.step += 1
        if self.step % self.interval != 0:
            return
        stats = self._stats if self._stats is not None else torch.zeros(2, dtype=torch.float64,
                                                                        device=self.pipe.p.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            stats = stats.clone()
            torch.distributed.all_reduce(stats)
        self._stats = None
        total, count = stats.tolist()
        if count == 0:
            return
        self.last_rt = total / count
        adjust = np.sign(self.last_rt - self.target) * batch_size * self.interval / (self.ada_kimg * 1000)
        with torch.no_grad():
            self.pipe.p.copy_((self.pipe.p + adjust).clamp(min=0))

    def state_dict(self) -> dict:
        stats = [0.0, 0.0] if self._stats is None else self._stats.tolist()
        return dict(p=float(self.pipe.p), step=self.step, target=self.target, ada_kimg=self.ada_kimg,
                    interval=self.interval, last_rt=self.last_rt, sign_sum=stats[0], sign_count=stats[1])

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.pipe.p.fill_(float(state["p"]))
        self.step = int(state["step"])
        self.last_rt = state.get("last_rt")
        self._stats = None
        if state.get("sign_count", 0):
            self._stats = torch.tensor([state["sign_sum"], state["sign_count"]], dtype=torch.float64,
                                       device=self.pipe.p.device)


# The training stages' augmentation from their options: (pipe or None, AdaptiveAugment or None).
# augment_kwargs = dict(preset, p=0, adaptive=True, target=0.6, ada_kimg=500), or None for no augmentation.
def build_augment(augment_kwargs: dict | None, device) -> tuple[AugmentPipe | None, AdaptiveAugment | None]:
    if augment_kwargs is None:
        return None, None
    pipe = augment_pipe_from_preset(augment_kwargs["preset"]).train().to(device)
    pipe.p.fill_(augment_kwargs.get("p", 0.0))
    ada = None
    if augment_kwargs.get("adaptive", True):
        ada = AdaptiveAugment(pipe, target=augment_kwargs.get("target", 0.6),
                              ada_kimg=augment_kwargs.get("ada_kimg", 500))
    return pipe, ada
