"""The whole StyleInV pipeline on a small dataset, end to end: synthetic moving sprites (or --data) -> stage 1
StyleGAN2 -> stage 2 inversion encoder -> stage 3 StyleInV -> generated videos -> a short report.

Sized for a 2-core laptop CPU (27-30 minutes after setting up the environment, depending on the machine); uses a
GPU automatically when one exists (profile `gpu`).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnnlib.errors import clean_errors  # noqa: E402

# Per-profile sizes: the synthetic data and the training length (kimg) of each stage. `cpu` is the README demo
# (27-30 minutes on 2 cores, half of it stage 3: with 32 kimg of stage 3 the sprites travel but two motion seeds
# of one content end closer together); `gpu` trains every stage longer, sized for about 10 minutes on one
# A100/H100 from typical small-network GPU step times (not yet measured on a GPU); `quick` is the CI smoke test of
# the same pipeline.
# `auto` picks `gpu` when CUDA is present, else `cpu`.
# The data: disc sprites only (in ~10 CPU minutes StyleGAN2 draws crisp discs but rounds off the corners of squares,
# triangles and pluses), 16-22% of the frame in radius so that they have room to travel, leaving the centre of the
# frame in a uniformly random direction (so motion cannot be read off the first frame), four videos per sprite
# that share the first frame (so stage 3 can show D one content moving four ways: configs/small.yaml) and leave it
# 90 degrees apart (so that every group of four shows D four different motions, not sometimes four alike).
# docs/PERFORMANCE.md, "The demo", has the runs behind these choices.
DATA = dict(shapes="disc", motion="straight", videos_per_content=4, spread_headings=True, radius_range="0.16,0.22")
PROFILES = {
    "cpu": dict(videos=128, frames=128, resolution=32, stylegan_cfg="small", stylegan_kimg=56, stylegan_tick=8,
                encoder="small", encoder_kimg=24, encoder_tick=3, styleinv_cfg="small", styleinv_kimg=48,
                styleinv_tick=8, gen_videos=8, gen_frames=128, eval_videos=64),
    "gpu": dict(videos=128, frames=128, resolution=32, stylegan_cfg="small", stylegan_kimg=150, stylegan_tick=10,
                encoder="small", encoder_kimg=40, encoder_tick=10, styleinv_cfg="small", styleinv_kimg=64,
                styleinv_tick=8, gen_videos=8, gen_frames=128, eval_videos=64),
    "quick": dict(videos=8, frames=40, resolution=32, stylegan_cfg="tiny", stylegan_kimg=0.1, stylegan_tick=0.05,
                  encoder="tiny", encoder_kimg=0.05, encoder_tick=0.05, styleinv_cfg="tiny", styleinv_kimg=0.05,
                  styleinv_tick=0.025, gen_videos=4, gen_frames=40, eval_videos=4),
}


# The profile a --profile value runs on a device: `auto` is `gpu` on CUDA, `cpu` otherwise.
def resolve_profile(profile: str, device: str) -> str:
    if profile == "auto":
        return "gpu" if device == "cuda" else "cpu"
    return profile


def _run(title: str, args: list[str], log_dir: Path) -> float:
    click.secho(f"\n=== {title} ===", bold=True)
    click.echo("$ python " + " ".join(args))
    start = time.time()
    with open(log_dir / f"{title.split(':')[0].replace(' ', '_').lower()}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, env=_env())
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        if proc.wait() != 0:
            raise click.ClickException(f"{title} failed (exit {proc.returncode}); see {log.name} in {log_dir}")
    seconds = time.time() - start
    click.secho(f"--- {title} done in {seconds:.0f} s", fg="green")
    return seconds


def _env() -> dict:
    import os
    return dict(os.environ, PYTHONUNBUFFERED="1")


def _newest_snapshot(runs: Path, marker: str) -> Path:
    snaps = sorted(runs.glob(f"*{marker}*/network-snapshot-*.pt"), key=lambda p: (p.parent.name, p.name))
    if not snaps:
        raise click.ClickException(f"No snapshot found under {runs} for {marker}")
    return snaps[-1]


# The first frame of the dataset's first video, as a "real photo" to animate (initial-frame conditioned generation).
def _export_real_frame(data: Path, dest: Path) -> Path:
    import PIL.Image

    from training.dataset import ConsecutiveClipDataset
    frame = ConsecutiveClipDataset(str(data), num_frames=1, random_offset=False)[0][0]
    PIL.Image.fromarray(frame.transpose(1, 2, 0)).save(dest)
    return dest


# The demo's bar for "moves like the real clips": generated travel >= 60% of the real clips', and two motion seeds
# of one content ending at least a quarter of the real travel apart.
MIN_TRAVEL_RATIO, MIN_DIVERSITY_RATIO = 0.6, 0.25


# Real side of the motion measures: travel of the dataset's clips, and the ground-truth diversity (each sprite
# re-rendered from its start under a second draw of its motion).
def _real_motion(data: Path, n: int, frames: int) -> dict:
    from training.dataset import ConsecutiveClipDataset
    from training.sprites import (
        load_ground_truth,
        motion_diversity,
        render_sprites_video,
        resample_motion,
        sprite_travel,
    )
    real_set = ConsecutiveClipDataset(str(data), num_frames=frames, seed=0)
    clips = [real_set[i].transpose(0, 2, 3, 1) for i in range(min(n, len(real_set)))]
    gts = [gt for _, gt in sorted(load_ground_truth(data).items())][:len(clips)]
    others = [render_sprites_video(resample_motion(gt["params"], np.random.default_rng([1, i]), frames), frames,
                                   gt["resolution"]) for i, gt in enumerate(gts)]
    originals = [render_sprites_video(gt["params"], frames, gt["resolution"]) for gt in gts]
    return dict(clips=clips, travel=float(np.mean([sprite_travel(c) for c in clips])),
                diversity=motion_diversity(originals, others))


# The demo's evaluation: first-frame reconstruction PSNR (Eq. 4's target), and on synthetic sprites the motion
# (travel, motion diversity) and identity drift of generated vs real videos.
@torch.no_grad()
def evaluate(snapshot: Path, data: Path, profile: dict, synthetic: bool) -> dict:
    from training.loss_encoder import psnr
    from training.sprites import identity_consistency, motion_diversity, sprite_travel
    from training.video_generation import load_video_generator, video_times
    gen = load_video_generator(snapshot, device="cpu")
    n, frames = profile["eval_videos"], profile["gen_frames"]
    seeds = list(range(1000, 1000 + n))
    t = video_times(frames)
    w0, motion_z = gen.latents_for_seeds(seeds, float(t[-1]))
    videos = gen.frames(w0, motion_z, t).numpy()
    # Frame 0 of a StyleInV video is G(w_{t=0}); its target is G(w0).
    first = torch.from_numpy(videos[:, 0]).float() / 127.5 - 1
    result = dict(first_frame_psnr_db=float(psnr(first, gen.first_frames(w0).clamp(-1, 1)).mean()))
    if synthetic:
        _, other_z = gen.latents_for_seeds(seeds, float(t[-1]), motion_seeds=[s + 500_000 for s in seeds])
        other = gen.frames(w0, other_z, t).numpy().transpose(0, 1, 3, 4, 2)
        videos = videos.transpose(0, 1, 3, 4, 2)
        real = _real_motion(data, n, frames)
        travel = [sprite_travel(v) for v in videos]
        result.update(
            travel_generated_px=float(np.mean(np.nan_to_num(travel))),  # a video without a sprite travels 0
            travel_real_px=real["travel"],
            motion_diversity_generated_px=motion_diversity(videos, other), motion_diversity_real_px=real["diversity"],
            identity_drift_generated=float(np.mean([identity_consistency(v) for v in videos])),
            identity_drift_real=float(np.mean([identity_consistency(c) for c in real["clips"]])))
        result["moves_like_real"] = bool(
            result["travel_generated_px"] >= MIN_TRAVEL_RATIO * result["travel_real_px"]
            and result["motion_diversity_generated_px"] >= MIN_DIVERSITY_RATIO * result["travel_real_px"])
    return result


# The summary lines of the motion measures.
def motion_summary(m: dict, frames: int) -> list[str]:
    travel_pct = 100 * m["travel_generated_px"] / m["travel_real_px"]
    diversity_pct = 100 * m["motion_diversity_generated_px"] / m["travel_real_px"]
    verdict = ("the generated sprites move like the real ones" if m["moves_like_real"] else
               "the generated sprites do NOT move like the real ones")
    return [f"travel over {frames} frames (range of the sprite centre): generated {m['travel_generated_px']:.1f} px, "
            f"real clips {m['travel_real_px']:.1f} px ({travel_pct:.0f}%)",
            f"motion diversity (same content, two motion seeds: last-frame distance): generated "
            f"{m['motion_diversity_generated_px']:.1f} px ({diversity_pct:.0f}% of the real travel), real clips "
            f"{m['motion_diversity_real_px']:.1f} px",
            f"motion: {verdict} (bar: travel >= {MIN_TRAVEL_RATIO:.0%} of the real clips', diversity >= "
            f"{MIN_DIVERSITY_RATIO:.0%} of their travel)"]


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Your own video dataset (folder of per-video frame folders) instead of synthetic sprites")
@click.option("--outdir", default="demo-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--profile", default="auto", type=click.Choice(["auto", *PROFILES]), show_default=True,
              help="Training lengths: cpu (~27-30 min on 2 cores), gpu (~10 min on one A100/H100), quick (smoke "
                   "test); auto picks gpu when CUDA is present")
@clean_errors
def main(data, outdir, profile):
    """Run the whole StyleInV pipeline on a small dataset and summarise it."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    profile = resolve_profile(profile, device)
    p = PROFILES[profile]
    out = Path(outdir).resolve()
    runs, videos_dir, logs = out / "runs", out / "videos", out / "logs"
    for d in (runs, videos_dir, logs):
        d.mkdir(parents=True, exist_ok=True)
    click.echo(f"StyleInV demo, profile '{profile}' on {device}; outputs in {out}")
    times = {}
    synthetic = data is None
    if synthetic:
        data = out / "data" / f"sprites{p['resolution']}"
        if not data.exists():
            times["dataset"] = _run("Dataset: synthetic moving sprites", [
                "scripts/dataset_tool.py", "synthetic", "--out", str(data), "--num-videos", str(p["videos"]),
                "--num-frames", str(p["frames"]), "--resolution", str(p["resolution"]),
                *[f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in DATA.items()]], logs)
    data = Path(data).resolve()
    common = ["--outdir", str(runs), "--workers", "1", "--snap", "1000"]
    times["stage 1"] = _run("Stage 1: StyleGAN2 on all frames", [
        "train_stylegan.py", "--data", str(data), "--cfg", p["stylegan_cfg"], "--kimg", str(p["stylegan_kimg"]),
        "--tick", str(p["stylegan_tick"]), *common], logs)
    stage1 = _newest_snapshot(runs, f"{p['stylegan_cfg']}-gpus")
    times["stage 2"] = _run("Stage 2: inversion encoder", [
        "train_encoder.py", "--data", str(data), "--generator", str(stage1), "--encoder", p["encoder"],
        "--lpips-weight", "0", "--id-weight", "0", "--kimg", str(p["encoder_kimg"]),
        "--tick", str(p["encoder_tick"]), *common], logs)
    stage2 = _newest_snapshot(runs, "encoder")
    # A config that groups the synthetic data's videos per content (configs/small.yaml) does not group yours.
    styleinv_cfg = ROOT / "configs" / f"{p['styleinv_cfg']}.yaml"
    grouped = "videos_per_content" in yaml.safe_load(styleinv_cfg.read_text())["data"]
    times["stage 3"] = _run("Stage 3: StyleInV motion generator", [
        "train_styleinv.py", "--cfg", str(styleinv_cfg), "--data", str(data), "--checkpoint",
        str(stage2), "--kimg", str(p["styleinv_kimg"]), "--tick", str(p["styleinv_tick"]), *common,
        *(["--data.videos_per_content=1"] if grouped and not synthetic else [])], logs)
    stage3 = _newest_snapshot(runs, "styleinv")
    n, frames = p["gen_videos"], p["gen_frames"]
    seeds = f"0-{n - 1}"
    rows = 2 if n >= 4 else 1
    gen_common = ["--network", str(stage3), "--frames", str(frames), "--outdir", str(videos_dir)]
    start = time.time()
    _run("Generate: grid video", ["generate.py", "videos", *gen_common, "--seeds", seeds,
                                  "--grid", f"{rows}x{n // rows}", "--fps", "16"], logs)
    _run("Generate: 2x slow motion", ["generate.py", "videos", *gen_common, "--seeds", "0", "--slowmo", "2",
                                      "--fps", "16"], logs)
    _run("Generate: strip", ["generate.py", "videos", *gen_common, "--seeds", "0-3", "--grid", "4x1",
                             "--format", "strip"], logs)
    first_frame = _export_real_frame(data, out / "real_frame.png")
    _run("Generate: animate a real frame", ["generate.py", "animate", *gen_common, "--image", str(first_frame),
                                            "--fps", "16"], logs)
    times["generation"] = time.time() - start

    click.secho("\n=== Evaluation ===", bold=True)
    metrics = evaluate(stage3, data, p, synthetic)
    report = dict(profile=profile, device=device, data=str(data), snapshots=dict(
        stage1=str(stage1), stage2=str(stage2), stage3=str(stage3)), seconds=times, metrics=metrics,
        outputs=sorted(str(f) for f in videos_dir.rglob("*") if f.is_file()))
    tmp = out / ".report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out / "report.json")
    click.secho("\n=== Summary ===", bold=True)
    for stage, seconds in times.items():
        click.echo(f"  {stage:<12s} {seconds:7.0f} s")
    click.echo(f"  first-frame reconstruction PSNR (G(w_t=0) vs G(w0)): {metrics['first_frame_psnr_db']:.1f} dB")
    if synthetic:
        for line in motion_summary(metrics, frames):
            click.echo(f"  {line}")
        click.echo(f"  identity drift over {frames} frames (sprite colour distance to frame 0, 0 = constant; "
                   f"lower is better): generated {metrics['identity_drift_generated']:.3f}, "
                   f"real clips {metrics['identity_drift_real']:.3f}")
    click.echo(f"  videos: {videos_dir}")
    click.echo(f"  report: {out / 'report.json'}")


if __name__ == "__main__":
    main()
