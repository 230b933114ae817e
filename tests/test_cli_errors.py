"""Failures through the real commands (subprocesses): one `Error:` line naming the file or rank and no traceback,
nothing already written lost; `--resume latest` past a torn snapshot; a dead rank stops the whole run."""

import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import train_stylegan
from dnnlib.errors import user_message
from training import training_loop

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--cfg", "tiny", "--batch", "4", "--batch-gpu", "2", "--tick", "0.008", "--workers", "0"]


# Run a command of the repository; `env` replaces the environment (default: ours without STYLEINV_DEBUG).
def _cli(script: str, args: list[str], env: dict | None = None, preexec_fn=None) -> subprocess.CompletedProcess:
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "STYLEINV_DEBUG"}
    env = dict(env, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=preexec_fn)


# The one "Error: ..." line of a failed command; asserts the exit status and that no traceback was printed.
def _error_line(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, out
    return errors[0]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_dirs(outdir: Path) -> list[Path]:
    return sorted(p for p in outdir.iterdir() if p.is_dir()) if outdir.is_dir() else []


# A copy of the session's sprites (8 videos x 40 frames, 16 px) to break.
@pytest.fixture
def sprites_copy(sprites_dir, tmp_path) -> Path:
    return Path(shutil.copytree(sprites_dir, tmp_path / "sprites"))


def test_user_errors_and_bugs_are_told_apart(tmp_path):
    def caught(fn):
        try:
            fn()
        except Exception as e:
            return e
        raise AssertionError("no exception")

    from training.presets import stylegan2_preset
    assert user_message(caught(lambda: stylegan2_preset("nope"))).startswith("Unknown StyleGAN2 preset 'nope'")
    assert user_message(caught(lambda: training_loop._set_rng_state({}))) is None  # implicit KeyError: a bug
    assert user_message(caught(lambda: np.zeros(3) + np.zeros(4))) is None  # numpy's ValueError: a bug
    assert user_message(caught(lambda: open(tmp_path / "missing.txt"))) == \
        f"No such file or directory: '{tmp_path / 'missing.txt'}'"
    assert user_message(OSError(errno.ENOSPC, "No space left on device")) == "No space left on device"
    assert user_message(RuntimeError("boom")) is None

    # A dataset error inside a DataLoader worker comes back without the worker's traceback.
    from training.dataset import open_dataset
    root = tmp_path / "data" / "video"
    root.mkdir(parents=True)
    PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "000.png")
    (root / "001.png").write_bytes(b"not a png")
    loader = torch.utils.data.DataLoader(open_dataset(str(tmp_path / "data")), batch_size=2, num_workers=1)
    message = user_message(caught(lambda: next(iter(loader))))
    assert message.startswith(f"{root / '001.png'}: unreadable or truncated image") and "Traceback" not in message


# Stage-1 data problems: a corrupt first frame and an empty dataset fail before a run folder is made; a frame of
# another size fails at the first batch.
@pytest.mark.parametrize("case", ["corrupt", "empty", "size"])
def test_bad_dataset_is_one_error_line(sprites_copy, tmp_path, case):
    if case == "corrupt":
        bad = sprites_copy / "video_00000" / "000000.png"
        bad.write_bytes(bad.read_bytes()[:40])
        expected = f"Error: {bad}: unreadable image"
    elif case == "empty":
        for png in sprites_copy.rglob("*.png"):
            png.unlink()
        expected = f"Error: {sprites_copy}: empty dataset, no image files"
    else:
        for video in sorted(sprites_copy.glob("video_*"))[1:]:
            shutil.rmtree(video)
        frames = sorted((sprites_copy / "video_00000").glob("*.png"))
        for frame in frames[2:]:
            frame.unlink()
        PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames[1])
        expected = f"Error: {frames[1]}: frame size 8x8 differs from the first frame of its video (16x16"
    proc = _cli("train_stylegan.py", ["--data", str(sprites_copy), "--outdir", str(tmp_path / "runs"),
                                      "--kimg", "0.008", *TINY])
    assert _error_line(proc).startswith(expected)
    assert len(_run_dirs(tmp_path / "runs")) == (1 if case == "size" else 0)


