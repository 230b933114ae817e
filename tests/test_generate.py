"""Tests for generate.py: the videos, animate and decode subcommands, their outputs, errors and memory use."""

import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import generate
from tests._tiny_checkpoints import (
    make_tiny_stage3_checkpoint,
)
from training import video_generation as vgen
from training.dataset import center_crop_resize

RES = 32
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpts(tiny_stage3_dir):
    return {name: str(tiny_stage3_dir / f"{name}.pt") for name in ("stage3", "tuned", "stage2")}


def run_cli(*args, ok=True):
    result = CliRunner().invoke(generate.cli, [str(a) for a in args] + ["--device", "cpu"])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def read_mp4(path) -> tuple[np.ndarray, float]:
    with imageio.get_reader(path, format="ffmpeg") as reader:
        return np.stack(list(reader.iter_data())), reader.get_meta_data()["fps"]


def read_frames(folder) -> np.ndarray:
    return np.stack([np.asarray(PIL.Image.open(p)) for p in sorted(Path(folder).glob("*.png"))])


def assert_same_pixels(a: np.ndarray, b: np.ndarray):
    assert a.shape == b.shape
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


# ----------------------------------------------------------------------------------------------------------
# videos


def test_videos_mp4_count_size_fps(ckpts, tmp_path):
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", "3,5", "--frames", 10, "--fps", 24, "--outdir", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0003.mp4", "seed0005.mp4"]
    frames, fps = read_mp4(tmp_path / "seed0003.mp4")
    assert frames.shape == (10, RES, RES, 3) and fps == pytest.approx(24)


def test_videos_frames_match_library_and_slowmo(ckpts, tmp_path):
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", 1, "--frames", 6, "--format", "frames",
            "--outdir", tmp_path / "a")
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", 1, "--frames", 6, "--slowmo", 2, "--format", "frames",
            "--chunk", 5, "--outdir", tmp_path / "b")
    normal, slow = read_frames(tmp_path / "a/seed0001"), read_frames(tmp_path / "b/seed0001")
    assert normal.shape == (6, RES, RES, 3) and slow.shape == (12, RES, RES, 3)
    assert_same_pixels(slow[::2], normal)
    vg = vgen.load_video_generator(ckpts["stage3"])
    expected = next(vg.iter_video_chunks([1], 6, chunk=6))[0].permute(0, 2, 3, 1).numpy()
    assert_same_pixels(normal, expected)


def test_videos_slowmo_mp4_doubles_frames_and_rate(ckpts, tmp_path):
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", 0, "--frames", 5, "--slowmo", 2, "--outdir", tmp_path)
    frames, fps = read_mp4(tmp_path / "seed0000.mp4")
    assert frames.shape[0] == 10 and fps == pytest.approx(60)


def test_videos_same_seed_across_batch_and_chunk(ckpts, tmp_path):
    for name, batch, chunk in [("a", 3, 8), ("b", 1, 3)]:
        run_cli("videos", "--network", ckpts["stage3"], "--seeds", "0-2", "--frames", 8, "--format", "frames",
                "--batch", batch, "--chunk", chunk, "--outdir", tmp_path / name)
    for seed in range(3):
        assert_same_pixels(read_frames(tmp_path / f"a/seed{seed:04d}"), read_frames(tmp_path / f"b/seed{seed:04d}"))


def test_videos_grid_same_motion(ckpts, tmp_path):
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", "4,9", "--frames", 5, "--grid", "2x2", "--same-motion",
            "--format", "frames", "--outdir", tmp_path)
    grid = read_frames(tmp_path / "grid000")
    assert grid.shape == (5, 2 * RES, 2 * RES, 3)
    vg = vgen.load_video_generator(ckpts["stage3"])
    t = vgen.video_times(5)
    for r, motion_seed in enumerate([4, 9]):
        for c, content_seed in enumerate([4, 9]):
            w0, motion_z = vg.latents_for_seeds([content_seed], 4, motion_seeds=[motion_seed])
            cell = vg.frames(w0, motion_z, t)[0].permute(0, 2, 3, 1).numpy()
            assert_same_pixels(grid[:, r * RES:(r + 1) * RES, c * RES:(c + 1) * RES], cell)


def test_videos_grid_pages_gif_and_strip(ckpts, tmp_path):
    run_cli("videos", "--network", ckpts["stage3"], "--num-videos", 5, "--frames", 9, "--grid", "1x3",
            "--format", "gif", "--outdir", tmp_path / "gif")
    assert sorted(p.name for p in (tmp_path / "gif").iterdir()) == ["grid000.gif", "grid001.gif"]
    with PIL.Image.open(tmp_path / "gif/grid001.gif") as image:
        assert image.n_frames == 9 and image.size == (3 * RES, RES)
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", 2, "--frames", 9, "--format", "strip",
            "--strip-every", 4, "--outdir", tmp_path / "strip")
    strip = np.asarray(PIL.Image.open(tmp_path / "strip/seed0002.png"))
    assert strip.shape == (RES, 3 * RES, 3)


