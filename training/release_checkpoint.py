"""Networks of the official StyleInV release (johannwyh/StyleInV) as this project's: its stage-2 pickle
{pSp, G, training_set_kwargs} and stage-3 pickle {G, D, SI, SI_ema, augment_pipe, training_set_kwargs} (SPEC 0-3).

training/checkpoint.py reads the pickle without running anything from it and hands the records here; this module
turns each release record into (our class, constructor kwargs, our state dict), reading the hyper-parameters from
the recorded constructor arguments (OmegaConf configs arrive as plain dicts) and the backbone layout from the
records themselves. Every config key is used, checked against what we implement (refused with its name
otherwise), or listed as not affecting the network. Records are duck-typed (class_name, init_args, init_kwargs,
submodules, state, state_dict()), so this module does not import training/checkpoint.py.
"""

import functools
import re
from collections.abc import Callable
from typing import Any

import torch

from training.networks_encoder import BASE_STAGE_CHANNELS, UNITS_PER_STAGE, WEncoder
from training.networks_styleinv import AlignedTimeEncoder, MotionGenerator
from training.networks_video_d import TimeDifferenceEncoder, VideoDiscriminator

# Our network name for each network key of a release snapshot (G and D keep theirs).
RELEASE_NAMES = {"pSp": "encoder", "SI": "motion_generator", "SI_ema": "motion_generator_ema"}
# Constructor signatures of the release classes whose positional arguments we bind (names in order, defaults).
_SIGNATURES = {
    "StyleInV": (("checkpoint", "mapping_opts", "encoder_opts", "input_residual", "clip_len", "fps", "mutual_recon",
                  "skip_encoder"), dict(input_residual=False, clip_len=128, fps=30, mutual_recon=False,
                                        skip_encoder=False)),
    "pSp": (("opts", "rank"), {}),
    "Discriminator": (("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                       "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs",
                       "cfg"), dict(architecture="resnet", channel_base=32768, channel_max=512, num_fp16_res=0,
                                    conv_clamp=None, cmap_dim=None, block_kwargs={}, mapping_kwargs={},
                                    epilogue_kwargs={}, cfg={})),
    "bottleneck_IR_SE": (("in_channel", "depth", "stride"), {}),
    "SEModule": (("channels", "reduction"), {}),
    "EqLRConv1d": (("in_features", "out_features", "kernel_size", "padding", "stride", "activation",
                    "lr_multiplier", "bias", "bias_init", "mask_right"),
                   dict(padding=0, stride=1, activation="linear", lr_multiplier=1.0, bias=True, bias_init=0.0,
                        mask_right=False)),
}
_MISSING = object()


# True if `records` (name -> record) come from the release: a pSp (stage 2) or StyleInV (stage 3) network.
def is_release(records: dict) -> bool:
    return any(r.class_name in ("pSp", "StyleInV") for r in records.values())


# Builders for the release networks among `records`: {our name: () -> (class, kwargs, state dict)}. A builder
# raises ValueError (naming `what`, the network and the config key) for what this project does not implement.
# G records (StyleGAN2-ADA generators) are not included: training/checkpoint.py reads those.
def network_builders(records: dict, what: str) -> dict[str, Callable[[], tuple[type, dict, dict]]]:
    stage3 = any(r.class_name == "StyleInV" for r in records.values())
    builders = {}
    for name, record in records.items():
        where = f"{what}, network '{name}'"
        if record.class_name == "StyleInV":
            builders[RELEASE_NAMES.get(name, name)] = functools.partial(_motion_generator, record,
                                                                        records.get("G"), where)
        elif record.class_name == "pSp":
            builders[RELEASE_NAMES.get(name, name)] = functools.partial(_w_encoder, record, where)
        elif (stage3 and name == "D") or record.class_name == "DiscriminatorFFC":
            builders[name] = functools.partial(_video_discriminator, record, where)
    return builders


# ----------------------------------------------------------------------------------------------------------
# Reading recorded constructor arguments and configs.


