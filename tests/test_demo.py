"""The README's demo pipeline end to end with the smallest profile: dataset -> 3 stages -> videos -> report."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_pipeline_quick_profile(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "scripts/demo.py", "--profile", "quick", "--outdir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["seconds"]) >= {"stage 1", "stage 2", "stage 3", "generation"}
    metrics = report["metrics"]
    assert 0 < metrics["first_frame_psnr_db"] < 100
    assert 0 <= metrics["identity_drift_generated"] <= 1 and 0 <= metrics["identity_drift_real"] <= 1
    # The real clips' motion figures come from the synthetic ground truth: their sprites do travel.
    assert metrics["travel_real_px"] > 2 and metrics["motion_diversity_real_px"] > 2
    assert metrics["travel_generated_px"] >= 0 and metrics["motion_diversity_generated_px"] >= 0
    expected = (metrics["travel_generated_px"] >= 0.6 * metrics["travel_real_px"]
                and metrics["motion_diversity_generated_px"] >= 0.25 * metrics["travel_real_px"])
    assert metrics["moves_like_real"] == expected
    assert report["profile"] == "quick"
    videos = sorted((out / "videos").rglob("*.mp4"))
    assert videos, list((out / "videos").rglob("*"))
    reader = imageio.get_reader(videos[0])
    assert reader.count_frames() >= 40
    strips = [imageio.imread(p) for p in (out / "videos").glob("*.png")]  # 4 videos x every 8th of 40 frames
    assert any(s.shape[:2] == (4 * 32, 5 * 32) for s in strips), [s.shape for s in strips]
    assert "Summary" in proc.stdout and "identity drift" in proc.stdout
    for words in ("travel over 40 frames", "motion diversity", "motion: the generated sprites"):
        assert words in proc.stdout, words


def test_auto_profile_follows_the_device():
    sys.path.insert(0, str(ROOT / "scripts"))
    import demo
    assert demo.resolve_profile("auto", "cuda") == "gpu" and demo.resolve_profile("auto", "cpu") == "cpu"
    assert demo.resolve_profile("quick", "cuda") == "quick"
    cpu, gpu = demo.PROFILES["cpu"], demo.PROFILES["gpu"]
    assert all(gpu[k] > cpu[k] for k in ("stylegan_kimg", "encoder_kimg", "styleinv_kimg"))
    assert {k: v for k, v in gpu.items() if not k.endswith(("_kimg", "_tick", "eval_videos"))} == \
        {k: v for k, v in cpu.items() if not k.endswith(("_kimg", "_tick", "eval_videos"))}  # the same recipe