def test_videos_transfer_latents_and_decode(ckpts, tmp_path):
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", "0-1", "--frames", 6, "--format", "frames",
            "--outdir", tmp_path / "plain")
    run_cli("videos", "--network", ckpts["stage3"], "--seeds", "0-1", "--frames", 6, "--format", "frames",
            "--transfer-network", ckpts["tuned"], "--save-latents", "--outdir", tmp_path / "st")
    plain, both = read_frames(tmp_path / "plain/seed0001"), read_frames(tmp_path / "st/seed0001")
    assert both.shape == (6, RES, 2 * RES, 3)
    assert_same_pixels(both[:, :, :RES], plain)
    assert np.abs(both[:, :, RES:].astype(int) - plain.astype(int)).mean() > 1  # The tuned G looks different.

    with np.load(tmp_path / "st/latents.npz", allow_pickle=False) as data:
        assert data["w_t"].shape == (2, 6, 32) and data["w0"].shape == (2, 32) and data["motion_z"].shape[0] == 2
        assert list(data["names"]) == ["seed0000", "seed0001"] and data["t"].tolist() == list(range(6))
        assert np.allclose(data["w_t"][:, 0], data["w_t"][:, 0])  # Finite, readable without pickle.
    run_cli("decode", "--latents", tmp_path / "st/latents.npz", "--network", ckpts["stage3"], "--format", "frames",
            "--outdir", tmp_path / "dec")
    assert_same_pixels(read_frames(tmp_path / "dec/seed0001"), plain)  # Same w_t, same G: same video.
    run_cli("decode", "--latents", tmp_path / "st/latents.npz", "--network", ckpts["tuned"], "--format", "frames",
            "--chunk", 4, "--outdir", tmp_path / "dec_tuned")
    assert_same_pixels(read_frames(tmp_path / "dec_tuned/seed0001"), both[:, :, RES:])


# ----------------------------------------------------------------------------------------------------------
# animate


def test_animate_image_and_folder(ckpts, tmp_path):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    array = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    PIL.Image.fromarray(array).save(photos / "face.png")
    PIL.Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(photos / "other.jpg")
    run_cli("animate", "--network", ckpts["stage3"], "--image", photos / "face.png", "--frames", 4,
            "--format", "frames", "--outdir", tmp_path / "one")
    out = read_frames(tmp_path / "one/face")
    assert out.shape == (4, RES, 3 * RES, 3)
    expected_input = np.asarray(center_crop_resize(PIL.Image.fromarray(array), RES))
    for t in range(4):
        assert np.array_equal(out[t, :, :RES], expected_input)  # [input | inversion | animation]
    assert np.array_equal(out[0, :, RES:2 * RES], out[3, :, RES:2 * RES])  # The inversion is a still.
    assert not np.array_equal(out[1, :, 2 * RES:], out[3, :, 2 * RES:])  # The animation moves.

    run_cli("animate", "--network", ckpts["stage3"], "--image", photos, "--frames", 3,
            "--transfer-network", ckpts["tuned"], "--outdir", tmp_path / "folder")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["face.mp4", "other.mp4"]
    frames, _ = read_mp4(tmp_path / "folder/other.mp4")
    assert frames.shape == (3, RES, 4 * RES, 3)


# ----------------------------------------------------------------------------------------------------------
# Errors


def test_clear_errors(ckpts, tmp_path):
    result = run_cli("videos", "--network", tmp_path / "missing.pt", "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "missing.pt" in result.output and "does not exist" in result.output
    result = run_cli("videos", "--network", ckpts["tuned"], "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "stage-1" in result.output and "train_styleinv.py" in result.output
    result = run_cli("animate", "--network", ckpts["stage2"], "--image", tmp_path, "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "Folder" in result.output  # No images there (checked before loading).
    bad = tmp_path / "broken.png"
    bad.write_text("this is not an image")
    result = run_cli("animate", "--network", ckpts["stage3"], "--image", bad, "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "Cannot read image" in result.output and "broken.png" in result.output
    result = run_cli("animate", "--network", ckpts["stage2"], "--image", bad, "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "stage-2" in result.output
    result = run_cli("videos", "--network", ckpts["stage3"], "--seeds", "0-2", "--grid", "2x2", "--same-motion",
                     "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "multiple of 2" in result.output
    result = run_cli("videos", "--network", ckpts["stage3"], "--grid", "2by2", "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "ROWSxCOLS" in result.output
    result = run_cli("decode", "--latents", bad, "--network", ckpts["stage3"], "--outdir", tmp_path, ok=False)
    assert result.exit_code != 0 and "broken.png" in result.output


def test_command_line_entry_point(ckpts, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "generate.py", "videos", "--network", ckpts["stage3"], "--seeds", "0", "--frames", "3",
           "--format", "strip", "--strip-every", "1", "--outdir", str(tmp_path), "--device", "cpu"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    assert np.asarray(PIL.Image.open(tmp_path / "seed0000.png")).shape == (RES, 3 * RES, 3)


# ----------------------------------------------------------------------------------------------------------
# Memory: a long video is generated and written in chunks.

# Peak RSS of one `generate.py videos` run in a fresh process.
PEAK_RSS_SCRIPT = """
import resource, sys
import generate
try:
    generate.cli(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


# 60 -> 600 frames of a thin 64 px model: holding the extra uint8 frames alone would take 540 * 12 KiB = 6.3 MiB.
# glibc's mmap threshold is fixed so that freed chunk buffers go back to the system (its default adaptive
# threshold keeps them in the heap, which adds ~10 MiB of noise); then the peak grows by < 0.3 MiB.
def test_peak_memory_flat_for_10x_frames(tmp_path):
    ckpt = tmp_path / "thin64.pt"
    make_tiny_stage3_checkpoint(ckpt, resolution=64, channel_base=256)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_="65536")
    peaks = {}
    for frames in (60, 600):
        args = ["videos", "--network", str(ckpt), "--seeds", "0", "--frames", str(frames), "--chunk", "8",
                "--batch", "1", "--outdir", str(tmp_path / str(frames)), "--device", "cpu"]
        out = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, *args], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout
        peaks[frames] = int(out.split("PEAK_KB")[1]) * 1024
    frames_back, _ = read_mp4(tmp_path / "600/seed0000.mp4")
    assert frames_back.shape == (600, 64, 64, 3)
    extra_frame_bytes = 540 * 64 * 64 * 3
    assert peaks[600] - peaks[60] < 0.4 * extra_frame_bytes, peaks
