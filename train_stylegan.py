"""Stage 1: train StyleGAN2 on all frames of a video dataset (class-aware sampling), or fine-tune a parent
generator for style transfer (Sec. 3.5 of the paper).

Examples:
  python train_stylegan.py --outdir runs --data data/sprites --cfg tiny --kimg 20
  python train_stylegan.py --outdir runs --data data/sky.zip --cfg paper256 --gpus 8 --mirror
  python train_stylegan.py --outdir runs --data data/cartoon_faces --cfg paper256 --transfer-from stage1.pt \\
      --freeze-res 32 --perceptual-weight 30 --identity-weight 1
"""

from pathlib import Path

import click

from dnnlib.errors import clean_errors
from training import launch
from training.loss_stylegan2 import build_stylegan_stage, preset_stage_kwargs
from training.presets import STYLEGAN2_PRESETS, stylegan2_preset


def _dataset_info(data: str, resolution: int | None):
    from training.dataset import open_dataset
    ds = open_dataset(data, kind="frames", resolution=resolution)
    return ds.name, ds.resolution, ds.num_videos


@click.command(context_settings=dict(show_default=True))
@click.option("--data", required=True, type=click.Path(exists=True), help="Video dataset (folder/zip) or image folder")
@click.option("--cfg", default="auto", type=click.Choice(sorted(STYLEGAN2_PRESETS)), help="Base configuration")
@click.option("--resolution", type=int, default=None, help="Resize frames to this size [default: the dataset's]")
@click.option("--gamma", type=click.FloatRange(min=0), help="R1 weight [default: preset]")
@click.option("--pl-weight", type=click.FloatRange(min=0), help="Path-length regularisation weight [default: preset]")
@click.option("--mirror", is_flag=True, help="Random x-flips (the same flip for every frame of a video)")
@click.option("--class-aware/--no-class-aware", default=True, help="Sample videos uniformly, then frames")
@click.option("--aug", default="ada", type=click.Choice(["ada", "noaug", "fixed"]), help="Augmentation mode")
@click.option("--p", "aug_p", type=click.FloatRange(min=0, max=1), default=0.2, help="Strength for --aug fixed")
@click.option("--target", type=click.FloatRange(min=0, max=1), default=0.6, help="ADA target")
@click.option("--augpipe", default="bgc", help="Augmentation preset (blit, geom, color, bgc, bgcfnc, ...)")
@click.option("--noise/--no-noise", default=None, help="Noise inputs in G [default: preset]")
@click.option("--fp32", is_flag=True, help="Disable mixed precision (fp16 is only ever used on CUDA)")
@click.option("--glr", type=click.FloatRange(min=0, min_open=True), help="G learning rate [default: preset]")
@click.option("--dlr", type=click.FloatRange(min=0, min_open=True), help="D learning rate [default: preset]")
@click.option("--transfer-from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Style transfer: fine-tune this parent generator (ours or an official .pkl)")
@click.option("--freeze-res", type=int, default=32, help="Transfer: freeze mapping and synthesis blocks <= this res")
@click.option("--perceptual-weight", type=float, default=30.0, help="Transfer: LPIPS-VGG weight (0 = off)")
@click.option("--identity-weight", type=float, default=0.0, help="Transfer: ArcFace identity weight (1 for faces)")
@click.option("--lpips-path", type=click.Path(), default=None, help="Folder with vgg16-397923af.pth and vgg.pth")
@click.option("--arcface-path", type=click.Path(), default=None, help="Path to model_ir_se50.pth")
@launch.common_options
@clean_errors
def main(data, cfg, resolution, gamma, pl_weight, mirror, class_aware, aug, aug_p, target, augpipe, noise, fp32, glr,
         dlr, transfer_from, freeze_res, perceptual_weight, identity_weight, lpips_path, arcface_path, outdir, gpus,
         batch, batch_gpu, kimg, tick, snap, seed, workers, resume, init, metrics, detector_dir, tf32, desc, max_ticks):
    """Train StyleGAN2 on the frames of a video dataset."""
    name, res, num_videos = _dataset_info(data, resolution)
    spec = stylegan2_preset(cfg, resolution=res, gpus=gpus)
    if gamma is not None:
        spec.loss_kwargs["r1_gamma"] = gamma
    if pl_weight is not None:
        spec.loss_kwargs["pl_weight"] = pl_weight
    spec.G_opt_kwargs["lr"] = glr or spec.G_opt_kwargs["lr"]
    spec.D_opt_kwargs["lr"] = dlr or spec.D_opt_kwargs["lr"]
    if noise is not None:
        spec.G_kwargs.synthesis_kwargs["use_noise"] = noise
    if fp32:
        for kw in (spec.G_kwargs.synthesis_kwargs, spec.D_kwargs):
            kw.update(num_fp16_res=0, conv_clamp=None)
    batch = batch or spec.batch
    batch_gpu = batch_gpu or min(spec.batch_gpu, max(batch // gpus, 1))
    augment_kwargs = None
    if aug != "noaug":
        augment_kwargs = dict(preset=augpipe, p=aug_p if aug == "fixed" else 0.0, adaptive=aug == "ada",
                              target=target)
    transfer_kwargs = None
    if transfer_from is not None:
        transfer_kwargs = dict(parent=str(Path(transfer_from).resolve()), freeze_res=freeze_res,
                               perceptual_weight=perceptual_weight, identity_weight=identity_weight,
                               lpips_path=lpips_path, arcface_path=arcface_path)
    stage_kwargs = preset_stage_kwargs(spec, augment_kwargs, transfer_kwargs)
    data_kwargs = dict(path=data, kind="frames", resolution=resolution, class_aware=class_aware, xflip=mirror,
                       seed=seed)
    parts = [name, cfg, f"gpus{gpus}", f"batch{batch}"]
    parts += ["transfer"] if transfer_from else []
    parts += [desc] if desc else []
    loop_kwargs = dict(build_stage=build_stylegan_stage, stage_kwargs=stage_kwargs, data_kwargs=data_kwargs,
                       batch_size=batch, batch_gpu=batch_gpu, total_kimg=kimg or 25000,
                       kimg_per_tick=tick or 4, snapshot_ticks=snap or 50, seed=seed, init=init,
                       metrics=launch.parse_metrics(metrics), detector_dir=detector_dir, num_workers=workers,
                       allow_tf32=tf32, max_ticks=max_ticks)
    click.echo(f"{num_videos} videos at {res}px; preset {cfg}")
    launch.run(outdir=outdir, desc="-".join(parts), gpus=gpus, resume=resume, loop_kwargs=loop_kwargs)


if __name__ == "__main__":
    main()
