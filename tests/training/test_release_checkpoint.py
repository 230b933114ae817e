"""Tests for reading the StyleInV release's stage-2/3 pickles (training/release_checkpoint.py via
training/checkpoint.py): pickles written here in the release's layout (persistent-class records, OmegaConf
configs), every tensor's destination, latents and frames against a slow functional re-implementation of the
release's forward written from SPEC 1-2, refusals naming the config key, and malicious variants that must run
nothing."""

import copy
import copyreg
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests._official_pickles import Easy, Omega, ReleaseModule, dumps, official_records, omegaconf_tree, release_records
from tests._tiny_checkpoints import make_tiny_generator
from training import checkpoint, training_loop
from training.networks_styleinv import MotionGenerator
from training.networks_video_d import VideoDiscriminator

ROOT = Path(__file__).resolve().parents[2]
W_DIM, STYLE_DIM, Z_DIM, TIME_DIM, DELTA, MAX_FRAMES, KS = 32, 24, 16, 8, 8, 32, 11
UNITS, CHANNELS = (1, 2, 1, 1), (16, 16, 32, 48)  # A small IR-SE layout: 32 px -> 2x2 after the last stage.
FUSE_LR, ENC_LR = 0.01, 1.0


def _sampling(real: bool) -> dict:
    return dict(type="random", num_frames_per_video=4, num_sample=3, add_0=True, max_num_frames=MAX_FRAMES,
                use_fractional_t=not real, total_dists=[1, 2, 4, 8, 16, 32, 64], max_dist=16)


# The release's config blocks (configs/dfuf.yaml layout, tiny sizes).
def release_configs(gen_strategy: str = "conv") -> dict:
    motion = dict(type="acyclic_pe", z_dim=Z_DIM, v_dim=Z_DIM, motion_z_distance=DELTA, gen_strategy=gen_strategy,
                  kernel_size=KS, use_fractional_t=True, fourier=True,
                  time_enc=dict(cond_type="concat_const", dim=TIME_DIM, min_period_len=DELTA,
                                max_period_len=MAX_FRAMES, phase_dropout_std=1.0))
    mapping = dict(c_dim=0, content_dim=W_DIM, w_dim=STYLE_DIM, layers_after_fuse=2, concat_content=True,
                   lr_multiplier=FUSE_LR, sampling=_sampling(False), motion=motion)
    encoder = dict(adain_mode="block", normalize_adain=True, lr_multiplier=ENC_LR, use_modulation=False,
                   pca=dict(use_pca=False, pca_path="pretrained_models/pca_stats/x", n_pca=384, pca_lambda=0.2))
    d_cfg = dict(sampling=_sampling(True), concat_res=8, num_frames_div_factor=2, dummy_c=False,
                 pe=dict(use_const_embed=True, t_is_frame_idx=False))
    return dict(mapping_opts=mapping, encoder_opts=encoder, d_cfg=d_cfg)


# ----------------------------------------------------------------------------------------------------------
# Release-layout module trees with random weights (names, nesting and recorded arguments as in the release).


class _Init:
    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, *shape, scale=1.0, offset=0.0):
        return torch.randn(shape, generator=self.gen) * scale + offset


def _fc(rnd, in_f, out_f, activation="linear", lr=1.0, bias=True, positional_lr=False):
    args, kwargs = (in_f, out_f), dict(activation=activation, lr_multiplier=lr)
    if not bias:
        kwargs = dict(activation=activation, bias=False)
    m = ReleaseModule("FullyConnectedLayer", args, kwargs, activation=activation, weight_gain=lr / np.sqrt(in_f),
                      bias_gain=lr)
    m.weight = nn.Parameter(rnd(out_f, in_f) / lr)
    m.bias = nn.Parameter(rnd(out_f, scale=0.3) / lr) if bias else None
    return m


def _bn(rnd, c):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.copy_(rnd(c, scale=0.1, offset=1)), bn.bias.copy_(rnd(c, scale=0.1))
        bn.running_mean.copy_(rnd(c, scale=0.1)), bn.running_var.copy_(rnd(c, scale=0.1).abs() + 0.8)
        bn.num_batches_tracked.fill_(7)
    return bn.eval()


