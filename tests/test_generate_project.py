"""Tests for generate.py project: outputs, continuation, latents for decode, video readers and errors."""

import json
from pathlib import Path

import click
import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import generate
from tests.test_generate import assert_same_pixels, read_frames, run_cli
from training import video_generation as vgen
from training.dataset import center_crop_resize

RES = 32
T = 8
STEPS = ["--w0-steps", 2, "--motion-steps", 2]


@pytest.fixture(scope="module")
def ckpts(tiny_stage3_dir):
    return {name: str(tiny_stage3_dir / f"{name}.pt") for name in ("stage3", "tuned")}


# A "real" clip: a video of the tiny model, as a folder of PNG frames (uint8 [T, R, R, 3]).
@pytest.fixture(scope="module")
def clip_dir(ckpts, tmp_path_factory) -> Path:
    vg = vgen.load_video_generator(ckpts["stage3"])
    frames = next(vg.iter_video_chunks([3], T + 2))[0].permute(0, 2, 3, 1).numpy()
    folder = tmp_path_factory.mktemp("clip") / "clip"
    folder.mkdir()
    for i, frame in enumerate(frames):
        PIL.Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return folder


def mean_step(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_project_outputs_continuation_remotion_and_decode(ckpts, clip_dir, tmp_path):
    out, K = tmp_path / "out", 4
    run_cli("project", "--network", ckpts["stage3"], "--video", clip_dir, "--frames", T, "--continue", K,
            "--remotion", 1, "--format", "frames", *STEPS, "--outdir", out)
    real = read_frames(clip_dir)[:T]
    side = read_frames(out / "projection")
    assert side.shape == (T, RES, 2 * RES, 3)
    np.testing.assert_array_equal(side[:, :, :RES], real)  # [real | reconstruction]
    reconstruction = side[:, :, RES:]

    # --continue: the projected video is the reconstruction for T frames, then K more that join on smoothly.
    projected = read_frames(out / "projected")
    assert projected.shape == (T + K, RES, RES, 3)
    assert_same_pixels(projected[:T], reconstruction)
    steps = [mean_step(projected[i], projected[i + 1]) for i in range(T - 1)]
    assert mean_step(projected[T - 1], projected[T]) <= 2 * max(steps)

    # --remotion: the same content (FFA-APE: the same first frame), other motion.
    remotion = read_frames(out / "remotion_seed0001")
    assert remotion.shape == projected.shape
    assert_same_pixels(remotion[0], projected[0])
    assert not np.array_equal(remotion, projected)

    # projection.json: the PSNR curve of the reconstruction (recomputed here from the PNGs) and the baselines.
    report = json.loads((out / "projection.json").read_text())
    mse = ((reconstruction.astype(float) - real.astype(float)) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(report["psnr"]["per_frame"], 10 * np.log10(255.0 ** 2 / mse), atol=2e-3)
    assert report["psnr"]["mean"] == pytest.approx(np.mean(report["psnr"]["per_frame"]), abs=1e-3)
    assert set(report["baselines"]) == {"static_psnr", "encoder_psnr"} and report["lpips"] is None
    assert report["frames"] == T and report["config"]["w0_steps"] == 2 and len(report["losses"]["motion"]) == 2

    # latents.npz in decode's format: decoding with the same G gives the projected video; a fine-tuned G restyles it.
    with np.load(out / "latents.npz", allow_pickle=False) as data:
        assert list(data["names"]) == ["projected", "remotion_seed0001"]
        assert data["w_t"].shape == (2, T + K, 32) and list(data["remotion_seeds"]) == [1]
        np.testing.assert_allclose(data["t"], np.arange(T + K))
    run_cli("decode", "--latents", out / "latents.npz", "--network", ckpts["stage3"], "--format", "frames",
            "--outdir", tmp_path / "same")
    assert_same_pixels(read_frames(tmp_path / "same/projected"), projected)
    run_cli("decode", "--latents", out / "latents.npz", "--network", ckpts["tuned"], "--format", "frames",
            "--outdir", tmp_path / "tuned")
    restyled = read_frames(tmp_path / "tuned/projected")
    assert restyled.shape == projected.shape and mean_step(restyled, projected) > 1


# --slowmo renders K times the frames over the same span; the projection itself stays at the clip's frames.
def test_project_slowmo(ckpts, clip_dir, tmp_path):
    run_cli("project", "--network", ckpts["stage3"], "--video", clip_dir, "--frames", 4, "--slowmo", 2,
            "--format", "frames", *STEPS, "--outdir", tmp_path)
    side, projected = read_frames(tmp_path / "projection"), read_frames(tmp_path / "projected")
    assert side.shape[0] == 4 and projected.shape[0] == 8
    assert_same_pixels(projected[::2], side[:, :, RES:])


# GIF and mp4 files are read from --start; frames of another size are center-cropped and resized, saying so;
# gray frames become RGB.
def test_project_reads_gif_and_mp4_and_resizes(ckpts, tmp_path):
    rng = np.random.default_rng(0)
    frames = [PIL.Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)) for _ in range(6)]  # Gray.
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = run_cli("project", "--network", ckpts["stage3"], "--video", tmp_path / "clip.gif", "--start", 1,
                     "--frames", 4, "--format", "frames", *STEPS, "--outdir", tmp_path / "gif")
    assert "48x40: center-cropped" in result.output
    with PIL.Image.open(tmp_path / "clip.gif") as gif:
        expected = []
        for i in range(1, 5):
            gif.seek(i)
            expected.append(np.asarray(center_crop_resize(gif.convert("RGB"), RES)))
    np.testing.assert_array_equal(read_frames(tmp_path / "gif/projection")[:, :, :RES], np.stack(expected))
    assert json.loads((tmp_path / "gif/projection.json").read_text())["fps"] == pytest.approx(10)

    vgen.write_video(tmp_path / "clip.mp4", [np.stack([np.asarray(f.convert("RGB")) for f in frames])], fps=12)
    run_cli("project", "--network", ckpts["stage3"], "--video", tmp_path / "clip.mp4", "--frames", 6,
            "--w0-steps", 0, "--motion-steps", 0, "--format", "frames", "--outdir", tmp_path / "mp4")
    assert read_frames(tmp_path / "mp4/projection").shape == (6, RES, 2 * RES, 3)


def test_project_errors(ckpts, clip_dir, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    (tmp_path / "empty").mkdir()
    cases = [
        (["--video", clip_dir, "--frames", 50], "has 10 frames; --start 0 --frames 50 needs 50"),
        (["--video", clip_dir, "--start", 12, "--frames", 2], "has 10 frames"),
        (["--video", tmp_path / "missing.mp4"], "does not exist"),
        (["--video", junk], "Cannot read --video"),
        (["--video", tmp_path / "empty"], "holds no images"),
        (["--video", clip_dir, "--frames", 1], "--frames"),
    ]
    for args, message in cases:
        result = run_cli("project", "--network", ckpts["stage3"], *args, "--outdir", tmp_path / "out", ok=False)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_project_help_documents_every_option():
    options = [p for p in generate.project.params if isinstance(p, click.Option)]
    assert len(options) > 25 and all(p.help for p in options)
    text = CliRunner().invoke(generate.cli, ["project", "--help"], terminal_width=200).output
    for p in options:
        assert p.opts[0] in text
