"""End-to-end tests of calc_metrics.py with random-weight detector files passed by path."""

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import calc_metrics
from metrics.detectors import load_detector_cached, random_detector_state_dict, sha256_file
from tests.metrics.test_metric_main import synthetic_fake_clips
from tests.metrics.test_protocols import make_video_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("detectors")
    torch.save(random_detector_state_dict("i3d", seed=1), d / "i3d_torchscript.pt")
    return d


@pytest.fixture(autouse=True)
def fresh_detector_cache():
    load_detector_cached.cache_clear()  # So that each test sees the checksum warning once.
    yield
    load_detector_cached.cache_clear()


def _run(args: list[str]):
    result = CliRunner().invoke(calc_metrics.main, args, catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, lines


def _folder_args(tmp_path, detector_dir, metrics):
    real = make_video_folder(tmp_path / "real", [10, 12, 11], size=16)
    fake = make_video_folder(tmp_path / "fake", [10, 8, 9, 10], size=16)
    return ["--data", str(real), "--fake-data", str(fake), "--detector-dir", str(detector_dir), "--metrics", metrics,
            "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--workers", "0", "--no-progress",
            "--i3d-preprocess", "none", "--run-dir", str(tmp_path / "run")]


def test_fvd_folder_mode_end_to_end_and_cache(tmp_path, detector_dir):
    args = _folder_args(tmp_path, detector_dir, "fvd3_9f")
    with pytest.warns(UserWarning, match="not the published"):
        result, (fvd,) = _run(args)
    assert result.exit_code == 0, result.output
    assert fvd["metric"] == "fvd3_9f" and np.isfinite(fvd["results"]["fvd3_9f"]) and fvd["results"]["fvd3_9f"] > 0
    assert fvd["detector"]["sha256"] == sha256_file(detector_dir / "i3d_torchscript.pt")
    assert fvd["detector"]["layout"] == "i3dpt" and fvd["detector"]["published"] is False
    assert (fvd["num_real"], fvd["num_fake"]) == (3, 3) and fvd["real_stats_cache"] == "miss"  # 8-frame fake dropped.
    assert json.loads((tmp_path / "run" / "metric-fvd3_9f.jsonl").read_text())["results"] == fvd["results"]
    # The line says what defines the number (issue 17, item 3).
    assert fvd["protocol"]["name"] == "styleinv" and fvd["protocol"]["version"] == fvd["protocol_version"]
    assert fvd["detector"]["file"] == "i3d_torchscript.pt" and fvd["preprocess"]["detector"] == "none"
    assert fvd["covariance"] == "biased" and (fvd["num_frames"], fvd["stride"], fvd["seed"]) == (9, 1, 1141514)
    assert fvd["precision"] == dict(dtype="float32", allow_tf32=False, device="cpu", torch=torch.__version__)
    assert len(fvd["real_fingerprint"]) == 64
    # Second invocation: the real statistics come from the cache; two fake seeds report mean and std (ddof=0).
    _, (again,) = _run(args + ["--num-runs", "2"])
    runs = again["runs"]
    assert runs[0] == pytest.approx(fvd["results"]["fvd3_9f"], rel=1e-6) and again["real_stats_cache"] == "hit"
    assert again["results"]["fvd3_9f_std"] == pytest.approx(abs(runs[0] - runs[1]) / 2)
    assert again["fake_seeds"] == [1141514, 1141515]
    assert len((tmp_path / "run" / "metric-fvd3_9f.jsonl").read_text().splitlines()) == 2
    # StyleGAN-V protocol: n*s = 10 frames needed, so the 8- and 9-frame fakes are dropped; its seed is 0.
    _, (sgv,) = _run(_folder_args(tmp_path / "b", detector_dir, "fvd3_10f") + ["--protocol", "stylegan-v"])
    assert sgv["protocol"]["name"] == "stylegan-v" and (sgv["num_real"], sgv["num_fake"], sgv["seed"]) == (3, 2, 0)


@pytest.mark.slow  # Real-size Inception on CPU and a 2048-d Fréchet distance (~10 s on an idle 2-core machine).
def test_fid_folder_mode_end_to_end(tmp_path):
    torch.save(random_detector_state_dict("inception", seed=0), tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    with pytest.warns(UserWarning, match="not the published"):
        result, (fid,) = _run(_folder_args(tmp_path, tmp_path, "fid2"))
    assert result.exit_code == 0, result.output
    assert np.isfinite(fid["results"]["fid2"]) and (fid["num_real"], fid["num_fake"]) == (2, 2)
    assert fid["detector"]["preprocess"] == "nvidia_tf1" and fid["detector"]["layout"] == "pytorch_fid"


def test_network_mode_uses_video_source_from_checkpoint(tmp_path, detector_dir, monkeypatch):
    real = make_video_folder(tmp_path / "real", [10, 12], size=16)
    ckpt = tmp_path / "run" / "ckpt.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"")
    fake_clips, calls = synthetic_fake_clips(size=16)
    module = types.ModuleType("training.video_generation")
    module.video_source_from_checkpoint = lambda path, device: fake_clips
    monkeypatch.setitem(sys.modules, "training.video_generation", module)
    with pytest.warns(UserWarning):
        result, (line,) = _run(["--network", str(ckpt), "--data", str(real), "--metrics", "fvd2_9f",
                                "--detector-dir", str(detector_dir), "--no-cache", "--device", "cpu",
                                "--workers", "0", "--no-progress", "--i3d-preprocess", "none", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert calls == [(2, 9, 5, 4)] and line["fake"] == "generator" and line["snapshot"] == str(ckpt)
    assert line["real_stats_cache"] == "off"
    assert (ckpt.parent / "metric-fvd2_9f.jsonl").is_file()


def test_network_mode_without_generation_code_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "training.video_generation", None)
    monkeypatch.setitem(sys.modules, "generate", None)
    result = CliRunner().invoke(calc_metrics.main, ["--network", "x.pt", "--data", str(tmp_path), "--device", "cpu"])
    assert result.exit_code != 0 and "video_source_from_checkpoint" in result.output
    result = CliRunner().invoke(calc_metrics.main, ["--data", str(tmp_path)])
    assert result.exit_code != 0 and "exactly one of --network and --fake-data" in result.output


def test_script_runs_from_repo_root():
    out = subprocess.run([sys.executable, "calc_metrics.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--fake-data" in out.stdout
    assert "--protocol [styleinv|stylegan-v]" in out.stdout and "fvd2048_16f_videomae" in out.stdout