# Break a copy of a sprites dataset: "corrupt" truncates every frame of the first video, "size" makes the frames
# after the first of the first video and all of the last video 8x8, "empty" deletes every frame.
def _broken_copy(source: Path, dest: Path, case: str) -> Path:
    data = Path(shutil.copytree(source, dest))
    videos = sorted(data.glob("video_*"))
    if case == "corrupt":
        for png in videos[0].glob("*.png"):
            png.write_bytes(png.read_bytes()[:40])
    elif case == "size":
        for png in sorted(videos[0].glob("*.png"))[1:] + sorted(videos[-1].glob("*.png")):
            PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    else:
        for png in data.rglob("*.png"):
            png.unlink()
    return data


# The stage-2, stage-3 and metric commands on the same broken data: one line naming the dataset's file (for a frame
# of another size in the encoder's held-out video too), nothing written for a first frame PIL cannot read.
@pytest.mark.parametrize("command", ["train_encoder.py", "train_styleinv.py", "calc_metrics.py"])
@pytest.mark.parametrize("case", ["corrupt", "size", "empty"])
def test_bad_dataset_in_every_command(sprites_dir, sprites32_dir, stage1_checkpoint, stage2_checkpoint, tmp_path,
                                      command, case):
    runs = tmp_path / "runs"
    if command == "train_encoder.py":
        data = _broken_copy(sprites_dir, tmp_path / "data", case)
        args = ["--generator", str(stage1_checkpoint), "--encoder", "tiny", "--lpips-weight", "0", "--id-weight",
                "0", "--batch", "4", "--batch-gpu", "4", "--optimizer", "adam", "--holdout", "1", "--kimg", "0.008",
                "--tick", "0.004"]
    elif command == "train_styleinv.py":
        data = _broken_copy(sprites32_dir, tmp_path / "data", case)
        args = ["--cfg", "configs/tiny.yaml", "--checkpoint", str(stage2_checkpoint), "--kimg", "0.008"]
    else:
        data = _broken_copy(sprites_dir, tmp_path / "data", case)
        detectors = tmp_path / "detectors"
        detectors.mkdir()
        from metrics.detectors import random_detector_state_dict
        torch.save(random_detector_state_dict("i3d", seed=1), detectors / "i3d_torchscript.pt")
        args = ["--fake-data", str(sprites_dir), "--metrics", "fvd3_9f", "--detector-dir", str(detectors), "--device",
                "cpu", "--no-progress", "--i3d-preprocess", "none", "--cache-dir", str(tmp_path / "cache"),
                "--protocol", "stylegan-v"]  # its real clips are the first videos in order, so the broken one is read
    args += ["--data", str(data), "--run-dir" if command == "calc_metrics.py" else "--outdir", str(runs),
             "--workers", "0"]
    line = _error_line(_cli(command, args))
    videos = sorted(data.glob("video_*"))
    if case == "corrupt":
        assert line.startswith(f"Error: {videos[0]}{os.sep}") and "unreadable" in line, line
    elif case == "empty":
        empty = f"'{data}' holds no frame folders" if command == "calc_metrics.py" else f"{data}: empty dataset"
        assert line.startswith(f"Error: {empty}"), line
    elif command == "calc_metrics.py":
        assert line.startswith("Error: Video '") and f"in '{data}' has frames of shape (3, " in line, line
        assert "(3, 8, 8)" in line and "(3, 16, 16)" in line, line
        assert line.endswith("pass --resolution N to resize them"), line
    else:
        assert line.startswith(f"Error: {data}{os.sep}video_") and "8x8" in line, line
        assert "scripts/dataset_tool.py from-videos --resolution N" in line, line
    if command == "train_encoder.py" and case == "size":  # found in the held-out video, before any training
        assert line.startswith(f"Error: {videos[-1]}{os.sep}") and "the dataset is 16x16" in line, line
    if case != "size":
        assert not runs.exists() or not any(runs.iterdir())


