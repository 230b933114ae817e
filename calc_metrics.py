"""Compute FID / FVD of a generator checkpoint or of a folder of generated videos against a real video dataset.

Examples (run from the repository root):
  python calc_metrics.py --fake-data out/videos --data datasets/sky_256 --metrics fid50k,fvd2048_16f,fvd2048_128f
  torchrun --nproc_per_node 8 calc_metrics.py --network runs/00003/ckpt-001000.pt --data datasets/sky_256
  python calc_metrics.py --network SNAP --data DATA --metrics fvd2048_16f,fvd2048_16f_videomae --protocol stylegan-v
Results are printed as JSON lines and appended to <run-dir>/metric-<name>.jsonl (run dir: --run-dir, else the
folder of --network); each line records what defines its number (docs/METRICS.md). Detector files are never
downloaded: see metrics/detectors.py for where they are looked up.
"""

import json
import os
from pathlib import Path

import click

from dnnlib.errors import clean_errors
from metrics.detectors import I3D_PREPROCESS, INCEPTION_PREPROCESS
from metrics.metric_main import compute_metrics
from metrics.protocols import PROTOCOLS
from torch_utils import distributed


# Generator-mode fake source (written alongside the video generation code); imported only when --network is used.
def fake_source_from_checkpoint(path: str, device):
    errors = []
    for module in ("training.video_generation", "generate"):
        try:
            source = __import__(module, fromlist=["video_source_from_checkpoint"]).video_source_from_checkpoint
        except (ImportError, AttributeError) as e:
            errors.append(f"{module}: {e}")
            continue
        return source(path, device)
    raise click.ClickException("--network needs video_source_from_checkpoint(path, device) from "
                               "training/video_generation.py or generate.py, which is not available ("
                               + "; ".join(errors) + "). Generate videos with generate.py and pass --fake-data.")


def write_results(results: list[dict], run_dir: str | None) -> None:
    for result in results:
        line = json.dumps(result)
        print(line, flush=True)
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(run_dir) / f"metric-{result['metric']}.jsonl", "a") as f:
                f.write(line + "\n")


# One process (rank) of the computation.
def run(opts: dict) -> None:
    local_rank = distributed.init_from_env()
    rank, world_size = distributed.get_rank(), distributed.get_world_size()
    device = opts["device"] or distributed.device_for_rank(local_rank)
    fake = opts["fake_data"] or fake_source_from_checkpoint(opts["network"], device)
    results = compute_metrics(
        opts["metrics"].split(","), fake, opts["data"], protocol=opts["protocol"], seed=opts["seed"],
        num_runs=opts["num_runs"], detector_dir=opts["detector_dir"],
        detector_files=dict(inception=opts["inception_file"], i3d=opts["i3d_file"], videomae=opts["videomae_file"]),
        cache_dir=opts["cache_dir"], use_cache=opts["cache"], device=device, rank=rank, world_size=world_size,
        batch_inception=opts["batch_inception"], batch_i3d_frames=opts["batch_i3d_frames"],
        batch_gen=opts["batch_gen"], num_workers=opts["workers"],
        inception_preprocess=opts["inception_preprocess"], i3d_preprocess=opts["i3d_preprocess"],
        unbiased=opts["covariance"] == "unbiased", fd_method=opts["fd_method"], resolution=opts["resolution"],
        allow_tf32=opts["allow_tf32"], detector_check=opts["detector_check"], progress=opts["progress"],
        frozen_fakes=opts["frozen_fakes"], snapshot=opts["network"])
    if rank == 0:
        run_dir = opts["run_dir"] or (os.path.dirname(os.path.abspath(opts["network"])) if opts["network"] else None)
        write_results(results, run_dir)


