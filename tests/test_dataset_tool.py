"""Tests for scripts/dataset_tool.py: command line, from-videos (video files, frame folders, boxes), synthetic."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from training.dataset import VideoFrameDataset
from training.sprites import load_ground_truth

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import dataset_tool  # noqa: E402


def _write_mp4(path: Path, colors, fps=10, size=(48, 32)):
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", pix_fmt_out="yuv444p",
                                         macro_block_size=1, quality=10)
    writer.send(None)
    for c in colors:
        writer.send(np.full((size[1], size[0], 3), c, np.uint8).tobytes())
    writer.close()


def test_synthetic_from_the_command_line(tmp_path):
    out = tmp_path / "syn"
    args = ["synthetic", "--out", str(out), "--num-videos", "2", "--num-frames", "4", "--resolution", "16",
            "--seed", "1", "--shapes", "square, plus"]
    res = subprocess.run([sys.executable, "scripts/dataset_tool.py", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Wrote" in res.stdout and "synthetic videos" in res.stderr  # summary and progress bar
    ds = VideoFrameDataset(out, class_aware=False)
    assert (ds.num_videos, len(ds), ds.resolution) == (2, 8, 16)
    assert (out / "video_00001" / "sprite_gt.json").is_file()
    assert {gt["params"]["shape"] for gt in load_ground_truth(out).values()} <= {"square", "plus"}
    bad = subprocess.run([sys.executable, "scripts/dataset_tool.py", *args[:-1], "star", "--overwrite"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "shapes must be" in bad.stderr
    assert VideoFrameDataset(out, class_aware=False).num_videos == 2  # the existing dataset is untouched
    again = CliRunner().invoke(dataset_tool.cli, args)
    assert again.exit_code != 0 and "already exists" in again.output


def test_from_videos_files_fps_and_max_frames(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    _write_mp4(src / "a.mp4", [colors[t % 3] for t in range(12)])
    _write_mp4(src / "b.mp4", [colors[0]] * 12)
    dest = tmp_path / "out.zip"
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(dest),
                                                "--resolution", "16", "--fps", "5"])
    assert res.exit_code == 0, res.output
    ds = VideoFrameDataset(dest, class_aware=False)
    assert ds.video_names == ["a", "b"] and ds.video_lengths.tolist() == [6, 6] and ds.fps == 5.0
    video = ds.load_video(0)  # frames 0, 2, 4, ... of a: colours 0, 2, 1, 0, 2, 1
    for t, frame in enumerate(video):
        assert np.abs(frame.mean((1, 2)) - colors[(2 * t) % 3]).max() < 12
    dest2 = tmp_path / "out2"
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(dest2),
                                                "--resolution", "8", "--max-frames", "4"])
    assert res.exit_code == 0, res.output
    assert VideoFrameDataset(dest2).video_lengths.tolist() == [4, 4]
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(dest2),
                                                "--resolution", "8"])
    assert res.exit_code != 0 and "already exists" in res.output


def test_from_videos_frame_folders_with_boxes_follow_algorithm_1(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    frames = {name: rng.integers(0, 256, (3, 30, 40, 3), dtype=np.uint8) for name in ("tall", "wide")}
    for name, video in frames.items():
        (src / name).mkdir(parents=True)
        for k, f in enumerate(video):
            PIL.Image.fromarray(f).save(src / name / f"{k:03d}.png")
    # tall box 10x16 -> padded left/right by 3: x 2..18, y 4..20; wide box 16x4 -> padded up/down by 6: same square
    boxes = {"tall": [[5, 4, 15, 20]] * 3, "wide": [[2, 10, 18, 14]] * 3}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    dest = tmp_path / "out"
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(dest),
                                                "--resolution", "16", "--boxes", str(tmp_path / "boxes.json")])
    assert res.exit_code == 0, res.output
    ds = VideoFrameDataset(dest)
    for v, name in enumerate(ds.video_names):
        expected = frames[name][:, 4:20, 2:18].transpose(0, 3, 1, 2)
        assert np.array_equal(ds.load_video(v), expected)
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(tmp_path / "x"),
                                                "--resolution", "16", "--fps", "5"])
    assert res.exit_code != 0 and "--source-fps" in res.output


def test_interrupted_conversion_leaves_no_dataset_and_resumes(tmp_path):
    src = tmp_path / "src"
    (src / "a_good").mkdir(parents=True)
    PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "a_good" / "0.png")
    (src / "b_bad.mp4").write_bytes(b"this is not a video")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for dest in (out_dir / "ds", out_dir / "ds.zip"):
        res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(dest),
                                                    "--resolution", "8"])
        assert res.exit_code != 0 and "b_bad.mp4" in res.output and "cannot decode" in res.output
        assert "run the same command again to resume" in res.output
    # no dataset and no temporary file: only the finished video, kept in the hidden partial folders
    assert sorted(p.name for p in out_dir.iterdir()) == [".ds.partial", ".ds.zip.partial"]
    assert sorted(p.name for p in (out_dir / ".ds.partial").iterdir()) == [".state.json", "a_good"]
    (src / "b_bad.mp4").unlink()
    _write_mp4(src / "b_good.mp4", [(200, 30, 30)] * 3, size=(16, 8))
    for dest in (out_dir / "ds", out_dir / "ds.zip"):
        res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(dest),
                                                    "--resolution", "8"])
        assert res.exit_code == 0 and "1 videos done" in res.output, res.output
        assert VideoFrameDataset(dest).video_lengths.tolist() == [1, 3]
    assert sorted(p.name for p in out_dir.iterdir()) == ["ds", "ds.zip"]
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(out_dir / "x"),
                                                "--resolution", "8", "--max-frames", "2"])
    assert res.exit_code == 0
    (out_dir / ".x.partial").mkdir()
    (out_dir / ".x.partial" / ".state.json").write_text(json.dumps(dict(settings={}, done={}, skipped={})))
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(src), "--dest", str(out_dir / "x"),
                                                "--resolution", "8", "--overwrite"])
    assert res.exit_code == 0, res.output  # a partial run with other options is discarded by --overwrite
    assert VideoFrameDataset(out_dir / "x").video_lengths.tolist() == [1, 3]


@pytest.mark.parametrize("args", [["--source", "MISSING"], []])
def test_from_videos_bad_arguments(tmp_path, args):
    args = [a.replace("MISSING", str(tmp_path / "missing")) for a in args]
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", *args, "--dest", str(tmp_path / "o"),
                                                "--resolution", "8"])
    assert res.exit_code != 0 and ("does not exist" in res.output or "Missing option" in res.output)


def test_from_videos_empty_source(tmp_path):
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", "--source", str(tmp_path / "empty"),
                                                "--dest", str(tmp_path / "o"), "--resolution", "8"])
    assert res.exit_code != 0 and "no video files" in res.output