def test_debug_variable_shows_the_traceback(sprites_copy, tmp_path):
    for png in sprites_copy.rglob("*.png"):
        png.unlink()
    proc = _cli("train_stylegan.py", ["--data", str(sprites_copy), "--outdir", str(tmp_path / "runs"), *TINY],
                env=dict(os.environ, STYLEINV_DEBUG="1"))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "training.dataset.DatasetError: " in proc.stderr and "empty dataset" in proc.stderr


def test_calc_metrics_without_detector_files(tmp_path):
    from tests.metrics.test_protocols import make_video_folder
    real = make_video_folder(tmp_path / "real", [10, 12, 11], size=16)
    fake = make_video_folder(tmp_path / "fake", [10, 10, 10], size=16)
    env = {k: v for k, v in os.environ.items() if not k.endswith(("DETECTOR_DIR", "CACHE_DIR", "CACHE_HOME"))
           and k not in ("TORCH_HOME", "STYLEINV_DEBUG")}
    line = _error_line(_cli("calc_metrics.py", ["--data", str(real), "--fake-data", str(fake), "--metrics", "fvd3_9f",
                                                "--device", "cpu", "--workers", "0", "--no-progress", "--cache-dir",
                                                str(tmp_path / "cache"), "--run-dir", str(tmp_path / "run")],
                            env=dict(env, HOME=str(tmp_path / "home"))))
    assert line.startswith("Error: No weight file for detector 'i3d'") and "i3d_torchscript.pt" in line


