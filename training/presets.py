"""StyleGAN2 configuration presets (stylegan2-ada-pytorch's `--cfg` table, STYLEGAN2.md 1.1, plus small CPU ones)."""

import copy

from dnnlib import EasyDict

# Per preset: ref_gpus, batch, mbstd_group, fmaps (channel_base = fmaps * 32768) or channel_base, channel_max,
# lr, gamma (R1), ema_kimg, ema_rampup, map (mapping layers), z/w dims, mixed precision, noise, pl_weight
# (path-length regularisation). `None` means "derived from resolution, gpus and batch" by ADA's `auto` formulas
# (see _fill_auto).
STYLEGAN2_PRESETS: dict[str, dict] = {
    # The paper's 256x256 config (ADA paper, FFHQ/LSUN 256; StyleInV stage 1).
    "paper256": dict(resolution=256, ref_gpus=8, batch=64, mbstd_group=8, fmaps=0.5, channel_max=512, lr=0.0025,
                     gamma=1.0, ema_kimg=20.0, ema_rampup=None, map=8, z_dim=512, w_dim=512, num_fp16_res=4,
                     conv_clamp=256, use_noise=True, pl_weight=2.0),
    # ADA's `auto`: batch, mbstd, gamma, EMA, fmaps and lr follow from the resolution and the GPU count.
    "auto": dict(resolution=None, ref_gpus=None, batch=None, mbstd_group=None, fmaps=None, channel_max=512, lr=None,
                 gamma=None, ema_kimg=None, ema_rampup=0.05, map=2, z_dim=512, w_dim=512, num_fp16_res=4,
                 conv_clamp=256, use_noise=True, pl_weight=2.0),
    # Tiny CPU config for tests: 32 channels, 32-d latents, 2 mapping layers, fp32.
    "tiny": dict(resolution=32, ref_gpus=1, batch=8, mbstd_group=4, channel_base=1024, channel_max=32, lr=0.0025,
                 gamma=None, ema_kimg=None, ema_rampup=0.05, map=2, z_dim=32, w_dim=32, num_fp16_res=0,
                 conv_clamp=256, use_noise=True, pl_weight=2.0),
    # Small CPU config for the synthetic demo, chosen for how fast it learns on 2 cores: 64 channels up to 16 px and
    # 32 at 32 px (the 32 px convolutions cost most), 128-d latents, 2 mapping layers, fp32, and no path-length
    # regularisation (10% of the step time, and it only matters for latent-space smoothness late in training).
    "small": dict(resolution=32, ref_gpus=1, batch=16, mbstd_group=4, channel_base=1024, channel_max=64, lr=0.0025,
                  gamma=None, ema_kimg=None, ema_rampup=0.05, map=2, z_dim=128, w_dim=128, num_fp16_res=0,
                  conv_clamp=256, use_noise=True, pl_weight=0.0),
}
# StyleInV's no-noise generators (SPEC 6): the same configs with use_noise=False in every synthesis layer.
STYLEGAN2_PRESETS["paper256_nn"] = dict(STYLEGAN2_PRESETS["paper256"], use_noise=False)
STYLEGAN2_PRESETS["auto_nn"] = dict(STYLEGAN2_PRESETS["auto"], use_noise=False)


# Fill the `None` entries of a preset with ADA's `auto` formulas (STYLEGAN2.md 1.1), in dependency order:
# batch from resolution and gpus, then mbstd group, R1 gamma and EMA from the batch, fmaps and lr from resolution.
def _fill_auto(spec: dict, resolution: int, gpus: int) -> dict:
    spec = dict(spec)
    if spec["ref_gpus"] is None:
        spec["ref_gpus"] = gpus
    if spec["batch"] is None:
        spec["batch"] = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    if spec["mbstd_group"] is None:
        spec["mbstd_group"] = min(spec["batch"] // spec["ref_gpus"], 4)
    if spec["gamma"] is None:
        spec["gamma"] = 0.0002 * resolution ** 2 / spec["batch"]
    if spec["ema_kimg"] is None:
        spec["ema_kimg"] = spec["batch"] * 10 / 32
    if spec.get("fmaps", 0) is None:
        spec["fmaps"] = 1 if resolution >= 512 else 0.5
    if spec["lr"] is None:
        spec["lr"] = 0.002 if resolution >= 1024 else 0.0025
    return spec


# Training options of preset `name` at `resolution` (default: the preset's own) for `gpus` processes, as
# EasyDict(G_kwargs, D_kwargs, G_opt_kwargs, D_opt_kwargs, loss_kwargs, G_reg_interval, D_reg_interval, ema_kimg,
# ema_rampup, batch, batch_gpu, mbstd_group, ...). G_kwargs/D_kwargs are complete constructor arguments of
# training.networks_stylegan2.Generator/Discriminator.
def stylegan2_preset(name: str, resolution: int | None = None, gpus: int = 1, c_dim: int = 0,
                     img_channels: int = 3) -> EasyDict:
    if name not in STYLEGAN2_PRESETS:
        raise ValueError(f"Unknown StyleGAN2 preset {name!r}; choose one of {sorted(STYLEGAN2_PRESETS)}")
    spec = copy.deepcopy(STYLEGAN2_PRESETS[name])
    resolution = resolution or spec["resolution"]
    if resolution is None:
        raise ValueError(f"Preset {name!r} needs a resolution")
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"Resolution must be a power of two >= 8, got {resolution}")
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    spec = _fill_auto(spec, resolution, gpus)
    channel_base = spec.get("channel_base") or int(spec["fmaps"] * 32768)
    nets = dict(channel_base=channel_base, channel_max=spec["channel_max"], num_fp16_res=spec["num_fp16_res"],
                conv_clamp=spec["conv_clamp"])
    synthesis_kwargs = dict(nets) if spec["use_noise"] else dict(nets, use_noise=False)
    G_kwargs = EasyDict(z_dim=spec["z_dim"], c_dim=c_dim, w_dim=spec["w_dim"], img_resolution=resolution,
                        img_channels=img_channels, mapping_kwargs=dict(num_layers=spec["map"]),
                        synthesis_kwargs=synthesis_kwargs)
    D_kwargs = EasyDict(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels, architecture="resnet",
                        **nets, block_kwargs={}, mapping_kwargs={},
                        epilogue_kwargs=dict(mbstd_group_size=spec["mbstd_group"]))
    opt = dict(lr=spec["lr"], betas=(0.0, 0.99), eps=1e-8)
    return EasyDict(
        cfg=name, resolution=resolution, gpus=gpus, ref_gpus=spec["ref_gpus"], G_kwargs=G_kwargs, D_kwargs=D_kwargs,
        G_opt_kwargs=dict(opt), D_opt_kwargs=dict(opt), G_reg_interval=4, D_reg_interval=16,
        loss_kwargs=dict(r1_gamma=spec["gamma"], pl_weight=spec["pl_weight"], pl_batch_shrink=2, pl_decay=0.01,
                         style_mixing_prob=0.9),
        batch=spec["batch"], batch_gpu=spec["batch"] // spec["ref_gpus"], mbstd_group=spec["mbstd_group"],
        ema_kimg=spec["ema_kimg"], ema_rampup=spec["ema_rampup"],
    )