def _conv(rnd, cin, cout, k, stride=1, padding=0, bias=False):
    conv = nn.Conv2d(cin, cout, k, stride, padding, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(rnd(cout, cin, k, k, scale=1 / math.sqrt(cin * k * k)))
        if bias:
            conv.bias.copy_(rnd(cout, scale=0.1))
    return conv


def _prelu(rnd, c):
    p = nn.PReLU(c)
    with torch.no_grad():
        p.weight.copy_(rnd(c, scale=0.05, offset=0.25))
    return p


# StyleEncoderIntoW (adain=True) or BackboneEncoderUsingLastLayerIntoW: input layer, bottleneck_IR_SE body, head.
def _release_encoder(rnd, w_dim, adain: bool, style_dim: int = STYLE_DIM):
    enc = ReleaseModule("StyleEncoderIntoW" if adain else "BackboneEncoderUsingLastLayerIntoW", (50, "ir_se"),
                        dict(adain_mode="block", style_dim=style_dim, normalize_adain=True, lr_multiplier=ENC_LR,
                             use_modulation=False) if adain else {})
    enc.input_layer = nn.Sequential(_conv(rnd, 3, CHANNELS[0], 3, padding=1), _bn(rnd, CHANNELS[0]),
                                    _prelu(rnd, CHANNELS[0]))
    enc.output_pool = nn.AdaptiveAvgPool2d((1, 1))
    enc.linear = _fc(rnd, CHANNELS[-1], w_dim, lr=ENC_LR)
    units, prev, stage_ends = [], CHANNELS[0], []
    for n, depth in zip(UNITS, CHANNELS, strict=True):
        for i in range(n):
            cin, stride = (prev, 2) if i == 0 else (depth, 1)
            unit = ReleaseModule("bottleneck_IR_SE", (cin, depth, stride))
            unit.shortcut_layer = nn.MaxPool2d(1, stride) if cin == depth else nn.Sequential(
                _conv(rnd, cin, depth, 1, stride), _bn(rnd, depth))
            se = ReleaseModule("SEModule", (depth, 16), avg_pool=nn.AdaptiveAvgPool2d(1),
                               fc1=_conv(rnd, depth, max(depth // 16, 1), 1), relu=nn.ReLU(inplace=True),
                               fc2=_conv(rnd, max(depth // 16, 1), depth, 1), sigmoid=nn.Sigmoid())
            unit.res_layer = nn.Sequential(_bn(rnd, cin), _conv(rnd, cin, depth, 3, 1, 1), _prelu(rnd, depth),
                                           _conv(rnd, depth, depth, 3, stride, 1), _bn(rnd, depth), se)
            units.append(unit)
        stage_ends.append(len(units) - 1)
        prev = depth
    enc.body = nn.Sequential(*units)
    if adain:
        enc.adain_index, enc.use_modulation, enc.normalize_adain = stage_ends, False, True
        enc.adains = nn.ModuleList()
        for c in CHANNELS:
            blk = ReleaseModule("AdainResBlk", (c, c, style_dim), dict(w_hpf=0, upsample=False, lr_multiplier=ENC_LR),
                                w_hpf=0, actv=nn.LeakyReLU(0.2), upsample=False, learned_sc=False)
            blk.conv1, blk.conv2 = _conv(rnd, c, c, 3, padding=1, bias=True), _conv(rnd, c, c, 3, padding=1, bias=True)
            for name in ("norm1", "norm2"):
                norm = ReleaseModule("AdaIN", (style_dim, c, ENC_LR), norm=nn.InstanceNorm2d(c, affine=False))
                norm.fc = _fc(rnd, style_dim, 2 * c, lr=ENC_LR)
                with torch.no_grad():
                    norm.fc.weight.mul_(0.3)
                setattr(blk, name, norm)
            enc.adains.append(blk)
    return enc


# The release's AlignedTimeEncoder buffers, computed its way (numpy float64 linspace, reversed, float32).
def release_time_buffers(dim, min_period, max_period):
    freqs = 2 * np.pi / (2 ** np.linspace(np.log2(min_period), np.log2(max_period), dim))
    freqs = torch.from_numpy(freqs[::-1].copy().astype(np.float32)).unsqueeze(0)
    return freqs, max_period / (2 * np.pi / freqs)


# A StyleInV (SI) module tree. The FFA-APE convs' masked taps (index >= 6) hold huge values: the release zeroes
# them in its forward, so they must not matter.
def release_styleinv(seed, configs, skip_encoder=False):
    rnd, mo = _Init(seed), configs["mapping_opts"]
    motion_cfg, ffa = mo["motion"], mo["motion"]["gen_strategy"] == "conv"
    kwargs = dict(checkpoint="pretrained_models/psp.pkl", mapping_opts=Omega(mo),
                  encoder_opts=Omega(configs["encoder_opts"]), input_residual=True, clip_len=MAX_FRAMES, fps=25,
                  mutual_recon=False, skip_encoder=skip_encoder)
    si = ReleaseModule("StyleInV", (), kwargs, checkpoint=kwargs["checkpoint"], mapping_opts=Omega(mo),
                       encoder_opts=Omega(configs["encoder_opts"]), mutual_recon=False, skip_encoder=skip_encoder,
                       input_residual=True, clip_len=MAX_FRAMES, fps=25, use_pca=False)
    if not skip_encoder:
        si.encoder = _release_encoder(rnd, W_DIM, adain=True, style_dim=mo["w_dim"])
        si.psp_load_info = si.encoder.load_state_dict(si.encoder.state_dict(), strict=False)  # _IncompatibleKeys
    te = ReleaseModule("AlignedTimeEncoder", (), dict(cfg=Omega(motion_cfg), latent_dim=Z_DIM),
                       cfg=Omega(motion_cfg), latent_dim=Z_DIM)
    freqs, phase_scales = release_time_buffers(TIME_DIM, DELTA, MAX_FRAMES)
    te.register_buffer("freqs", freqs)
    te.periods_predictor = _fc(rnd, Z_DIM, TIME_DIM, bias=False)
    te.phase_predictor = _fc(rnd, Z_DIM, TIME_DIM, bias=False)
    te.register_buffer("phase_scales", phase_scales)
    te.aligners_predictor = _fc(rnd, Z_DIM, 2 * TIME_DIM, bias=False)
    motion = ReleaseModule("MotionMappingNetwork", (Omega(mo),), cfg=Omega(mo), num_additional_codes=0 if ffa else 20)
    motion.time_encoder = te
    if ffa:
        motion.frame_0_const = nn.Parameter(rnd(Z_DIM))
    convs = []
    for cin in (Z_DIM, Z_DIM):
        conv = ReleaseModule("EqLRConv1d", (cin, Z_DIM, KS), dict(padding=KS // 2 if ffa else 0, activation="lrelu",
                                                                  lr_multiplier=0.01, mask_right=ffa),
                             activation="lrelu", padding=KS // 2 if ffa else 0, stride=1, mask_right=ffa,
                             weight_gain=0.01 / np.sqrt(cin * KS), bias_gain=0.01)
        weight = rnd(Z_DIM, cin, KS) / 0.01
        if ffa:
            weight[:, :, (KS + 1) // 2:] = rnd(Z_DIM, cin, KS // 2, scale=1e3) / 0.01
        conv.weight, conv.bias = nn.Parameter(weight), nn.Parameter(rnd(Z_DIM, scale=0.3) / 0.01)
        convs.append(conv)
    motion.conv = nn.Sequential(*convs)
    style = mo["w_dim"]
    fuse = ReleaseModule("MappingFuse", (), dict(content_dim=W_DIM, w_dim=style, concat_content=True,
                                                 lr_multiplier=FUSE_LR, cfg=Omega(mo)),
                         cfg=Omega(mo), mt_dim=2 * TIME_DIM, concat_content=True, content_dim=W_DIM, w_dim=style,
                         n_layers=2)
    fuse.motion_encoder = motion
    fuse.fcf0 = _fc(rnd, W_DIM + 2 * TIME_DIM, style, "lrelu", FUSE_LR)
    fuse.fcf1 = _fc(rnd, style, style, "lrelu", FUSE_LR)
    si.mapping = fuse
    si.face_pool = nn.AdaptiveAvgPool2d((256, 256))
    si.register_buffer("latent_avg", rnd(W_DIM))
    return si.eval()


# pSp (stage 2): opts EasyDict as train_psp.py builds it (n_styles added by the constructor), encoder, latent_avg.
def release_psp(seed, num_ws):
    rnd = _Init(seed)
    opts = dict(output_size=32, encoder_type="BackboneEncoderUsingLastLayerIntoW", irse50="model_ir_se50.pth",
                start_from_latent_avg=True, learn_in_w=True, input_nc=3, n_styles=num_ws)
    psp = ReleaseModule("pSp", (), dict(opts=Easy(opts), rank=0), rank=0, opts=Easy(opts))
    psp.encoder = _release_encoder(rnd, W_DIM, adain=False)
    psp.face_pool = nn.AdaptiveAvgPool2d((256, 256))
    psp.register_buffer("latent_avg", rnd(W_DIM))
    return psp.eval()


# The release's StyleGAN-V D with random weights: our VideoDiscriminator's tensors under the release's layout
# (TemporalDifferenceEncoder holding a FixedTimeEncoder with the fourier_coefs buffer, computed its way).
def release_discriminator(seed, configs):
    torch.manual_seed(seed)
    d_kwargs = dict(c_dim=0, img_resolution=32, img_channels=3, block_kwargs={}, mapping_kwargs=dict(num_layers=2),
                    epilogue_kwargs=dict(mbstd_group_size=2), cfg=Omega(configs["d_cfg"]), channel_base=256,
                    channel_max=32, num_fp16_res=0, conv_clamp=256)
    D = VideoDiscriminator(img_resolution=32, num_frames=4, concat_res=8, channel_base=256, channel_max=32,
                           num_fp16_res=0, max_num_frames=MAX_FRAMES, epilogue_kwargs=dict(mbstd_group_size=2))
    with torch.no_grad():
        for name, t in D.state_dict().items():
            if "resample_filter" not in name:
                t.copy_(torch.randn(t.shape) * 0.3)
    src = copy.deepcopy(D)
    names = {"VideoDiscriminator": "Discriminator", "ConcatDiscriminatorBlock": "DiscriminatorBlock"}
    for m in D.modules():
        if not isinstance(m, nn.Embedding):
            m.release_class, m.release_args, m.release_kwargs = names.get(type(m).__name__, type(m).__name__), (), {}
    D.release_kwargs = d_kwargs
    coefs = (torch.tensor([2]).repeat(5).pow(torch.arange(5)).unsqueeze(0).float() * np.pi) / 32.0
    fixed = ReleaseModule("FixedTimeEncoder", (MAX_FRAMES,))
    fixed.register_buffer("fourier_coefs", coefs)
    te = ReleaseModule("TemporalDifferenceEncoder", (Omega(configs["d_cfg"]),), cfg=Omega(configs["d_cfg"]),
                       use_const_embed=True, d=256)
    te.time_encoder, te.const_embed = fixed, D.time_encoder.const_embed
    D.time_encoder = te
    return D, src


# training.augment_styleinv.AugmentPipe's tensors (ADA p and its filters); not a network we rebuild.
def _augment_pipe():
    pipe = nn.Module()
    for name, shape in (("p", []), ("Hz_geom", [12]), ("Hz_fbank", [4, 43])):
        pipe.register_buffer(name, torch.rand(shape))
    return pipe


def _attrs(m):
    return dict(w_avg_beta=m.w_avg_beta) if hasattr(m, "w_avg_beta") else {}


# Bytes of a release stage-3 pickle {G, D, SI, SI_ema, augment_pipe, training_set_kwargs}; `edit(data, ns)` may
# change the records before pickling.
def stage3_bytes(G, si, si_ema, D, configs, edit=None):
    def build(ns):
        data = dict(G=official_records(ns, G, init_kwargs=G.init_kwargs, attrs=_attrs),
                    D=release_records(ns, D), SI=release_records(ns, si), SI_ema=release_records(ns, si_ema),
                    augment_pipe=official_records(ns, _augment_pipe(), init_kwargs=dict(xflip=1, rotate90=1, xint=1),
                                                  class_names={nn.Module: "AugmentPipe"}),
                    training_set_kwargs=dict(class_name="training.dataset_styleinv.StyleInVDataset", path="data/x",
                                             resolution=32, nframes=MAX_FRAMES, stride=1, xflip=True,
                                             flex_sampling=False, random_offset=True,
                                             sampling_cfg=omegaconf_tree(ns, configs["d_cfg"]["sampling"])))
        if edit is not None:
            edit(data, ns)
        return data

    return dumps(build)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    G = make_tiny_generator(32, seed=3)
    configs = release_configs()
    si, si_ema = release_styleinv(10, configs), release_styleinv(11, configs)
    D, D_src = release_discriminator(12, configs)
    path = tmp_path_factory.mktemp("release") / "network-snapshot-000100.pkl"
    path.write_bytes(stage3_bytes(G, si, si_ema, D, configs))
    return dict(G=G, si=si, si_ema=si_ema, D=D, D_src=D_src, configs=configs, path=path)


# ----------------------------------------------------------------------------------------------------------
# A slow functional re-implementation of the release's forward (SPEC 1.2-1.6, 2.1-2.4), float64, one video and one
# frame at a time, from the release's tensors P (its state-dict names).


def ref_fc(P, name, x, lr, act="linear"):
    w = P[name + ".weight"].double()
    x = x @ (w * (lr / math.sqrt(w.shape[1]))).T
    if name + ".bias" in P:
        x = x + P[name + ".bias"].double() * lr
    return F.leaky_relu(x, 0.2) * math.sqrt(2) if act == "lrelu" else x


# Anchor codes u [L, v] of one video's motion noise [L, z] (row 0 := frame_0_const with gen_strategy conv).
def ref_anchor_codes(P, motion_z, ffa):
    p = "mapping.motion_encoder."
    z = motion_z.double().clone()
    if ffa:
        z[0] = P[p + "frame_0_const"].double()
    x = z.T[None]
    for i in (0, 1):
        w = P[f"{p}conv.{i}.weight"].double() * (0.01 / math.sqrt(P[f"{p}conv.{i}.weight"].shape[1] * KS))
        if ffa:
            w[:, :, (KS + 1) // 2:] = 0  # mask_right
        x = F.leaky_relu(F.conv1d(x, w, P[f"{p}conv.{i}.bias"].double() * 0.01, padding=KS // 2 if ffa else 0), 0.2)
    return x[0].T


# v_t [2*TIME_DIM] of normalised time Ts (as the release's modules receive it) from anchor codes u.
def ref_motion_code(P, u, Ts):
    p = "mapping.motion_encoder.time_encoder."
    t = float(np.float32(Ts) * np.float32(MAX_FRAMES - 1))  # Tidx = Ts * (max_num_frames - 1), in float32
    k = math.floor(t / DELTA)
    u_l, u_r = u[k], u[k + 1]
    t_l = t - t % DELTA
    t_r, alpha = t_l + DELTA, (t % DELTA) / DELTA
    rho = torch.tanh(ref_fc(P, p + "periods_predictor", u_l, 1.0)) + 1
    phi = ref_fc(P, p + "phase_predictor", u_l, 1.0)
    freqs, scales = P[p + "freqs"].double()[0], P[p + "phase_scales"].double()[0]

    def pe(tau):
        angle = freqs * rho * tau + phi * scales
        return torch.cat([torch.sin(angle), torch.cos(angle)])

    aligned = (1 - alpha) * ref_fc(P, p + "aligners_predictor", u_l, 1.0) + \
        alpha * ref_fc(P, p + "aligners_predictor", u_r, 1.0)
    return pe(t) - ((1 - alpha) * pe(t_l) + alpha * pe(t_r)) + aligned


def ref_bn(P, name, x):
    return F.batch_norm(x, P[name + ".running_mean"].double(), P[name + ".running_var"].double(),
                        P[name + ".weight"].double(), P[name + ".bias"].double(), training=False, eps=1e-5)


def ref_adain(P, name, x, s):
    gamma, beta = ref_fc(P, name + ".fc", s, ENC_LR).chunk(2)
    mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, unbiased=False)
    return (1 + gamma[:, None, None]) * (x - mean) / torch.sqrt(var + 1e-5) + beta[:, None, None]


def ref_adain_block(P, name, x, s):
    conv = lambda h, c: F.conv2d(h, P[f"{name}.{c}.weight"].double(), P[f"{name}.{c}.bias"].double(), padding=1)  # noqa: E731
    h = conv(F.leaky_relu(ref_adain(P, name + ".norm1", x, s), 0.2), "conv1")
    h = conv(F.leaky_relu(ref_adain(P, name + ".norm2", h, s), 0.2), "conv2")
    return (x + h) / math.sqrt(2)


# The IR-SE encoder on one image x [1, 3, H, W]: features after each unit; AdaIN blocks after each stage if s.
def ref_encoder(P, prefix, x, s=None):
    x = F.conv2d(x.double(), P[prefix + "input_layer.0.weight"].double(), padding=1)
    x = F.prelu(ref_bn(P, prefix + "input_layer.1", x), P[prefix + "input_layer.2.weight"].double())
    unit, stage = 0, 0
    for n in UNITS:
        for i in range(n):
            p, stride = f"{prefix}body.{unit}.", 2 if i == 0 else 1
            if p + "shortcut_layer.0.weight" in P:
                short = ref_bn(P, p + "shortcut_layer.1", F.conv2d(x, P[p + "shortcut_layer.0.weight"].double(),
                                                                   stride=stride))
            else:
                short = x[:, :, ::stride, ::stride]  # MaxPool2d(1, stride)
            r = F.conv2d(ref_bn(P, p + "res_layer.0", x), P[p + "res_layer.1.weight"].double(), padding=1)
            r = F.prelu(r, P[p + "res_layer.2.weight"].double())
            r = ref_bn(P, p + "res_layer.4", F.conv2d(r, P[p + "res_layer.3.weight"].double(), stride=stride,
                                                      padding=1))
            se = F.relu(F.conv2d(r.mean((2, 3), keepdim=True), P[p + "res_layer.5.fc1.weight"].double()))
            x = r * torch.sigmoid(F.conv2d(se, P[p + "res_layer.5.fc2.weight"].double())) + short
            unit += 1
        if s is not None:
            x = ref_adain_block(P, f"{prefix}adains.{stage}", x, s)
        stage += 1
    return ref_fc(P, prefix + "linear", x.mean((2, 3))[0], ENC_LR)


# The release's StyleInV forward: w_t [N, T, w] of x0 [N, 3, H, W], w0 [N, w], motion_z [N, L, z], Ts [N, T].
def ref_styleinv(P, x0, w0, motion_z, Ts, ffa=True, skip_encoder=False):
    out = torch.zeros(*Ts.shape, W_DIM, dtype=torch.float64)
    for b in range(Ts.shape[0]):
        u = ref_anchor_codes(P, motion_z[b], ffa)
        for j in range(Ts.shape[1]):
            v = ref_motion_code(P, u, float(Ts[b, j]))
            s = ref_fc(P, "mapping.fcf1", ref_fc(P, "mapping.fcf0", torch.cat([w0[b].double(), v]), FUSE_LR, "lrelu"),
                       FUSE_LR, "lrelu")
            delta_w = s if skip_encoder else ref_encoder(P, "encoder.", x0[b:b + 1], s)
            out[b, j] = delta_w + w0[b].double()
    return out


# The number of anchor rows the release draws for frame times up to t_max (+20 for abl_no_ffa).
def release_num_anchors(t_max, ffa=True):
    return math.ceil(max(MAX_FRAMES - 1, t_max) / DELTA) + 2 + (0 if ffa else 2 * (KS - 1))


def _videos(G, seed=0, n=2):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w0 = G.mapping(torch.randn(n, G.z_dim, generator=gen), None)[:, 0]
        x0 = G.synthesis(w0[:, None].repeat(1, G.num_ws, 1), noise_mode="const")
    frames = torch.tensor([[0.0, 5.0, 8.0, 20.5], [0.0, 3.0, 16.0, 31.0]])[:n]  # Anchors, fractions, the end.
    return w0, x0, frames


def _ours_latents(mg, G, w0, x0, frames, motion_z):
    mg.attach_generator(G, "const")
    with torch.no_grad():
        return mg(w0, frames, motion_z=motion_z, x0=x0).double()


# ----------------------------------------------------------------------------------------------------------
# Stage 3.


def test_stage3_networks_and_names(release):
    path = release["path"]
    assert checkpoint.network_names(path) == ["G", "D", "motion_generator", "motion_generator_ema", "augment_pipe"]
    nets = checkpoint.load_networks(path)
    assert set(nets) == {"G", "D", "motion_generator", "motion_generator_ema"}
    assert isinstance(nets["motion_generator"], MotionGenerator) and isinstance(nets["D"], VideoDiscriminator)
    kw = nets["motion_generator"].init_kwargs
    assert kw["w_dim"] == W_DIM and kw["num_ws"] == release["G"].num_ws and kw["use_ffa_ape"] is True
    assert kw["fuse_kwargs"] == dict(style_dim=STYLE_DIM, num_layers=2, lr_multiplier=FUSE_LR)
    assert kw["motion_kwargs"] == dict(z_dim=Z_DIM, v_dim=Z_DIM, motion_z_distance=DELTA, kernel_size=KS,
                                       time_enc_dim=TIME_DIM, min_period_len=DELTA, max_period_len=MAX_FRAMES,
                                       max_num_frames=MAX_FRAMES, lr_multiplier=0.01)
    assert kw["encoder_kwargs"] == dict(units_per_stage=list(UNITS), stage_channels=list(CHANNELS), in_channels=3,
                                        se_reduction=16)
    content = checkpoint.read_official_pickle(path)
    assert content["training_set_kwargs"]["sampling_cfg"] == _sampling(True)  # A DictConfig read as a dict.
    assert content["SI"].init_kwargs["mapping_opts"] == release["configs"]["mapping_opts"]
    with pytest.raises(KeyError, match="loaded as 'motion_generator_ema'"):
        checkpoint.load_networks(path, names=["SI_ema"])


# The mapping, release name -> ours, written out here (conv weights: the first (ks+1)//2 taps).
def expected_name(key):
    rules = [("mapping.motion_encoder.frame_0_const", "ffa_ape.c0"),
             ("mapping.motion_encoder.conv.0.", "ffa_ape.conv0."), ("mapping.motion_encoder.conv.1.", "ffa_ape.conv1."),
             ("mapping.motion_encoder.time_encoder.", "ffa_ape.time_encoder."),
             ("mapping.fcf0.", "temporal_style.fc0."), ("mapping.fcf1.", "temporal_style.fc1."),
             ("encoder.", "encoder.")]
    for old, new in rules:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def test_every_tensor_lands_where_the_mapping_says(release):
    nets = checkpoint.load_networks(release["path"])
    for src, ours in ((release["si"], nets["motion_generator"]), (release["si_ema"], nets["motion_generator_ema"])):
        P, mine = src.state_dict(), ours.state_dict()
        placed = set()
        for key, value in P.items():
            if key in ("latent_avg", "mapping.motion_encoder.time_encoder.freqs",
                       "mapping.motion_encoder.time_encoder.phase_scales"):
                continue  # Unused (input_residual) or recomputed by ours (checked by the loader).
            name = expected_name(key)
            if ".conv." in key and key.endswith("weight"):
                value = value[:, :, :6]
            assert torch.equal(mine[name], value), key
            placed.add(name)
        assert placed == set(mine)  # And nothing of ours is left at its fresh value.
    D_state, src_state = nets["D"].state_dict(), release["D_src"].state_dict()
    assert list(D_state) == list(src_state) and all(torch.equal(D_state[k], src_state[k]) for k in src_state)
    assert torch.allclose(nets["D"].time_encoder.fourier_coefs, release["D"].time_encoder.time_encoder.fourier_coefs[0])
    G_state = nets["G"].state_dict()
    assert all(torch.equal(G_state[k], v) for k, v in release["G"].state_dict().items())


@pytest.mark.parametrize("variant", ["conv", "abl_no_ffa", "skip_encoder"])
def test_latents_and_frames_equal_the_release_forward(release, tmp_path, variant):
    G = release["G"]
    if variant == "conv":
        path, si = release["path"], release["si_ema"]
    else:
        configs = release_configs("abl_no_ffa" if variant == "abl_no_ffa" else "conv")
        if variant == "skip_encoder":
            configs["mapping_opts"]["w_dim"] = W_DIM  # w_t = s_t + w0 needs style_dim == w_dim.
        si = release_styleinv(20, configs, skip_encoder=variant == "skip_encoder")
        path = tmp_path / "variant.pkl"
        path.write_bytes(stage3_bytes(G, si, si, release["D"], configs))
    ffa = variant != "abl_no_ffa"
    nets = checkpoint.load_networks(path, names=["G", "motion_generator_ema"])
    w0, x0, frames = _videos(G)
    gen = torch.Generator().manual_seed(5)
    motion_z = torch.randn(2, release_num_anchors(31, ffa), Z_DIM, generator=gen)
    ref = ref_styleinv(si.state_dict(), x0, w0, motion_z, frames / (MAX_FRAMES - 1), ffa=ffa,
                       skip_encoder=variant == "skip_encoder")
    ours = _ours_latents(nets["motion_generator_ema"], nets["G"], w0, x0, frames, motion_z)
    assert (ours - ref).abs().max() < 1e-5 * max(1.0, ref.abs().max().item())  # Measured: ~1e-6.
    with torch.no_grad():
        ref_frames = G.synthesis(ref.float().flatten(0, 1)[:, None].repeat(1, G.num_ws, 1), noise_mode="const")
        our_frames = nets["G"].synthesis(ours.float().flatten(0, 1)[:, None].repeat(1, G.num_ws, 1),
                                         noise_mode="const")
    assert (our_frames - ref_frames).abs().max() < 1e-4
    if ffa:  # v_0 does not depend on the motion noise: the first latent is the same for any draw.
        other = _ours_latents(nets["motion_generator_ema"], nets["G"], w0, x0, frames, torch.randn_like(motion_z))
        assert torch.allclose(other[:, 0], ours[:, 0]) and not torch.allclose(other[:, 1:], ours[:, 1:])


def test_masked_taps_do_not_matter(release, tmp_path):
    si = copy.deepcopy(release["si"])
    with torch.no_grad():
        for conv in si.mapping.motion_encoder.conv:
            conv.weight[:, :, 6:] = 0
    path = tmp_path / "zeroed.pkl"
    path.write_bytes(stage3_bytes(release["G"], si, si, release["D"], release["configs"]))
    zeroed = checkpoint.load_networks(path, names=["motion_generator"])["motion_generator"].state_dict()
    huge = checkpoint.load_networks(release["path"], names=["motion_generator"])["motion_generator"].state_dict()
    assert all(torch.equal(zeroed[k], huge[k]) for k in huge)


def test_video_generator_and_conversion_script(release, tmp_path):
    from click.testing import CliRunner

    from training.video_generation import load_video_generator
    sys.path.insert(0, str(ROOT / "scripts"))
    import convert_release
    out = tmp_path / "converted.pt"
    result = CliRunner().invoke(convert_release.main, [str(release["path"]), str(out)])
    assert result.exit_code == 0, result.output
    assert "motion_generator_ema" in result.output
    stored = checkpoint.load_checkpoint(out)
    assert set(stored["networks"]) == {"G", "D", "motion_generator", "motion_generator_ema"}
    assert stored["metadata"]["converted_from"] == release["path"].name
    assert stored["metadata"]["training_set_kwargs"]["sampling_cfg"]["max_dist"] == 16
    a, b = load_video_generator(release["path"]), load_video_generator(out)
    w0, motion_z = a.latents_for_seeds([0, 1], t_max=40)
    t = torch.arange(0, 40, 3.0)
    assert torch.equal(a.frames(w0, motion_z, t), b.frames(w0, motion_z, t))

    # Errors: one line each, nothing written.
    for args, message in (([str(tmp_path / "missing.pkl"), str(tmp_path / "x.pt")], "does not exist"),
                          ([str(out), str(tmp_path / "x.pt")], "not a .pkl"),
                          ([str(release["path"]), str(release["path"])], "same file")):
        result = CliRunner().invoke(convert_release.main, args)
        assert result.exit_code != 0 and "Error: " in result.output and message in result.output, result.output
        assert not (tmp_path / "x.pt").exists()


def test_init_copies_weights_and_resume_is_refused(release):
    nets = checkpoint.load_networks(release["path"])
    fresh = {name: type(net)(**net.init_kwargs) for name, net in nets.items()}
    stage = training_loop.Stage(networks=fresh, phases=[], loss=None)
    training_loop._load_weights(stage, str(release["path"]), rank=1)
    for name, net in nets.items():
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), fresh[name].state_dict().values(),
                                                     strict=True))
    with pytest.raises(ValueError, match="no training state.*--init"):
        training_loop._load_training_state(stage, str(release["path"]), 0, 1)


# ----------------------------------------------------------------------------------------------------------
# Stage 2.


def test_stage2_psp_equals_the_release_forward(tmp_path):
    G = make_tiny_generator(32, seed=4)
    psp = release_psp(30, G.num_ws)
    path = tmp_path / "psp.pkl"
    path.write_bytes(dumps(lambda ns: dict(pSp=release_records(ns, psp), G=official_records(
        ns, G, init_kwargs=G.init_kwargs, attrs=_attrs), training_set_kwargs=dict(class_name="PSPDataset"))))
    assert checkpoint.network_names(path) == ["encoder", "G"]
    nets = checkpoint.load_networks(path)
    enc = nets["encoder"]
    assert enc.num_ws == G.num_ws and torch.equal(enc.w_avg, psp.latent_avg)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    P = psp.state_dict()
    ref = torch.stack([ref_encoder(P, "encoder.", x[i:i + 1]) + P["latent_avg"].double() for i in range(2)])
    with torch.no_grad():
        assert (enc(x).double() - ref).abs().max() < 1e-4
    # The stage-3 initialisation reads it like one of ours (SPEC 2.6).
    mg = MotionGenerator(w_dim=W_DIM, num_ws=G.num_ws, encoder_kwargs=enc.init_kwargs["backbone_kwargs"],
                         motion_kwargs=dict(z_dim=16, v_dim=16, time_enc_dim=8), fuse_kwargs=dict(style_dim=24))
    assert all(k.startswith("encoder.adains.") or not k.startswith("encoder.") for k in mg.init_from_encoder(enc))


# ----------------------------------------------------------------------------------------------------------
# OmegaConf: bytes written by omegaconf itself, and malicious variants.

# pickle.dumps(OmegaConf.create({"a": 1, "b": [1.5, None, "s"], "c": {"d": True}}), protocol=4) as written by
# omegaconf 2.3.0 and 2.1.2 (2.1 records object_type None at the top).
OMEGACONF_23 = bytes.fromhex(
    "8004957a030000000000008c146f6d656761636f6e662e64696374636f6e666967948c0a44696374436f6e6669679493942981947d94288c"
    "095f6d65746164617461948c0e6f6d656761636f6e662e62617365948c11436f6e7461696e65724d657461646174619493942981947d9428"
    "8c087265665f74797065948c06747970696e67948c03416e799493948c0b6f626a6563745f74797065948c086275696c74696e73948c0464"
    "6963749493948c086f7074696f6e616c94888c036b6579944e8c05666c616773947d948c0a666c6167735f726f6f7494898c0e7265736f6c"
    "7665725f6361636865948c0b636f6c6c656374696f6e73948c0b64656661756c74646963749493946812859452948c086b65795f74797065"
    "94680e8c0c656c656d656e745f7479706594680e75628c075f706172656e74944e8c085f636f6e74656e74947d94288c0161948c0f6f6d65"
    "6761636f6e662e6e6f646573948c07416e794e6f64659493942981947d9428680568068c084d657461646174619493942981947d9428680b"
    "680e680f4e6813886814682368157d946817896818681b6812859452947562682068038c045f76616c944b0175628c0162948c146f6d6567"
    "61636f6e662e6c697374636f6e666967948c0a4c697374436f6e6669679493942981947d9428680568082981947d9428680b680e680f6810"
    "8c046c6973749493946813886814683168157d946817896818681b681285945294681e68108c03696e74949394681f680e75626820680368"
    "215d942868262981947d94286805682a2981947d9428680b680e680f4e68138868144b0068157d946817896818681b681285945294756268"
    "2068356830473ff8000000000000756268262981947d94286805682a2981947d9428680b680e680f4e68138868144b0168157d9468178968"
    "18681b68128594529475626820683568304e756268262981947d94286805682a2981947d9428680b680e680f4e68138868144b0268157d94"
    "6817896818681b68128594529475626820683568308c01739475626575628c01639468022981947d9428680568082981947d9428680b680e"
    "680f68126813886814685768157d946817896818681b681285945294681e680e681f680e75626820680368217d948c01649468262981947d"
    "94286805682a2981947d9428680b680e680f4e6813886814686068157d946817896818681b68128594529475626820685868308875627375"
    "627575622e")
OMEGACONF_21 = bytes.fromhex(
    "80049578030000000000008c146f6d656761636f6e662e64696374636f6e666967948c0a44696374436f6e6669679493942981947d94288c"
    "095f6d65746164617461948c0e6f6d656761636f6e662e62617365948c11436f6e7461696e65724d657461646174619493942981947d9428"
    "8c087265665f74797065948c06747970696e67948c03416e799493948c0b6f626a6563745f74797065944e8c086f7074696f6e616c94888c"
    "036b6579944e8c05666c616773947d948c0a666c6167735f726f6f7494898c0e7265736f6c7665725f6361636865948c0b636f6c6c656374"
    "696f6e73948c0b64656661756c74646963749493948c086275696c74696e73948c0464696374949394859452948c086b65795f7479706594"
    "680e8c0c656c656d656e745f7479706594680e75628c075f706172656e74944e8c085f636f6e74656e74947d94288c0161948c0f6f6d6567"
    "61636f6e662e6e6f646573948c07416e794e6f64659493942981947d9428680568068c084d657461646174619493942981947d9428680b68"
    "0e680f4e6810886811682368127d9468148968156818681b859452947562682068038c045f76616c944b0175628c0162948c146f6d656761"
    "636f6e662e6c697374636f6e666967948c0a4c697374436f6e6669679493942981947d9428680568082981947d9428680b680e680f68198c"
    "046c6973749493946810886811683168127d9468148968156818681b85945294681e68198c03696e74949394681f680e7562682068036821"
    "5d942868262981947d94286805682a2981947d9428680b680e680f4e68108868114b0068127d9468148968156818681b8594529475626820"
    "68356830473ff8000000000000756268262981947d94286805682a2981947d9428680b680e680f4e68108868114b0168127d946814896815"
    "6818681b8594529475626820683568304e756268262981947d94286805682a2981947d9428680b680e680f4e68108868114b0268127d9468"
    "148968156818681b8594529475626820683568308c01739475626575628c01639468022981947d9428680568082981947d9428680b680e68"
    "0f4e6810886811685768127d9468148968156818681b85945294681e680e681f680e75626820680368217d948c01649468262981947d9428"
    "6805682a2981947d9428680b680e680f4e6810886811686068127d9468148968156818681b85945294756268206858683088756273756275"
    "75622e")


def test_omegaconf_bytes_are_read_as_plain_data(tmp_path):
    expected = {"a": 1, "b": [1.5, None, "s"], "c": {"d": True}}
    assert dumps(lambda ns: omegaconf_tree(ns, expected)) == OMEGACONF_23  # The test writer is byte-exact.
    for blob in (OMEGACONF_23, OMEGACONF_21):
        # {"cfg": <blob>}: PROTO 4, EMPTY_DICT, the key (not memoized), the blob's opcodes without its PROTO, FRAME
        # and STOP, SETITEM, STOP.
        (tmp_path / "cfg.pkl").write_bytes(b"\x80\x04}\x8c\x03cfg" + blob[11:-1] + b"s.")
        assert checkpoint.read_official_pickle(tmp_path / "cfg.pkl")["cfg"] == expected


class _System:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


# A DictConfig built by calling the class with arguments (a REDUCE gadget), which omegaconf never writes.
class _CalledConfig:
    def __init__(self, cls, payload):
        self.cls, self.payload = cls, payload

    def __reduce__(self):
        return (self.cls, (self.payload,))


# An omegaconf object whose BUILD state is a list, which omegaconf never writes.
def _state_not_dict(cls):
    obj = cls()
    obj.__reduce_ex__ = lambda protocol: (copyreg.__newobj__, (cls,), ["not", "a", "dict"])
    return obj


@pytest.mark.parametrize("where, match", [("node", "system"), ("reduce", "called with arguments"),
                                          ("torch", "called with arguments"), ("state", "state instead of a dict")])
def test_malicious_configs_run_nothing(release, tmp_path, monkeypatch, where, match):
    monkeypatch.chdir(tmp_path)

    def edit(data, ns):
        kwargs, modules = data["SI"].meta["state"]["_init_kwargs"], data["SI"].meta["state"]["_modules"]
        if where == "node":  # An os.system call hidden as a config value.
            kwargs["mapping_opts"]._content["motion"]._content["z_dim"]._val = _System()
        elif where == "reduce":  # DictConfig(payload) instead of an empty DictConfig filled by BUILD.
            kwargs["encoder_opts"] = _CalledConfig(ns.DictConfig, "import os")
        elif where == "torch":
            modules["face_pool"] = _CalledConfig(nn.AdaptiveAvgPool2d, 3)
        else:
            kwargs["mapping_opts"] = _state_not_dict(ns.DictConfig)

    path = tmp_path / "evil.pkl"
    path.write_bytes(stage3_bytes(release["G"], release["si"], release["si_ema"], release["D"], release["configs"],
                                  edit))
    for load in (checkpoint.load_networks, checkpoint.read_official_pickle):
        with pytest.raises(ValueError, match=match):
            load(path)
    assert not (tmp_path / "pwned-marker").exists()


# ----------------------------------------------------------------------------------------------------------
# What is not implemented is refused, naming the config key.


def _set(cfg: dict, dotted: str, value):
    *parents, key = dotted.split(".")
    for p in parents:
        cfg = cfg[p]
    if value is _DELETE:
        del cfg[key]
    else:
        cfg[key] = value


_DELETE = object()


@pytest.mark.parametrize("key, value, match", [
    ("mapping_opts.motion.gen_strategy", "autoregressive", "gen_strategy = 'autoregressive'.*LSTM"),
    ("mapping_opts.motion.fourier", False, "mapping_opts.motion.fourier"),
    ("mapping_opts.motion.type", "motion_and_pe", "mapping_opts.motion.type"),
    ("mapping_opts.concat_content", False, "mapping_opts.concat_content"),
    ("mapping_opts.c_dim", 3, "mapping_opts.c_dim"),
    ("mapping_opts.motion.v_dim", 32, "z_dim = 16 and v_dim = 32"),
    ("mapping_opts.motion.time_enc.extra", 1, "unknown release config key.*time_enc.extra"),
    ("mapping_opts.motion.kernel_size", _DELETE, "no key 'mapping_opts.motion.kernel_size'"),
    ("mapping_opts.motion.time_enc.min_period_len", "${mapping_opts.motion.motion_z_distance}",
     "min_period_len: .* unresolved OmegaConf interpolation"),
    ("encoder_opts.adain_mode", "bottleneck", "encoder_opts.adain_mode"),
    ("encoder_opts.normalize_adain", False, "encoder_opts.normalize_adain"),
    ("encoder_opts.use_modulation", True, "encoder_opts.use_modulation"),
    ("encoder_opts.pca.use_pca", True, "encoder_opts.pca.use_pca"),
    ("input_residual", False, "input_residual"),
    ("mutual_recon", True, "mutual_recon"),
    ("d_cfg.dummy_c", True, "cfg.dummy_c"),
    ("d_cfg.pe.t_is_frame_idx", True, "cfg.pe.t_is_frame_idx"),
    ("d_cfg.sampling.type", "uniform", "cfg.sampling.type"),
    ("d_cfg.skip_small_t_freqs", 2, "cfg.skip_small_t_freqs"),
])
def test_unimplemented_release_options_are_refused(release, tmp_path, key, value, match):
    configs = copy.deepcopy(release["configs"])
    if "." in key:
        _set(configs, key, value)
    si = release_styleinv(10, configs)  # Every recorded copy of the configs changes, as in a real file.
    if "." not in key:
        si.release_kwargs[key] = value
    D = copy.deepcopy(release["D"])
    D.release_kwargs = dict(D.release_kwargs, cfg=Omega(configs["d_cfg"]))
    path = tmp_path / "refused.pkl"
    path.write_bytes(stage3_bytes(release["G"], si, si, D, configs))
    with pytest.raises(ValueError, match=match) as info:
        checkpoint.load_networks(path)
    assert "refused.pkl" in str(info.value) and "\n" not in str(info.value)
    checkpoint.load_networks(path, names=["G"])  # What can be read still is.
    with pytest.raises(ValueError, match=match):
        checkpoint.load_networks(path, names=["D" if key.startswith("d_cfg") else "motion_generator"])


def test_other_discriminators_are_refused(release, tmp_path):
    from training.networks_stylegan2 import Discriminator
    ffc = copy.deepcopy(release["D"])
    ffc.release_class = "DiscriminatorFFC"
    sg2 = Discriminator(c_dim=0, img_resolution=32, img_channels=15, channel_base=256, channel_max=32)
    for D, edit, kind in ((ffc, None, "ffc"), (release["D"], lambda data, ns: data.update(
            D=official_records(ns, sg2, init_kwargs=sg2.init_kwargs)), "digan")):
        path = tmp_path / f"{kind}.pkl"
        path.write_bytes(stage3_bytes(release["G"], release["si"], release["si"], D, release["configs"], edit))
        with pytest.raises(ValueError, match=f"discriminator.type = '{kind}'"):
            checkpoint.load_networks(path, names=["D"])


def test_recomputed_buffers_must_match(release, tmp_path):
    si = copy.deepcopy(release["si"])
    with torch.no_grad():
        si.mapping.motion_encoder.time_encoder.freqs.mul_(1.01)
    path = tmp_path / "freqs.pkl"
    path.write_bytes(stage3_bytes(release["G"], si, si, release["D"], release["configs"]))
    with pytest.raises(ValueError, match="buffer 'mapping.motion_encoder.time_encoder.freqs'"):
        checkpoint.load_networks(path, names=["motion_generator"])
    measured = (release["si"].mapping.motion_encoder.time_encoder.freqs[0]
                - checkpoint.load_networks(release["path"], names=["motion_generator"])[
                    "motion_generator"].ffa_ape.time_encoder.freqs).abs().max()
    assert measured <= 1e-7  # The release's and our frequencies agree to float32 rounding.


def test_configs_without_optional_encoder_keys_load(release, tmp_path):
    # configs/ffs.yaml and taichi.yaml have no encoder_opts.lr_multiplier, use_modulation or pca.
    configs = copy.deepcopy(release["configs"])
    configs["encoder_opts"] = dict(adain_mode="block", normalize_adain=True)
    si = copy.deepcopy(release["si"])
    si.release_kwargs["encoder_opts"] = Omega(configs["encoder_opts"])
    path = tmp_path / "ffs.pkl"
    path.write_bytes(stage3_bytes(release["G"], si, si, release["D"], configs))
    assert checkpoint.load_networks(path, names=["motion_generator"])["motion_generator"].init_kwargs[
        "lr_multiplier"] == 1.0