# Keyword view of a record's constructor call: positional arguments bound by the release signature, then keywords,
# then the signature's defaults.
def _arguments(record, what: str) -> dict:
    names, defaults = _SIGNATURES[record.class_name]
    args = record.init_args
    if len(args) > len(names):
        raise ValueError(f"{what}: {record.class_name} record has {len(args)} positional arguments, expected at "
                         f"most {len(names)}")
    bound = dict(defaults)
    bound.update(zip(names, args, strict=False))
    bound.update(record.init_kwargs)
    return bound


# One release config (a plain dict from the pickle) read key by key: every key is taken (used), checked (must have
# a value we implement), or dropped as not affecting the network; `finish()` refuses any key left over.
class _Config:
    def __init__(self, data: Any, path: str, what: str):
        if not isinstance(data, dict):
            raise ValueError(f"{what}: config '{path}' is a {type(data).__name__}, expected a mapping")
        self.data, self.path, self.what, self.left = data, path, what, set(data)

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    # The value of `key` (default if absent; absent without a default is an error).
    def take(self, key: str, default: Any = _MISSING) -> Any:
        self.left.discard(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise ValueError(f"{self.what}: the release config has no key '{self._key(key)}'")
        return default

    # The value of `key`, which must be one of `supported` (else: not implemented, why).
    def check(self, key: str, supported: tuple, default: Any = _MISSING, why: str = "") -> Any:
        value = self.take(key, default)
        if value not in supported:
            raise ValueError(f"{self.what}: config key {self._key(key)} = {value!r} is not implemented here"
                             f"{f' ({why})' if why else ''}; supported: {', '.join(map(repr, supported))}")
        return value

    def section(self, key: str, default: Any = _MISSING) -> "_Config":
        return _Config(self.take(key, default), self._key(key), self.what)

    # Drop keys that do not change the network (training-time or bookkeeping options); no keys: all the rest.
    def drop(self, *keys: str) -> None:
        self.left.difference_update(keys or set(self.left))

    def finish(self) -> None:
        if self.left:
            keys = ", ".join(self._key(k) for k in sorted(self.left))
            raise ValueError(f"{self.what}: unknown release config key(s) {keys}; refusing to guess what they do")


# Tensors of `state` renamed by `rules` [(regex, replacement or None to drop)], first match wins; a tensor no rule
# matches is an error (so that every release tensor has a place).
def _renamed(state: dict, rules: list, what: str) -> dict:
    out = {}
    for key, value in state.items():
        for pattern, target in rules:
            if re.fullmatch(pattern, key):
                if target is not None:
                    out[re.sub(pattern, target, key)] = value
                break
        else:
            raise ValueError(f"{what}: tensor '{key}' has no counterpart in this project's network")
    return out


# A recomputed buffer of the release (`value`, any shape) must equal ours up to float32 rounding.
def _check_buffer(value: torch.Tensor, ours: torch.Tensor, name: str, what: str) -> None:
    value = value.detach().float().reshape(-1)
    if value.shape != ours.shape or not torch.allclose(value, ours, rtol=1e-5, atol=0):
        diff = (value - ours).abs().max().item() if value.shape == ours.shape else "n/a"
        raise ValueError(f"{what}: buffer '{name}' {tuple(value.shape)} differs from the one this project computes "
                         f"from the config {tuple(ours.shape)} (max difference {diff}); the file does not match "
                         "its recorded config")


# ----------------------------------------------------------------------------------------------------------
# The IR-SE backbone (SPEC 2.1, 5): its layout read from the body's unit records.


# Backbone kwargs of IRSEBackbone for a release encoder record (StyleEncoderIntoW or
# BackboneEncoderUsingLastLayerIntoW): units and widths from the bottleneck_IR_SE records (a stride-2 unit starts a
# stage), input channels from the first conv, the SE reduction from the SE records.
def _backbone_kwargs(encoder, what: str) -> tuple[dict, list[int]]:
    parts = encoder.submodules
    units = [parts["body"].submodules[k] for k in sorted(parts["body"].submodules, key=int)]
    layout, se_reduction = [], set()
    for i, unit in enumerate(units):
        if unit.class_name != "bottleneck_IR_SE":
            raise ValueError(f"{what}: encoder unit {i} is a {unit.class_name}; only the IR-SE backbone "
                             f"(mode 'ir_se') is implemented here")
        args = _arguments(unit, what)
        layout.append((int(args["in_channel"]), int(args["depth"]), int(args["stride"])))
        se_reduction.add(int(_arguments(unit.submodules["res_layer"].submodules["5"], what)["reduction"]))
    units_per_stage, stage_channels = [], []
    for _, depth, stride in layout:
        if stride == 2 or not units_per_stage:
            units_per_stage.append(0)
            stage_channels.append(depth)
        units_per_stage[-1] += 1
    first_conv = parts["input_layer"].submodules["0"].state_dict()["weight"]
    expected, prev = [], int(first_conv.shape[0])
    for n, depth in zip(units_per_stage, stage_channels, strict=True):
        expected += [(prev, depth, 2)] + [(depth, depth, 1)] * (n - 1)
        prev = depth
    if layout != expected or len(se_reduction) != 1:
        raise ValueError(f"{what}: the encoder body (units {layout}) is not an IR-SE backbone with a stride-2 "
                         f"first unit per stage and one SE reduction")
    in_channels, reduction = int(first_conv.shape[1]), se_reduction.pop()
    depth = next((d for d, u in UNITS_PER_STAGE.items() if list(u) == units_per_stage), None)
    if depth is not None and stage_channels == list(BASE_STAGE_CHANNELS) and (in_channels, reduction) == (3, 16):
        kwargs = dict(num_layers=depth)  # A published IR-SE depth (the release always writes IR-SE-50).
    else:
        kwargs = dict(units_per_stage=units_per_stage, stage_channels=stage_channels, in_channels=in_channels,
                      se_reduction=reduction)
    stage_ends = [sum(units_per_stage[:i + 1]) - 1 for i in range(len(units_per_stage))]
    return kwargs, stage_ends


# ----------------------------------------------------------------------------------------------------------
# Stage 2: training.networks_psp.pSp -> WEncoder (SPEC 5).


# pSp record -> WEncoder: encoder.* -> the backbone and head, latent_avg -> w_avg.
def _w_encoder(record, what: str) -> tuple[type, dict, dict]:
    args = _arguments(record, what)
    opts = _Config(args.pop("opts"), "opts", what)
    args.pop("rank", None)  # The training process's rank.
    if args:
        raise ValueError(f"{what}: unknown pSp constructor argument(s) {sorted(args)}")
    opts.check("encoder_type", ("BackboneEncoderUsingLastLayerIntoW",), why="the W encoder of StyleInV stage 2")
    opts.check("start_from_latent_avg", (True,), why="w = E(x) + w_avg")
    opts.check("learn_in_w", (True,), why="one W latent broadcast to all layers")
    output_size = int(opts.take("output_size"))
    num_ws = int(opts.take("n_styles", 2 * (output_size.bit_length() - 1) - 2))
    input_nc = int(opts.take("input_nc", 3))
    opts.drop("irse50")  # The ArcFace file that initialised the backbone before training.
    opts.finish()

    encoder = record.submodules["encoder"]
    if encoder.class_name != "BackboneEncoderUsingLastLayerIntoW":
        raise ValueError(f"{what}: pSp.encoder is a {encoder.class_name}, expected BackboneEncoderUsingLastLayerIntoW")
    backbone, _ = _backbone_kwargs(encoder, what)
    state = record.state_dict()
    if "latent_avg" not in state:
        raise ValueError(f"{what}: the pSp record has no latent_avg buffer (set_latent_avg was never called)")
    state = _renamed(state, [(r"encoder\.((input_layer|body|linear)\..*)", r"\1"), (r"latent_avg", "w_avg")], what)
    if int(state["input_layer.0.weight"].shape[1]) != input_nc:
        raise ValueError(f"{what}: opts.input_nc = {input_nc} but the first conv takes "
                         f"{state['input_layer.0.weight'].shape[1]} channels")
    lr_multiplier = float(_fc_lr(encoder.submodules["linear"], what))
    kwargs = dict(w_dim=int(state["linear.weight"].shape[0]), num_ws=num_ws, backbone_kwargs=backbone,
                  lr_multiplier=lr_multiplier)
    return WEncoder, kwargs, state


# Learning-rate multiplier of a FullyConnectedLayer record (its recorded argument, else its stored bias gain).
def _fc_lr(record, what: str) -> float:
    kwargs = record.init_kwargs
    if "lr_multiplier" in kwargs:
        return float(kwargs["lr_multiplier"])
    args = record.init_args
    return float(args[4]) if len(args) > 4 else float(record.state.get("bias_gain", 1))


# ----------------------------------------------------------------------------------------------------------
# Stage 3: training.networks_styleinv.StyleInV -> MotionGenerator (SPEC 1-2).


# StyleInV record (SI or SI_ema) -> MotionGenerator. `G` is the pickle's generator record (w_dim, num_ws).
def _motion_generator(record, G, what: str) -> tuple[type, dict, dict]:
    if G is None:
        raise ValueError(f"{what}: the pickle has no G, which the motion generator needs (w_dim, num_ws)")
    args = _arguments(record, what)
    top = _Config(args, "", what)
    top.drop("checkpoint", "clip_len", "fps")  # Stage-2 path used at construction; stored-only bookkeeping.
    top.check("input_residual", (True,), why="w_t = E(x0, s_t) + w0 (False adds latent_avg instead)")
    top.check("mutual_recon", (False,), why="the mutual-information head H (config mutual_info)")
    skip_encoder = bool(top.check("skip_encoder", (False, True)))
    motion_kwargs, fuse_kwargs, content_dim = _mapping_opts(top.section("mapping_opts"), what)
    enc = top.section("encoder_opts")
    enc.check("adain_mode", ("block",), why="one AdaIN block after each stage")
    enc.check("normalize_adain", (True,), why="(x + residual) / sqrt(2) in the AdaIN blocks")
    enc.check("use_modulation", (False,), False, why="ModulationBlock instead of AdaIN")
    lr_multiplier = float(enc.take("lr_multiplier", 1))
    pca = enc.section("pca", {})
    pca.check("use_pca", (False,), False, why="the PCA head")
    pca.drop("pca_path", "n_pca", "pca_lambda")  # Used only with use_pca.
    pca.finish()
    enc.finish()
    top.finish()

    w_dim, num_ws = (_plain_int(G.state.get(k), f"{what}: G.{k}") for k in ("w_dim", "num_ws"))
    if content_dim != w_dim:
        raise ValueError(f"{what}: mapping_opts.content_dim = {content_dim} but G has w_dim = {w_dim}")
    motion = record.submodules["mapping"].submodules["motion_encoder"]
    convs = motion.submodules["conv"].submodules
    conv_args = [_arguments(convs[k], what) for k in ("0", "1")]
    motion_kwargs["lr_multiplier"] = float(conv_args[0]["lr_multiplier"])
    use_ffa_ape = motion_kwargs.pop("use_ffa_ape")
    ks = motion_kwargs["kernel_size"]
    for a in conv_args:
        expected = dict(kernel_size=ks, padding=ks // 2 if use_ffa_ape else 0, mask_right=use_ffa_ape, stride=1,
                        activation="lrelu", lr_multiplier=motion_kwargs["lr_multiplier"])
        if any(a[k] != v for k, v in expected.items()):
            raise ValueError(f"{what}: the motion convs were built with {a}, expected {expected} for "
                             "mapping_opts.motion")
    for i in range(fuse_kwargs["num_layers"]):
        if _fc_lr(record.submodules["mapping"].submodules[f"fcf{i}"], what) != fuse_kwargs["lr_multiplier"]:
            raise ValueError(f"{what}: mapping.fcf{i} has another learning-rate multiplier than mapping_opts")
    encoder_kwargs = None
    if not skip_encoder:
        encoder = record.submodules["encoder"]
        encoder_kwargs, stage_ends = _backbone_kwargs(encoder, what)
        if list(encoder.state.get("adain_index", [])) != stage_ends:
            raise ValueError(f"{what}: AdaIN blocks at units {encoder.state.get('adain_index')}, expected after "
                             f"each stage {stage_ends}")
        if _fc_lr(encoder.submodules["linear"], what) != lr_multiplier:
            raise ValueError(f"{what}: encoder.linear has another learning-rate multiplier than encoder_opts")
    kwargs = dict(w_dim=w_dim, num_ws=num_ws, encoder_kwargs=encoder_kwargs, motion_kwargs=motion_kwargs,
                  fuse_kwargs=fuse_kwargs, skip_encoder=skip_encoder, use_ffa_ape=use_ffa_ape,
                  lr_multiplier=lr_multiplier)
    return MotionGenerator, kwargs, _motion_generator_state(record, motion_kwargs, use_ffa_ape, what)


# The mapping_opts config -> (motion_kwargs incl. use_ffa_ape, fuse_kwargs, content_dim) (SPEC 1.1, 1.6).
def _mapping_opts(opts: _Config, what: str) -> tuple[dict, dict, int]:
    opts.check("c_dim", (0,), why="class-conditional motion")
    opts.check("concat_content", (True,), why="the fuse MLP takes [w0, v_t]")
    content_dim = int(opts.take("content_dim"))
    fuse_kwargs = dict(style_dim=int(opts.take("w_dim")), num_layers=int(opts.take("layers_after_fuse")),
                       lr_multiplier=float(opts.take("lr_multiplier", 0.01)))
    opts.drop("motion_dim")  # Read only by the mutual-information head (refused above).
    sampling = opts.section("sampling")
    max_num_frames = int(sampling.take("max_num_frames"))
    sampling.drop()  # Timestamp sampling of the fake clips in training (type, num_sample, max_dist, ...).
    motion = opts.section("motion")
    motion.check("type", ("acyclic_pe",), why="the only type the release's MappingFuse accepts")
    lstm = motion.data.get("gen_strategy") == "autoregressive"
    strategy = motion.check("gen_strategy", ("conv", "abl_no_ffa"), why="the LSTM motion generator" if lstm else "")
    motion.check("fourier", (True,), why="fourier: false maps the interpolated codes with an MLP")
    z_dim, v_dim = int(motion.take("z_dim")), int(motion.take("v_dim"))
    if z_dim != v_dim:
        raise ValueError(f"{what}: config keys mapping_opts.motion.z_dim = {z_dim} and v_dim = {v_dim} differ; "
                         "only z_dim == v_dim (as in every release config) is implemented here")
    motion.drop("use_fractional_t")  # Training-time timestamp sampling.
    time_enc = motion.section("time_enc")
    motion_kwargs = dict(z_dim=z_dim, v_dim=v_dim, motion_z_distance=int(motion.take("motion_z_distance")),
                         kernel_size=int(motion.take("kernel_size")), time_enc_dim=int(time_enc.take("dim")),
                         min_period_len=time_enc.take("min_period_len"), max_period_len=time_enc.take("max_period_len"),
                         max_num_frames=max_num_frames, use_ffa_ape=strategy == "conv")
    time_enc.drop("cond_type", "phase_dropout_std")  # Unused by the release's code (SPEC 1.1).
    for section in (time_enc, motion, opts):
        section.finish()
    return motion_kwargs, fuse_kwargs, content_dim


# The StyleInV state dict renamed to MotionGenerator's: mapping.motion_encoder.* -> ffa_ape.*, mapping.fcf* ->
# temporal_style.fc*, encoder.* unchanged. FFA-APE convs keep the first (ks+1)//2 taps: the release zeroes the
# others in every forward (mask_right), so they never touch an output. freqs/phase_scales are checked against
# ours and dropped (ours recomputes them); latent_avg is unused with input_residual.
def _motion_generator_state(record, motion_kwargs: dict, use_ffa_ape: bool, what: str) -> dict:
    state = record.state_dict()
    prefix = "mapping.motion_encoder.time_encoder."
    ours = AlignedTimeEncoder(motion_kwargs["v_dim"], motion_kwargs["time_enc_dim"], motion_kwargs["min_period_len"],
                              motion_kwargs["max_period_len"])
    for name in ("freqs", "phase_scales"):
        _check_buffer(state[prefix + name], getattr(ours, name), prefix + name, what)
    state = _renamed(state, [
        (r"latent_avg|mapping\.motion_encoder\.time_encoder\.(freqs|phase_scales)", None),
        (r"encoder\.(.*)", r"encoder.\1"),
        (r"mapping\.motion_encoder\.frame_0_const", "ffa_ape.c0"),
        (r"mapping\.motion_encoder\.conv\.([01])\.(weight|bias)", r"ffa_ape.conv\1.\2"),
        (r"mapping\.motion_encoder\.time_encoder\.((periods|phase|aligners)_predictor\.weight)",
         r"ffa_ape.time_encoder.\1"),
        (r"mapping\.fcf(\d+)\.(weight|bias)", r"temporal_style.fc\1.\2"),
    ], what)
    if use_ffa_ape:
        for i in (0, 1):
            weight = state[f"ffa_ape.conv{i}.weight"]
            state[f"ffa_ape.conv{i}.weight"] = weight[:, :, :(weight.shape[2] + 1) // 2].contiguous()
    return state


# An integer attribute of a record (e.g. G.num_ws) as a Python int.
def _plain_int(value: Any, what: str) -> int:
    if hasattr(value, "item"):
        value = value.item()
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} is {value!r}, expected an integer")
    return value


# ----------------------------------------------------------------------------------------------------------
# Stage 3: training.networks_sgv.Discriminator -> VideoDiscriminator (SPEC 3).


# StyleGAN-V discriminator record -> VideoDiscriminator (same tensor names; the fixed Fourier coefficients of the
# time encoder are checked against ours and dropped). The release's other D types are refused.
def _video_discriminator(record, what: str) -> tuple[type, dict, dict]:
    if record.class_name == "DiscriminatorFFC" or "time_encoder" not in record.submodules:
        kind = "ffc" if record.class_name == "DiscriminatorFFC" else "digan"
        raise ValueError(f"{what}: config key discriminator.type = '{kind}' is not implemented here; supported: "
                         "'stylegan-v'")
    args = _Config(_arguments(record, what), "", what)
    args.check("c_dim", (0,), why="class-conditional D")
    args.check("architecture", ("resnet",))
    kwargs = {k: args.take(k) for k in ("img_resolution", "img_channels", "channel_base", "channel_max",
                                        "num_fp16_res", "conv_clamp", "cmap_dim")}
    for key, allowed in (("block_kwargs", ("freeze_layers", "fp16_channels_last")),
                         ("mapping_kwargs", ("num_layers", "embed_features", "layer_features", "activation",
                                             "lr_multiplier")),
                         ("epilogue_kwargs", ("mbstd_group_size", "mbstd_num_channels", "activation"))):
        section = args.section(key)
        kwargs[key] = {k: section.take(k) for k in allowed if k in section.data}
        section.finish()
    cfg = args.section("cfg")
    args.finish()
    sampling = cfg.section("sampling")
    sampling.check("type", ("random",), why="'uniform' conditions D on one time difference")
    kwargs["num_frames"] = int(sampling.take("num_frames_per_video"))
    kwargs["max_num_frames"] = int(sampling.take("max_num_frames"))
    sampling.drop()  # How the real clips' timestamps are drawn in training (num_sample, max_dist, ...).
    kwargs["concat_res"] = int(cfg.take("concat_res"))
    kwargs["num_frames_div_factor"] = int(cfg.take("num_frames_div_factor"))
    cfg.check("dummy_c", (False,), why="a D that ignores the time differences")
    cfg.check("skip_small_t_freqs", (0,), 0, why="fewer Fourier features of the time differences")
    pe = cfg.section("pe")
    const_dim = 256 if pe.check("use_const_embed", (True, False), False) else 0  # The release's fixed width.
    pe.check("t_is_frame_idx", (False,), why="D is given normalised times, as the release's loss passes them")
    pe.finish()
    cfg.finish()
    kwargs["time_enc_kwargs"] = dict(const_dim=const_dim)

    state = record.state_dict()
    name = "time_encoder.time_encoder.fourier_coefs"
    ours = TimeDifferenceEncoder(kwargs["num_frames"] - 1, kwargs["max_num_frames"], const_dim).fourier_coefs
    _check_buffer(state[name], ours, name, what)
    state = _renamed(state, [(re.escape(name), None), (r"time_encoder\.const_embed\.weight", r"\g<0>"),
                             (r"(b\d+|mapping)\..*", r"\g<0>")], what)
    return VideoDiscriminator, kwargs, state