def test_resume_latest_passes_over_a_torn_snapshot(sprites_copy, tmp_path):
    (sprites_copy / "video_broken").mkdir()  # a failed extraction: named in a warning, not used
    outdir = tmp_path / "runs"
    args = ["--data", str(sprites_copy), "--outdir", str(outdir), "--kimg", "1", "--snap", "1", *TINY]
    result = CliRunner().invoke(train_stylegan.main, args + ["--max-ticks", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_dir, = _run_dirs(outdir)
    newest, older = training_loop.snapshots(run_dir)[:2]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a copy cut short
    torn = _sha(newest)

    # An explicit path that does not load is an error; no run folder is made, the file is left as it is.
    line = _error_line(_cli("train_stylegan.py", args + ["--resume", str(newest)]))
    assert line.startswith(f"Error: --resume {newest}: cannot resume from this file: Checkpoint '{newest}' is "
                           "truncated or corrupted")
    assert _run_dirs(outdir) == [run_dir] and _sha(newest) == torn

    proc = _cli("train_stylegan.py", args + ["--resume", "latest", "--max-ticks", "1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Warning: --resume latest: skipping {newest}: Checkpoint '{newest}' is truncated" in proc.stderr
    assert "Warning: sprites: 1 of 9 videos skipped: 1 empty folder(s) without frames (video_broken)" in proc.stderr
    assert f"Resumed from {older}" in proc.stdout
    assert "Dataset: sprites, 8 videos used (1 skipped)" in (run_dir / "log.txt").read_text()


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_failed_snapshot_write_keeps_earlier_snapshots(sprites_dir, tmp_path):
    outdir = tmp_path / "runs"
    args = ["--data", str(sprites_dir), "--outdir", str(outdir), "--kimg", "1", "--snap", "1", *TINY]
    result = CliRunner().invoke(train_stylegan.main, args + ["--max-ticks", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_dir, = _run_dirs(outdir)
    snap, = training_loop.snapshots(run_dir)
    before = {p.name: _sha(p) for p in run_dir.iterdir() if p.suffix in (".pt", ".png", ".json")}

    # Files may not grow past half a snapshot: the next snapshot cannot be written (EFBIG, like a full disk).
    proc = _cli("train_stylegan.py", args + ["--resume", "latest", "--max-ticks", "1"],
                preexec_fn=_limit_file_size(snap.stat().st_size // 2))
    line = _error_line(proc)
    assert line.startswith(f"Error: Could not write the snapshot {run_dir}/network-snapshot-") and \
        "(File too large). The earlier snapshots" in line
    assert training_loop.snapshots(run_dir) == [snap] and training_loop.snapshot_problem(snap) is None
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    for name, digest in before.items():
        if name != "training_options.json":  # rewritten by the resumed run
            assert _sha(run_dir / name) == digest, name


def test_styleinv_skips_short_videos_and_rejects_a_stage1_checkpoint(sprites32_dir, stage1_checkpoint, tmp_path):
    data = Path(shutil.copytree(sprites32_dir, tmp_path / "clips"))
    for name in ("short_a", "short_b"):
        shutil.copytree(data / "video_00000", data / name)
        for frame in sorted((data / name).glob("*.png"))[10:]:
            frame.unlink()
    (data / "broken").mkdir()
    args = ["--cfg", "configs/tiny.yaml", "--data", str(data), "--checkpoint", str(stage1_checkpoint), "--outdir",
            str(tmp_path / "runs"), "--workers", "0"]
    proc = _cli("train_styleinv.py", args)
    assert ("Warning: clips: 3 of 9 videos skipped: 1 empty folder(s) without frames (broken); 2 shorter than 32 "
            "frames (clips of window max_num_frames=32, max_dist=16): short_a (10), short_b (10)") in proc.stderr
    assert _error_line(proc).startswith(f"Error: --checkpoint {stage1_checkpoint}: expected a stage-2 snapshot")

    for video in data.glob("video_*"):
        shutil.rmtree(video)
    line = _error_line(_cli("train_styleinv.py", args))
    assert line.startswith(f"Error: {data}: no usable video, all 3 skipped")


# Two gloo ranks on CPU: a wrong-architecture snapshot fails in both children and is reported once by the parent.
@pytest.mark.slow
def test_child_user_error_is_reported_once(sprites_dir, tmp_path):
    outdir = tmp_path / "runs"
    result = CliRunner().invoke(train_stylegan.main, ["--data", str(sprites_dir), "--outdir", str(outdir), "--kimg",
                                                      "1", *TINY, "--max-ticks", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    snap, = training_loop.snapshots(_run_dirs(outdir)[0])
    args = ["--data", str(sprites_dir), "--outdir", str(outdir), "--gpus", "2", "--cfg", "small", "--batch", "4",
            "--batch-gpu", "2", "--workers", "0", "--resume", str(snap)]
    line = _error_line(_cli("train_stylegan.py", args))
    assert line.startswith(f"Error: --resume {snap}: network 'G' does not match the one built from these options; "
                           "resume with the options of the run that wrote it (Error(s) in loading state_dict")


# SIGKILL one of two gloo ranks mid-training: the parent names it and exits within 60 s, and no rank is left.
@pytest.mark.slow
def test_dead_rank_stops_the_run(sprites_dir, tmp_path):
    log = tmp_path / "out.txt"
    cmd = [sys.executable, "train_stylegan.py", "--data", str(sprites_dir), "--outdir", str(tmp_path / "runs"),
           "--gpus", "2", "--kimg", "100", "--snap", "1000", *TINY]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and "tick 1 " not in log.read_text():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        text = log.read_text()
        started, = [line for line in text.splitlines() if line.startswith("Started 2 processes (gloo)")]
        pids = [int(part.split()[-1]) for part in started.split(": ", 1)[1].split(", ")]
        os.kill(pids[1], signal.SIGKILL)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
            pytest.fail(f"the launcher still runs 60 s after rank 1 was killed (ranks alive: {alive}):\n"
                        + log.read_text()[-3000:])
    finally:
        proc.kill()
    out = log.read_text()
    assert proc.returncode == 1 and "Traceback" not in out, out
    line, = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert line.startswith(f"Error: The process of rank 1 (pid {pids[1]}) was killed by signal SIGKILL"), out
    assert line.endswith(f"The snapshots in {_run_dirs(tmp_path / 'runs')[0]} are intact: continue with --resume "
                         "latest."), out
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"rank process {pid} is still there"
