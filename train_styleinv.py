"""Stage 3: train the StyleInV motion generator (FFA-APE + AdaIN-modulated inversion encoder) with FFA-ST against a
first-frame-aware sparse video discriminator (Sec. 3 of the paper).

Config = a YAML file from configs/ plus `--section.key=value` overrides, e.g.
  python train_styleinv.py --cfg configs/deeperforensics.yaml --data data/dfuf256 \\
      --checkpoint runs/00001-.../network-snapshot-004000.pt --outdir runs --gpus 4 --loss.lambda_reg=0
"""

from pathlib import Path

import click
import yaml

from dnnlib.errors import clean_errors
from training import launch
from training.loss_styleinv import build_styleinv_stage, config_stage_kwargs

# Sections of a config and the keys this script reads itself (the other keys go to the networks and the loss).
REQUIRED_KEYS = dict(data=["max_num_frames", "max_dist", "mirror", "fractional_t"],
                     train=["batch", "batch_gpu", "kimg", "tick", "snap", "lr_motion", "lr_D", "ema_kimg", "aug",
                            "augpipe", "target"],
                     loss=[], motion=[], fuse=[], model=["skip_encoder", "use_ffa_ape"], discriminator=[])


# An override's value must have the type of the value it replaces (an int may replace a float; null either way).
def _same_kind(old, new) -> bool:
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    return type(old) is type(new)


# Read a YAML config and apply `--a.b=value` overrides (values parsed as YAML). Unknown keys, missing sections or
# keys and overrides of another type are errors, so that a typo does not silently train the default.
def load_config(path: str, overrides: list[str]) -> dict:
    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise click.ClickException(f"--cfg {path}: cannot read the config ({e})") from None
    if not isinstance(cfg, dict):
        raise click.ClickException(f"--cfg {path}: expected a mapping at the top level")
    missing = [section for section in REQUIRED_KEYS if not isinstance(cfg.get(section), dict)]
    missing += [f"{section}.{key}" for section, keys in REQUIRED_KEYS.items() if section not in missing
                for key in keys if key not in cfg[section]]
    if missing:
        raise click.ClickException(f"--cfg {path}: missing {', '.join(missing)} (see configs/tiny.yaml for every "
                                   "section and key)")
    for item in overrides:
        if not item.startswith("--") or "=" not in item:
            raise click.ClickException(f"Unexpected argument '{item}': overrides look like --loss.lambda_reg=0")
        key, value = item[2:].split("=", 1)
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise click.ClickException(f"Override '{item}': '{p}' is not a section of {path}")
            node = node[p]
        if leaf not in node:
            raise click.ClickException(f"Override '{item}': '{key}' is not a key of {path} "
                                       f"(known: {', '.join(node)})")
        new = yaml.safe_load(value)
        if not _same_kind(node[leaf], new):
            raise click.ClickException(f"Override '{item}': '{key}' is {node[leaf]!r} in {path}, so the override "
                                       f"must be of type {type(node[leaf]).__name__}, not {new!r}")
        node[leaf] = new
    return cfg


@click.command(context_settings=dict(show_default=True, ignore_unknown_options=True, allow_extra_args=True))
@click.option("--cfg", "cfg_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="configs/<name>.yaml")
@click.option("--data", required=True, type=click.Path(exists=True), help="Video dataset (folder or zip)")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Stage-2 snapshot (encoder + frozen G)")
@launch.common_options
@click.pass_context
@clean_errors
def main(ctx, cfg_path, data, checkpoint, outdir, gpus, batch, batch_gpu, kimg, tick, snap, seed, workers, resume,
         init, metrics, detector_dir, tf32, desc, max_ticks):
    """Train the StyleInV motion generator."""
    cfg = load_config(cfg_path, ctx.args)
    train, data_cfg = cfg["train"], cfg["data"]
    batch = batch or train["batch"]
    batch_gpu = batch_gpu or min(train["batch_gpu"], max(batch // gpus, 1))
    if cfg["motion"].get("max_num_frames", data_cfg["max_num_frames"]) != data_cfg["max_num_frames"]:
        raise click.ClickException("motion.max_num_frames must equal data.max_num_frames")
    stage_kwargs = config_stage_kwargs(cfg, str(Path(checkpoint).resolve()), seed)
    data_kwargs = dict(path=data, kind="clips", max_num_frames=data_cfg["max_num_frames"],
                       max_dist=data_cfg["max_dist"], xflip=data_cfg["mirror"], seed=seed)
    from training.dataset import open_dataset
    open_dataset(**data_kwargs)  # data problems are reported now, before a run folder is made
    metric_names = launch.parse_metrics(metrics) if metrics != "none" else ()
    parts = [Path(data).stem, "styleinv", Path(cfg_path).stem, f"batch{batch}"] + ([desc] if desc else [])
    loop_kwargs = dict(build_stage=build_styleinv_stage, stage_kwargs=stage_kwargs, data_kwargs=data_kwargs,
                       batch_size=batch, batch_gpu=batch_gpu, total_kimg=kimg or train["kimg"],
                       kimg_per_tick=tick or train["tick"], snapshot_ticks=snap or train["snap"], seed=seed,
                       init=init, metrics=metric_names, detector_dir=detector_dir, num_workers=workers,
                       allow_tf32=tf32, max_ticks=max_ticks)
    launch.run(outdir=outdir, desc="-".join(parts), gpus=gpus, resume=resume, loop_kwargs=loop_kwargs)


if __name__ == "__main__":
    main()
