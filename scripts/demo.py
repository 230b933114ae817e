"""The whole StyleInV pipeline on a small dataset, end to end: synthetic moving sprites (or --data) -> stage 1
StyleGAN2 -> stage 2 inversion encoder -> stage 3 StyleInV -> generated videos -> a short report.

Sized for a 2-core laptop CPU (about 17 minutes); uses a GPU automatically when one exists.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnnlib.errors import clean_errors  # noqa: E402

# Training lengths (kimg) per stage. `full` is the README demo; `quick` is the CI smoke test of the same pipeline.
# The synthetic demo data uses disc sprites only: in the ~10 CPU minutes stage 1 gets, StyleGAN2 draws crisp discs
# but rounds off the corners of squares, triangles and pluses (docs/PERFORMANCE.md, "The demo").
PROFILES = {
    "full": dict(videos=64, frames=128, resolution=32, stylegan_cfg="small", stylegan_kimg=56, stylegan_tick=7,
                 encoder="small", encoder_kimg=12, encoder_tick=3, styleinv_cfg="small", styleinv_kimg=8,
                 styleinv_tick=2, gen_videos=8, gen_frames=128, eval_videos=16),
    "quick": dict(videos=6, frames=40, resolution=32, stylegan_cfg="tiny", stylegan_kimg=0.1, stylegan_tick=0.05,
                  encoder="tiny", encoder_kimg=0.05, encoder_tick=0.05, styleinv_cfg="tiny", styleinv_kimg=0.05,
                  styleinv_tick=0.025, gen_videos=4, gen_frames=40, eval_videos=4),
}


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


# First-frame reconstruction PSNR (Eq. 4's target) and identity consistency of generated vs real videos.
@torch.no_grad()
def evaluate(snapshot: Path, data: Path, profile: dict, synthetic: bool) -> dict:
    from training.dataset import ConsecutiveClipDataset
    from training.loss_encoder import psnr
    from training.sprites import identity_consistency
    from training.video_generation import load_video_generator
    gen = load_video_generator(snapshot, device="cpu")
    n, frames = profile["eval_videos"], profile["gen_frames"]
    seeds = list(range(1000, 1000 + n))
    videos = np.concatenate([chunk.numpy() for chunk in gen.iter_video_chunks(seeds, frames, chunk=32)], axis=1)
    # Frame 0 of a StyleInV video is G(w_{t=0}); its target is G(w0).
    w0 = gen.w0_for_seeds(seeds)
    x0 = gen.G.synthesis(w0.unsqueeze(1).expand(-1, gen.G.num_ws, -1), noise_mode="const")
    first = torch.from_numpy(videos[:, 0]).float() / 127.5 - 1
    result = dict(first_frame_psnr_db=float(psnr(first, x0.clamp(-1, 1)).mean()))
    if synthetic:
        fake_ids = [identity_consistency(v.transpose(0, 2, 3, 1)) for v in videos]
        real_set = ConsecutiveClipDataset(str(data), num_frames=min(frames, 128), seed=0)
        real_ids = [identity_consistency(real_set[i].transpose(0, 2, 3, 1)) for i in range(min(n, len(real_set)))]
        result.update(identity_drift_generated=float(np.mean(fake_ids)), identity_drift_real=float(np.mean(real_ids)))
    return result


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Your own video dataset (folder of per-video frame folders) instead of synthetic sprites")
@click.option("--outdir", default="demo-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--profile", default="full", type=click.Choice(sorted(PROFILES)), show_default=True)
@clean_errors
def main(data, outdir, profile):
    """Run the whole StyleInV pipeline on a small dataset and summarise it."""
    p = PROFILES[profile]
    out = Path(outdir).resolve()
    runs, videos_dir, logs = out / "runs", out / "videos", out / "logs"
    for d in (runs, videos_dir, logs):
        d.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    click.echo(f"StyleInV demo ({profile}) on {device}; outputs in {out}")
    times = {}
    synthetic = data is None
    if synthetic:
        data = out / "data" / f"sprites{p['resolution']}"
        if not data.exists():
            times["dataset"] = _run("Dataset: synthetic moving sprites", [
                "scripts/dataset_tool.py", "synthetic", "--out", str(data), "--num-videos", str(p["videos"]),
                "--num-frames", str(p["frames"]), "--resolution", str(p["resolution"]), "--shapes", "disc"], logs)
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
    times["stage 3"] = _run("Stage 3: StyleInV motion generator", [
        "train_styleinv.py", "--cfg", f"configs/{p['styleinv_cfg']}.yaml", "--data", str(data), "--checkpoint",
        str(stage2), "--kimg", str(p["styleinv_kimg"]), "--tick", str(p["styleinv_tick"]), *common], logs)
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
    (out / "report.json").write_text(json.dumps(report, indent=2))
    click.secho("\n=== Summary ===", bold=True)
    for stage, seconds in times.items():
        click.echo(f"  {stage:<12s} {seconds:7.0f} s")
    click.echo(f"  first-frame reconstruction PSNR (G(w_t=0) vs G(w0)): {metrics['first_frame_psnr_db']:.1f} dB")
    if synthetic:
        click.echo(f"  identity drift over {frames} frames (sprite colour distance to frame 0, 0 = constant; "
                   f"lower is better): generated {metrics['identity_drift_generated']:.3f}, "
                   f"real clips {metrics['identity_drift_real']:.3f}")
    click.echo(f"  videos: {videos_dir}")
    click.echo(f"  report: {out / 'report.json'}")


if __name__ == "__main__":
    main()