@click.command()
@click.option("--network", help="Generator checkpoint; fakes are generated on the fly")
@click.option("--fake-data", help="Folder or zip of generated videos (frame folders or mp4/gif files)")
@click.option("--data", required=True, help="Real dataset: folder or zip of per-video frame folders")
@click.option("--metrics", default="fid50k,fvd2048_16f,fvd2048_128f", show_default=True,
              help="Comma-separated: fid50k, fid50k_full, fvd2048_16f, fvd2048_128f, fvd2048_128f_subsample8f, "
                   "fvd2048_16f_videomae, fvd2048_128f_videomae (content-debiased FVD, VideoMAE-v2 features); "
                   "other counts as fid<n>[k], fvd<videos>_<frames>f[_subsample<s>f][_videomae]")
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default="styleinv", show_default=True,
              help="Real clip/frame selection: the StyleInV release's (the paper's numbers) or StyleGAN-V's")
@click.option("--num-runs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Fake seeds seed..seed+N-1 against one real sample; mean and std (ddof=0), as StyleGAN-V")
@click.option("--seed", type=click.IntRange(min=0),
              help="Seed of the real clip/frame sampling and the first fake seed [default: the protocol's: "
                   "1141514 for styleinv, 0 for stylegan-v]")
@click.option("--gpus", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes to spawn (one per GPU); under torchrun the launcher decides")
@click.option("--device", default=None, help="Device for a single process (default: cuda if available, else cpu)")
@click.option("--detector-dir", help="Folder holding the detector files (else $STYLEINV_DETECTOR_DIR, cache folders)")
@click.option("--inception-file", help="Inception weight file (NVIDIA .pt or pytorch-fid .pth)")
@click.option("--i3d-file", help="I3D weight file (i3d_torchscript.pt)")
@click.option("--videomae-file", help="VideoMAE-v2 weight file (vit_g_hybrid_pt_1200e_ssv2_ft.pth)")
@click.option("--cache-dir", help="Folder for cached real statistics [default: ~/.cache/styleinv/gan-metrics]")
@click.option("--cache/--no-cache", default=True, show_default=True, help="Cache real statistics")
@click.option("--run-dir", help="Append results to <run-dir>/metric-<name>.jsonl [default: folder of --network]")
@click.option("--batch-inception", default=64, show_default=True, type=click.IntRange(min=1), help="Frames per batch")
@click.option("--batch-i3d-frames", default=512, show_default=True, type=click.IntRange(min=1),
              help="Frames per I3D / VideoMAE batch (clips per batch = this // clip length, at least 1)")
@click.option("--batch-gen", default=4, show_default=True, type=click.IntRange(min=1), help="Videos per generator call")
@click.option("--workers", default=3, show_default=True, type=click.IntRange(min=0), help="Data loading processes")
@click.option("--resolution", type=click.IntRange(min=1), help="Centre-crop and resize frames to this size")
@click.option("--inception-preprocess", type=click.Choice(INCEPTION_PREPROCESS), default="nvidia_tf1",
              show_default=True)
@click.option("--i3d-preprocess", type=click.Choice(I3D_PREPROCESS), default="stylegan_v", show_default=True)
@click.option("--covariance", type=click.Choice(["biased", "unbiased"]), default="biased", show_default=True,
              help="1/N (StyleGAN-V) or 1/(N-1) (TF-GAN, pytorch-fid)")
@click.option("--fd-method", type=click.Choice(["eigh", "sqrtm"]), default="eigh", show_default=True)
@click.option("--allow-tf32", is_flag=True, help="Faster, not the reference precision")
@click.option("--detector-check", type=click.Choice(["warn", "error", "off"]), default="warn", show_default=True,
              help="What to do when a detector file does not match its published checksum")
@click.option("--frozen-fakes", is_flag=True,
              help="Control run: every fake frame replaced by its video's first frame (no motion)")
@click.option("--progress/--no-progress", default=True, show_default=True)
@clean_errors
def main(**opts):
    """Compute FID / FVD (StyleInV or StyleGAN-V protocol) for --network or --fake-data against --data."""
    if bool(opts["network"]) == bool(opts["fake_data"]):
        raise click.UsageError("Pass exactly one of --network and --fake-data")
    distributed.launch(run, (opts,), opts["gpus"])


if __name__ == "__main__":
    main()
