"""StyleInV motion generator: FFA-APE, temporal style and the AdaIN-modulated inversion encoder (paper Sec. 3.2-3.3)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.networks_encoder import IRSEBackbone, he_init_
from training.networks_stylegan2 import FullyConnectedLayer
from training.plain_data import store_init_kwargs

# Noise modes accepted by G.synthesis for x0 = G(w0) (SPEC 4.6: the same mode as the other frames).
NOISE_MODES = ("const", "none", "random")


# Smallest and largest value of a tensor, read back with one device sync.
def _min_max(x: torch.Tensor) -> tuple[float, float]:
    lo, hi = torch.aminmax(x.detach())
    return float(lo), float(hi)


# ----------------------------------------------------------------------------------------------------------
# FFA-APE (Sec. 3.3, Fig. 4; SPEC 1.2-1.5).


# Equalised-learning-rate conv1d + leaky ReLU(0.2) over the anchor axis (SPEC 1.3, no sqrt(2) gain).
# causal=True (FFA-APE): the left-sided conv of App. F, (kernel_size+1)//2 = 6 taps and zero left padding 5, so
# output k sees inputs k-5..k and the length is kept. This equals the release's 11-tap kernel with the right
# half masked and padding 5 on both sides; the weight gain uses the nominal kernel_size as there.
# causal=False (original APE, Table 3 #2): StyleGAN-V's padding-less conv with all kernel_size taps (L -> L-10).
class MotionConv1d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 11, causal: bool = True,
                 lr_multiplier: float = 0.01):
        super().__init__()
        taps = (kernel_size + 1) // 2 if causal else kernel_size
        self.left_pad = taps - 1 if causal else 0
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, taps) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = lr_multiplier / math.sqrt(in_channels * kernel_size)
        self.bias_gain = lr_multiplier

    # x [N, C_in, L] -> [N, C_out, L] (causal) or [N, C_out, L - kernel_size + 1] (padding-less).
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [self.left_pad, 0])
        x = F.conv1d(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2)


# Aligned Fourier time encoding (SPEC 1.5, the learnable interpolation of StyleGAN-V's APE). For a frame time t
# between anchors t_l = k*delta and t_r = t_l + delta with codes u_l, u_r and alpha = (t - t_l)/delta:
#   PE(tau) = [sin(omega*rho*tau + phi*phase_scales), cos(...)], rho = tanh(P u_l) + 1, phi = Phi u_l,
#   v_t = PE(t) - [(1-alpha) PE(t_l) + alpha PE(t_r)] + [(1-alpha) A u_l + alpha A u_r],
# which is continuous in t and equals A u_k at every anchor (so v_0 = A u_0).
class AlignedTimeEncoder(nn.Module):
    def __init__(self, u_dim: int = 512, dim: int = 256, min_period_len: float = 16, max_period_len: float = 128):
        super().__init__()
        if not 0 < min_period_len <= max_period_len:
            raise ValueError(f"AlignedTimeEncoder: need 0 < min_period_len <= max_period_len, got "
                             f"{min_period_len}, {max_period_len}")
        periods = 2.0 ** torch.linspace(math.log2(max_period_len), math.log2(min_period_len), dim,
                                        dtype=torch.float64)  # Longest period first: low -> high frequency.
        self.register_buffer("freqs", (2 * math.pi / periods).float(), persistent=False)
        self.register_buffer("phase_scales", (max_period_len / periods).float(), persistent=False)
        self.periods_predictor = FullyConnectedLayer(u_dim, dim, bias=False)
        self.phase_predictor = FullyConnectedLayer(u_dim, dim, bias=False)
        self.aligners_predictor = FullyConnectedLayer(u_dim, 2 * dim, bias=False)

    # Rows u_l, u_r [M, u_dim]; t, t_l, t_r, alpha [M] (frames) -> v [M, 2*dim]. The angles are formed in float64
    # so that PE(t) - lerp(PE(t_l), PE(t_r)) stays continuous for long videos (t ~ 1e4 frames).
    def forward(self, u_l, u_r, t, t_l, t_r, alpha) -> torch.Tensor:
        rho = torch.tanh(self.periods_predictor(u_l)) + 1
        phase = (self.phase_predictor(u_l) * self.phase_scales).double()
        omega = (self.freqs * rho).double()

        def pe(tau):
            angle = omega * tau.double().unsqueeze(1) + phase
            return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(u_l.dtype)

        a = alpha.unsqueeze(1)
        aligned = (1 - a) * self.aligners_predictor(u_l) + a * self.aligners_predictor(u_r)
        return pe(t) - ((1 - a) * pe(t_l) + a * pe(t_r)) + aligned


# The motion mapping: anchor noise motion_z [N, L, z_dim] at frames k*delta -> anchor codes u -> v_t for any real
# t >= 0 (non-autoregressive: each v_t depends only on the anchor codes around t).
# first_frame_aware=True is FFA-APE (Sec. 3.3): row 0 of motion_z is replaced by the learnable constant c0 and
# the convs are left-sided, so u_0 (hence v_0) is the same for every noise draw and u_k depends on rows <= k only.
# first_frame_aware=False is the original APE of StyleGAN-V (Table 3 #2 "w/o FFA-APE"): no c0, padding-less convs
# over 2*(kernel_size-1) extra anchors, so v_0 depends on the noise.
class FirstFrameAwareAPE(nn.Module):
    def __init__(self, z_dim: int = 512, v_dim: int = 512, motion_z_distance: int = 16, kernel_size: int = 11,
                 time_enc_dim: int = 256, min_period_len: float = 16, max_period_len: float = 128,
                 max_num_frames: int = 128, lr_multiplier: float = 0.01, first_frame_aware: bool = True):
        super().__init__()
        if v_dim != 2 * time_enc_dim:
            raise ValueError(f"FirstFrameAwareAPE: v_dim ({v_dim}) must be 2 * time_enc_dim ({time_enc_dim})")
        if motion_z_distance <= 0 or kernel_size < 1 or max_num_frames < 1:
            raise ValueError(f"FirstFrameAwareAPE: bad motion_z_distance={motion_z_distance}, "
                             f"kernel_size={kernel_size} or max_num_frames={max_num_frames}")
        self.z_dim, self.v_dim, self.delta = z_dim, v_dim, motion_z_distance
        self.max_num_frames, self.first_frame_aware = max_num_frames, first_frame_aware
        self.extra_anchors = 0 if first_frame_aware else 2 * (kernel_size - 1)
        if first_frame_aware:
            self.c0 = nn.Parameter(torch.randn(z_dim))
        conv_kwargs = dict(kernel_size=kernel_size, causal=first_frame_aware, lr_multiplier=lr_multiplier)
        self.conv0 = MotionConv1d(z_dim, v_dim, **conv_kwargs)
        self.conv1 = MotionConv1d(v_dim, v_dim, **conv_kwargs)
        self.time_encoder = AlignedTimeEncoder(v_dim, time_enc_dim, min_period_len, max_period_len)

    # Number of anchor noise rows covering frame times in [0, t_max] (SPEC 1.2): at least one clip of
    # max_num_frames, growing with t_max for long videos.
    def num_anchors(self, t_max: float) -> int:
        if not (math.isfinite(t_max) and t_max >= 0):
            raise ValueError(f"FirstFrameAwareAPE: t_max must be a finite number >= 0 (frames), got {t_max}")
        return math.ceil(max(self.max_num_frames - 1, t_max) / self.delta) + 2 + self.extra_anchors

    # Fresh anchor noise [N, L, z_dim] ~ N(0, I) for frame times up to t_max. Pass it back to forward() to reuse
    # one motion across chunks of a long video, contents or decoders. Row 0 is ignored under FFA-APE (c0).
    def sample_motion_z(self, batch_size: int, t_max: float, device=None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        if device is None:
            device = self.conv0.weight.device
        shape = (batch_size, self.num_anchors(t_max), self.z_dim)
        return torch.randn(shape, device=device, dtype=self.conv0.weight.dtype, generator=generator)

    # Anchor codes u [N, L - extra_anchors, v_dim] of motion noise [N, L, z_dim] (SPEC 1.2-1.3).
    def anchor_codes(self, motion_z: torch.Tensor) -> torch.Tensor:
        if motion_z.ndim != 3 or motion_z.shape[2] != self.z_dim or motion_z.shape[1] < self.extra_anchors + 2:
            raise ValueError(f"FirstFrameAwareAPE: motion_z must be [N, L >= {self.extra_anchors + 2}, "
                             f"{self.z_dim}], got {tuple(motion_z.shape)}")
        if self.first_frame_aware:
            c0 = self.c0.to(motion_z.dtype).expand(motion_z.shape[0], 1, -1)
            motion_z = torch.cat([c0, motion_z[:, 1:]], dim=1)
        return self.conv1(self.conv0(motion_z.transpose(1, 2))).transpose(1, 2)

    # Motion codes v_t [N, T, v_dim] for frame times t [N, T] (any real t >= 0) under motion noise motion_z.
    def forward(self, motion_z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        u = self.anchor_codes(motion_z)
        if t.ndim != 2 or t.shape[0] != u.shape[0]:
            raise ValueError(f"FirstFrameAwareAPE: t must be [N={u.shape[0]}, T] frame times, got {tuple(t.shape)}")
        t = t.to(u.dtype)
        t_min, t_max = _min_max(t)
        if not (t_min >= 0 and math.isfinite(t_max)):
            raise ValueError(f"FirstFrameAwareAPE: frame times must be finite and >= 0, got range [{t_min}, {t_max}]")
        if math.floor(t_max / self.delta) + 2 > u.shape[1]:
            raise ValueError(f"FirstFrameAwareAPE: motion_z with {motion_z.shape[1]} anchors covers t < "
                             f"{(u.shape[1] - 1) * self.delta} only, but t goes up to {t_max}; sample it with "
                             f"sample_motion_z(N, t_max >= {t_max})")
        k = torch.floor(t / self.delta)
        alpha = ((t - k * self.delta) / self.delta).clamp(0, 1)
        k = k.long()
        t_l = k.to(t.dtype) * self.delta

        def select(idx):  # Anchor codes at indices idx [N, T] -> [N*T, v_dim].
            return u.gather(1, idx.unsqueeze(2).expand(-1, -1, u.shape[2])).flatten(0, 1)

        v = self.time_encoder(select(k), select(k + 1), t.flatten(), t_l.flatten(), (t_l + self.delta).flatten(),
                              alpha.flatten())
        return v.reshape(t.shape[0], t.shape[1], self.v_dim)


# ----------------------------------------------------------------------------------------------------------
# Temporal style (Eq. 2, Fig. 3 right; SPEC 1.6).


# s_t = MLP([w0, v_t]): num_layers equalised FC layers with lrelu (also on the last one), lr multiplier 0.01.
class TemporalStyle(nn.Module):
    def __init__(self, w_dim: int = 512, v_dim: int = 512, style_dim: int = 512, num_layers: int = 2,
                 lr_multiplier: float = 0.01):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"TemporalStyle: num_layers must be >= 1, got {num_layers}")
        dims = [w_dim + v_dim] + [style_dim] * num_layers
        self.num_layers = num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(dims[i], dims[i + 1], activation="lrelu",
                                                        lr_multiplier=lr_multiplier))

    # w0 [M, w_dim], v [M, v_dim] -> s [M, style_dim].
    def forward(self, w0: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = torch.cat([w0, v.to(w0.dtype)], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


# ----------------------------------------------------------------------------------------------------------
# Modulated inversion encoder E(G(w0), s_t) (Sec. 3.2, Fig. 3; SPEC 2).


# StarGAN-v2 AdaIN (SPEC 2.3): (1 + gamma) * InstanceNorm(x) + beta with [gamma, beta] = FC(s).
class AdaIN(nn.Module):
    def __init__(self, channels: int, style_dim: int, lr_multiplier: float = 1.0):
        super().__init__()
        self.fc = FullyConnectedLayer(style_dim, 2 * channels, lr_multiplier=lr_multiplier)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s).to(x.dtype).unsqueeze(2).unsqueeze(3).chunk(2, dim=1)
        return (1 + gamma) * F.instance_norm(x, eps=1e-5) + beta


# AdaIN residual block C -> C (SPEC 2.3, normalize_adain): (x + conv(lrelu(AdaIN(conv(lrelu(AdaIN(x))))))) / sqrt 2.
class AdainResBlock(nn.Module):
    def __init__(self, channels: int, style_dim: int, lr_multiplier: float = 1.0):
        super().__init__()
        self.norm1 = AdaIN(channels, style_dim, lr_multiplier)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.norm2 = AdaIN(channels, style_dim, lr_multiplier)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(self.norm1(x, s), 0.2))
        h = self.conv2(F.leaky_relu(self.norm2(h, s), 0.2))
        return (x + h) / math.sqrt(2)


# The StyleInV encoder: the stage-2 IR-SE backbone (input_layer.*, body.*) with one AdaIN residual block after the
# last unit of each stage (adains.*), then global average pool and an equalised FC (linear.*) giving
# delta_w = E(x0, s_t). Key names match WEncoder so its state dict loads with strict=False (SPEC 2.6).
class ModulatedEncoder(IRSEBackbone):
    def __init__(self, w_dim: int = 512, style_dim: int = 512, backbone_kwargs: dict | None = None,
                 lr_multiplier: float = 1.0):
        super().__init__(**dict(backbone_kwargs or {}))
        self.adains = nn.ModuleList([AdainResBlock(c, style_dim, lr_multiplier) for c in self.stage_channels])
        self.linear = FullyConnectedLayer(self.out_channels, w_dim, lr_multiplier=lr_multiplier)
        he_init_(self)  # SPEC 2.6 step 1; the backbone and head are then overwritten by init_from_encoder.

    # x0 [N, C, H, W] (one first frame per video), s [N*T, style_dim] (rows video-major) -> delta_w [N*T, w_dim].
    # The units before the first AdaIN do not see s_t, so they run once per video and their output is repeated
    # T times; with BatchNorm in train mode this equals running them on x0 repeated T times (same batch mean
    # and biased variance), only cheaper.
    def forward(self, x0: torch.Tensor, s: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        if x0.ndim != 4 or x0.shape[1] != self.in_channels or s.shape[0] != x0.shape[0] * num_frames:
            raise ValueError(f"ModulatedEncoder: expected x0 [N, {self.in_channels}, H, W] and s [N*T, style_dim] "
                             f"with T={num_frames}, got {tuple(x0.shape)} and {tuple(s.shape)}")
        stage_of_end = {end: i for i, end in enumerate(self.stage_ends)}
        first_end = self.stage_ends[0]
        layout = self.memory_format(x0)
        x = self.input_layer(x0.contiguous(memory_format=layout))
        for idx, unit in enumerate(self.body):
            x = unit(x)
            if idx == first_end:
                x = x.repeat_interleave(num_frames, dim=0).contiguous(memory_format=layout)
            if idx in stage_of_end:
                x = self.adains[stage_of_end[idx]](x, s).contiguous(memory_format=layout)
        return self.linear(x.mean(dim=(2, 3)))


# ----------------------------------------------------------------------------------------------------------
# The motion generator (Eq. 2: w_t = E(G(w0), s_t) + w0).


# Reference to the frozen stage-1 generator kept outside the module tree (not in state_dict or parameters()).
# copy.deepcopy (e.g. for the EMA copy) shares the generator instead of duplicating it.
class _GeneratorRef:
    def __init__(self, G: nn.Module, noise_mode: str):
        self.G, self.noise_mode = G, noise_mode

    def __deepcopy__(self, memo):
        return self


# StyleInV motion generator: w_t = E(G(w0), s_t) + w0 with s_t = MLP([w0, v_t]) and v_t from FFA-APE.
# Parts: `ffa_ape` (motion noise -> v_t), `temporal_style` (fuse MLP -> s_t), `encoder` (AdaIN-modulated IR-SE).
# Table 3 ablations: skip_encoder=True gives row #1 "w/o inversion encoder" (w_t = s_t + w0, no encoder);
# use_ffa_ape=False gives row #2 "w/o FFA-APE" (original APE, v_0 depends on the noise). Rows #3/#4 (no first
# frame in D) are VideoDiscriminator(num_frames=3) plus the loss weights.
# BatchNorm in the encoder stays as in the release: in train mode rows of one call share batch statistics, so
# the per-frame independence (non-autoregressive sampling) holds exactly in eval mode.
class MotionGenerator(nn.Module):
    @store_init_kwargs
    def __init__(self, w_dim: int = 512, num_ws: int = 14, encoder_kwargs: dict | None = None,
                 motion_kwargs: dict | None = None, fuse_kwargs: dict | None = None, skip_encoder: bool = False,
                 use_ffa_ape: bool = True, lr_multiplier: float = 1.0):
        super().__init__()
        encoder_kwargs, motion_kwargs = dict(encoder_kwargs or {}), dict(motion_kwargs or {})
        fuse_kwargs = dict(fuse_kwargs or {})
        if "first_frame_aware" in motion_kwargs:
            raise ValueError("MotionGenerator: choose the APE variant with use_ffa_ape, not motion_kwargs")
        self.w_dim, self.num_ws = int(w_dim), int(num_ws)
        style_dim = int(fuse_kwargs.pop("style_dim", w_dim))
        if skip_encoder and style_dim != w_dim:
            raise ValueError(f"MotionGenerator: skip_encoder=True needs style_dim == w_dim, got {style_dim}")
        self.ffa_ape = FirstFrameAwareAPE(**motion_kwargs, first_frame_aware=use_ffa_ape)
        self.temporal_style = TemporalStyle(w_dim, self.ffa_ape.v_dim, style_dim, **fuse_kwargs)
        self.encoder = None if skip_encoder else ModulatedEncoder(w_dim, style_dim, encoder_kwargs, lr_multiplier)
        self._generator_ref = None

    # Anchor noise for frame times up to t_max, on this module's device unless given (see FirstFrameAwareAPE).
    def sample_motion_z(self, batch_size: int, t_max: float, device=None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        return self.ffa_ape.sample_motion_z(batch_size, t_max, device=device, generator=generator)

    # Keep a reference to the frozen stage-1 generator (outside the module tree: .to(), state_dict() and
    # parameters() ignore it; its parameters are set to requires_grad=False) so forward() can compute
    # x0 = G.synthesis(w0, noise_mode) itself. Gradients still flow through G into the motion generator.
    def attach_generator(self, G: nn.Module, noise_mode: str = "const") -> None:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"MotionGenerator.attach_generator: noise_mode must be one of {NOISE_MODES}, "
                             f"got {noise_mode!r}")
        if int(G.w_dim) != self.w_dim or int(G.num_ws) != self.num_ws:
            raise ValueError(f"MotionGenerator.attach_generator: G has w_dim={G.w_dim}, num_ws={G.num_ws}; "
                             f"this motion generator needs w_dim={self.w_dim}, num_ws={self.num_ws}")
        G.requires_grad_(False)
        self._generator_ref = _GeneratorRef(G, noise_mode)

    # The attached stage-1 generator, or None.
    @property
    def generator(self) -> nn.Module | None:
        return None if self._generator_ref is None else self._generator_ref.G

    # x0 = G(w0) for w0 [N, w_dim] broadcast to all num_ws layers (SPEC 2.5) with the attached noise mode.
    # No graph is built unless w0 itself requires grad (G is frozen).
    def synthesize_first_frame(self, w0: torch.Tensor) -> torch.Tensor:
        if self._generator_ref is None:
            raise RuntimeError("MotionGenerator: no generator attached; call attach_generator(G) or pass x0")
        ref = self._generator_ref
        with torch.set_grad_enabled(torch.is_grad_enabled() and w0.requires_grad):
            return ref.G.synthesis(w0.unsqueeze(1).repeat(1, self.num_ws, 1), noise_mode=ref.noise_mode)

    # Copy the stage-2 W encoder's backbone and head (input_layer.*, body.*, linear.*) into `encoder` (SPEC 2.6
    # step 2); AdaIN blocks, FFA-APE and the fuse MLP stay fresh. Returns the keys left at their fresh values.
    # zero_residual=True then zeroes the head, so that w_t = w0 at every t at the start. The release keeps the
    # stage-2 head, whose output E(x0) - w_avg makes w_t about 2 w0 - w_avg at first: the first frame is only
    # recovered after many steps (the CPU demo's short run spends them all on it).
    def init_from_encoder(self, w_encoder, zero_residual: bool = False) -> list[str]:
        if self.encoder is None:
            raise ValueError("MotionGenerator.init_from_encoder: skip_encoder=True has no encoder to initialise")
        state = w_encoder.state_dict() if isinstance(w_encoder, nn.Module) else w_encoder
        state = {f"encoder.{k}": v for k, v in state.items() if k != "w_avg"}
        own = self.state_dict()
        unexpected = [k for k in state if k not in own]
        wrong = [f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})" for k, v in state.items()
                 if k in own and v.shape != own[k].shape]
        if unexpected or wrong or not any(k.startswith("encoder.body.") for k in state):
            raise ValueError(f"MotionGenerator.init_from_encoder: expected a stage-2 WEncoder state dict with the "
                             f"same backbone; keys not in the StyleInV encoder: {unexpected[:5]}, wrong shapes: "
                             f"{wrong[:5]}")
        missing = list(self.load_state_dict(state, strict=False).missing_keys)
        if zero_residual:
            with torch.no_grad():
                self.encoder.linear.weight.zero_()
                self.encoder.linear.bias.zero_()
        return missing

    # Eq. 2: latents w_t [N, T, w_dim] for first-frame latents w0 [N, w_dim] at frame times t [N, T] (any real
    # t >= 0). motion_z from sample_motion_z (drawn from torch's global RNG if None); x0 = G(w0) [N, C, H, W] is
    # computed once per video from the attached generator when not given.
    def forward(self, w0: torch.Tensor, t: torch.Tensor, motion_z: torch.Tensor | None = None,
                x0: torch.Tensor | None = None) -> torch.Tensor:
        if w0.ndim != 2 or w0.shape[1] != self.w_dim or t.ndim != 2 or t.shape[0] != w0.shape[0]:
            raise ValueError(f"MotionGenerator: expected w0 [N, {self.w_dim}] and t [N, T] frame times, got "
                             f"{tuple(w0.shape)} and {tuple(t.shape)}")
        N, T = t.shape
        t = t.to(device=w0.device, dtype=w0.dtype)
        if motion_z is None:
            motion_z = self.sample_motion_z(N, _min_max(t)[1], device=w0.device)
        if motion_z.shape[0] != N:
            raise ValueError(f"MotionGenerator: motion_z has {motion_z.shape[0]} rows for {N} videos")
        v = self.ffa_ape(motion_z.to(device=w0.device, dtype=w0.dtype), t).flatten(0, 1)
        w0_rows = w0.repeat_interleave(T, dim=0)
        s = self.temporal_style(w0_rows, v)
        if self.encoder is None:
            delta_w = s
        else:
            x0 = self.synthesize_first_frame(w0) if x0 is None else x0
            if x0.shape[0] != N:
                raise ValueError(f"MotionGenerator: x0 has {x0.shape[0]} frames for {N} videos")
            delta_w = self.encoder(x0.to(w0.dtype), s, T)
        return (delta_w.to(w0.dtype) + w0_rows).reshape(N, T, self.w_dim)
