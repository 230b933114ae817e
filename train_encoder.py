"""Stage 2: train the pSp-style W-space inversion encoder for a frozen stage-1 generator (Sec. 3.1, SPEC 5).

Example:
  python train_encoder.py --outdir runs --data data/sprites --generator runs/00000-.../network-snapshot-000100.pt \\
      --id-weight 0 --kimg 50
"""

from pathlib import Path

import click

from dnnlib.errors import clean_errors
from training import launch
from training.loss_encoder import build_encoder_stage

# Encoder sizes: `ir_se50` is the paper's; the small ones are for CPU runs and tests.
ENCODER_PRESETS = {
    "ir_se50": dict(num_layers=50),
    "small": dict(units_per_stage=[1, 2, 2, 1], stage_channels=[32, 64, 96, 128]),
    "tiny": dict(units_per_stage=[1, 1, 1, 1], stage_channels=[16, 24, 32, 48]),
}


@click.command(context_settings=dict(show_default=True))
@click.option("--data", required=True, type=click.Path(exists=True), help="Video dataset or image folder")
@click.option("--generator", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Stage-1 snapshot (ours or an official .pkl); its G_ema is frozen")
@click.option("--encoder", "encoder_cfg", default="ir_se50", type=click.Choice(sorted(ENCODER_PRESETS)))
@click.option("--noise-mode", default="const", type=click.Choice(["const", "random", "none"]))
@click.option("--l2-weight", default=1.0, type=float)
@click.option("--lpips-weight", default=0.8, type=float, help="LPIPS-Alex weight (needs the weight files)")
@click.option("--id-weight", default=0.1, type=float, help="ArcFace identity weight (faces only; 0 for others)")
@click.option("--w-norm-weight", default=0.0, type=float, help="Optional ||w - w_avg|| regulariser")
@click.option("--optimizer", default="ranger", type=click.Choice(["ranger", "adam"]))
@click.option("--lr", default=1e-4, type=float)
@click.option("--init-backbone", default=None, type=click.Path(), help="model_ir_se50.pth to start the backbone from")
@click.option("--lpips-path", default=None, type=click.Path(), help="Folder/file with the LPIPS-Alex weights")
@click.option("--arcface-path", default=None, type=click.Path(), help="Path to model_ir_se50.pth for the ID loss")
@click.option("--holdout", default=2, type=click.IntRange(min=0),
              help="Videos held out of training for evaluation (0: evaluate on training frames)")
@click.option("--class-aware/--no-class-aware", default=True)
@launch.common_options
@clean_errors
def main(data, generator, encoder_cfg, noise_mode, l2_weight, lpips_weight, id_weight, w_norm_weight, optimizer, lr,
         init_backbone, lpips_path, arcface_path, holdout, class_aware, outdir, gpus, batch, batch_gpu, kimg, tick,
         snap, seed, workers, resume, init, metrics, detector_dir, tf32, desc, max_ticks):
    """Train the W-space inversion encoder."""
    from training.dataset import open_dataset
    probe = open_dataset(data, kind="frames")
    batch_gpu = batch_gpu or 8
    batch = batch or batch_gpu * gpus
    holdout = min(holdout, max(probe.num_videos - 1, 0))
    train_videos = list(range(probe.num_videos - holdout))
    data_kwargs = dict(path=data, kind="frames", class_aware=class_aware, seed=seed,
                       videos=train_videos if holdout else None)
    holdout_kwargs = dict(path=data, kind="frames", class_aware=False,
                          videos=list(range(probe.num_videos - holdout, probe.num_videos))) if holdout else None
    stage_kwargs = dict(generator=str(Path(generator).resolve()), encoder_kwargs=dict(
                            backbone_kwargs=ENCODER_PRESETS[encoder_cfg]),
                        loss_kwargs=dict(l2_weight=l2_weight, lpips_weight=lpips_weight, id_weight=id_weight,
                                         w_norm_weight=w_norm_weight, noise_mode=noise_mode),
                        optimizer=optimizer, lr=lr, init_backbone=init_backbone, lpips_path=lpips_path,
                        arcface_path=arcface_path, holdout_data_kwargs=holdout_kwargs)
    parts = [probe.name, "encoder", encoder_cfg, f"batch{batch}"] + ([desc] if desc else [])
    loop_kwargs = dict(build_stage=build_encoder_stage, stage_kwargs=stage_kwargs, data_kwargs=data_kwargs,
                       batch_size=batch, batch_gpu=batch_gpu, total_kimg=kimg or 4000, kimg_per_tick=tick or 4,
                       snapshot_ticks=snap or 50, seed=seed, init=init, metrics=launch.parse_metrics(metrics),
                       detector_dir=detector_dir, num_workers=workers, allow_tf32=tf32, max_ticks=max_ticks)
    launch.run(outdir=outdir, desc="-".join(parts), gpus=gpus, resume=resume, loop_kwargs=loop_kwargs)


if __name__ == "__main__":
    main()
