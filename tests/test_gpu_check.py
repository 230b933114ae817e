"""scripts/gpu_check.py: the CPU run (every GPU check skipped with its reason, every CPU check passing), the
distributed timeout, the report files, user errors, and the arithmetic of the error and memory checks."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
GPU_ONLY = {"ops: CUDA kernels built", "ops: kernels vs reference", "mixed precision G/D", "stage-3 memory per video"}
CPU_CHECKS = {"environment", "stage-1 step", "stage-2 step", "stage-3 step", "generation", "detectors",
              "2-process all-reduce", "2-process stage-1 step"}


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _run(args, timeout=600, env=None):
    env = dict(os.environ if env is None else env)
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU run")
def test_cpu_run_skips_gpu_checks_and_passes_the_rest(tmp_path):
    proc = _run(["--outdir", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert set(status) == GPU_ONLY | CPU_CHECKS, status
    assert all(status[n] == "skipped" for n in GPU_ONLY), status
    assert all(status[n] == "pass" for n in CPU_CHECKS), status
    for c in report["checks"]:
        assert c["detail"].strip(), c  # a skipped check says why
    assert report["complete"] and report["counts"] == {"pass": 8, "fail": 0, "skipped": 4}
    by_name = {c["name"]: c for c in report["checks"]}
    # The reference ops agree with float64 to fp32 precision; the fp16-layer networks equal fp32 exactly on CPU.
    assert by_name["ops: kernels vs reference"]["data"]["worst_reference_fp32"] < 1e-5
    assert all(v == 0 for v in by_name["mixed precision G/D"]["data"]["errors"].values())
    ranks = by_name["2-process stage-1 step"]["data"]["ranks"]
    assert len(ranks) == 2 and ranks[0]["digests"] == ranks[1]["digests"]
    assert by_name["2-process all-reduce"]["data"]["backend"] == "gloo"
    assert [row[0] for row in by_name["stage-3 step"]["table"][1:]] == [1, 2, 2]
    assert [row[1] for row in by_name["stage-3 step"]["table"][1:]] == [16, 16, 2048]
    markdown = (tmp_path / "gpu_check.md").read_text()
    for name in status:
        assert f"| {name} |" in markdown
    assert "8 passed, 0 failed, 4 skipped" in proc.stdout


# A hanging 2-process run is killed at --distributed-timeout: the check fails, the others still report, exit code 1.
def test_distributed_timeout_kills_and_fails(tmp_path):
    proc = _run(["--outdir", str(tmp_path), "--checks", "distributed", "--distributed-timeout", "1"], timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["2-process all-reduce", "2-process stage-1 step"]
    assert all("did not finish within 1 s" in c["detail"] for c in failed)
    assert report["counts"] == {"pass": 1, "fail": 2, "skipped": 0}  # the environment still passed
    assert "| 2-process all-reduce | FAIL |" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.parametrize("args, env, message", [
    (["--checks", "ops,bogus"], {}, "unknown group bogus"),
    ([], {"STYLEINV_OPS": "fast"}, "STYLEINV_OPS='fast' is not valid"),
    (["--update-docs"], {}, "--update-docs records GPU figures"),
])
def test_user_errors_are_one_line(tmp_path, monkeypatch, args, env, message):
    if torch.cuda.is_available() and args == ["--update-docs"]:
        pytest.skip("the CPU-only refusal")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(gpu_check.main, ["--outdir", str(tmp_path / "out"), *args])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "Error: " in result.output and message in result.output, result.output
    assert not (tmp_path / "out" / "gpu_check.json").exists()


def test_relative_errors():
    b = torch.tensor([3.0, -4.0])
    assert gpu_check.max_rel_err(b + torch.tensor([0.0, 0.4]), b) == pytest.approx(0.1)
    assert gpu_check.l2_rel_err(b + torch.tensor([0.3, 0.4]), b) == pytest.approx(0.1)


# Memory per video, its marginal cost and the max_dist flatness verdict, from hand-made peaks.
def test_stage3_memory_verdicts(tmp_path):
    ctx = gpu_check.Context(torch.device("cuda"), dict(gpu_check.SHAPES["full"], name="full"), tmp_path)
    steps = {1: dict(peak_gb=3.0), 2: dict(peak_gb=4.5), 4: dict(peak_gb=7.5)}
    flat = gpu_check.stage3_memory(ctx, steps, dict(peak_gb=4.52), 2, 32)
    assert flat.status == "pass" and flat.data["flat"]
    assert flat.data["per_video_gb"] == {"1": 3.0, "2": 2.25, "4": 1.875}
    assert flat.data["marginal_gb_per_video"] == pytest.approx(1.5)
    assert flat.data["goal_met"] and "2.0 GB met" in flat.detail  # the goal is read at the largest batch
    grows = gpu_check.stage3_memory(ctx, {**steps, 4: dict(peak_gb=9.0)}, dict(peak_gb=5.0), 2, 32)
    assert grows.status == "fail" and "NOT flat" in grows.detail  # +0.5 GB is over 5 % of 4.5 GB and 64 MiB
    assert not grows.data["goal_met"] and "NOT met" in grows.detail


def test_docs_section_is_replaced_between_markers(tmp_path):
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text(f"# Perf\nbefore\n{gpu_check.DOC_BEGIN}\nNot yet measured.\n{gpu_check.DOC_END}\nafter\n")
    report = gpu_check.build_report([gpu_check.Result("environment", "pass", "torch x", {"torch": "x"})], "full",
                                    {"torch": "x", "gpus": [{"name": "Fake GPU"}]}, done=True)
    gpu_check.fill_docs_section(doc, report)
    text = doc.read_text()
    assert text.startswith("# Perf\nbefore\n") and text.endswith(f"{gpu_check.DOC_END}\nafter\n")
    assert "Not yet measured" not in text and "**Fake GPU**" in text and "| environment | pass |" in text
    doc.write_text("no markers\n")
    with pytest.raises(gpu_check.click.ClickException, match="no .*gpu_check:begin"):
        gpu_check.fill_docs_section(doc, report)
    assert doc.read_text() == "no markers\n"


# The CUDA-only branches (kernel columns, fp16 rows, goals), run on CPU tensors: "cuda" mode falls back to the
# reference path there, so the kernels must equal it and every row must be filled in.
def test_cuda_branches_bookkeeping_on_cpu_tensors(tmp_path):
    class PretendCuda(gpu_check.Context):
        cuda = True

        def peak_gb(self):
            return 1.0

        def reset_peak(self):
            pass

    ctx = PretendCuda(torch.device("cpu"), dict(gpu_check.SHAPES["tiny"], name="tiny"), tmp_path)
    compared = gpu_check.compare_kernels(ctx, gpu_check.Result("ops: CUDA kernels built", "pass", ""))
    assert compared.status == "pass", compared.detail
    rows = compared.table[1:]
    assert [r[1] for r in rows] == ["float32"] * 7 + ["float16"] * 7
    assert all(r[2] == r[3] and r[4] == r[5] and r[6] == "yes" for r in rows), rows
    mixed, = gpu_check.mixed_precision(ctx)
    assert mixed.status == "pass" and "no NaN/Inf" in mixed.detail
    generation, = gpu_check.generation(ctx)
    assert [r[0] for r in generation.table[1:]] == ["mixed", "mixed", "fp32", "fp32"]
    # The verdict follows the measured rate (a fast CPU can pass 500 frames/s at the tiny shapes).
    best = float(re.search(r"best ([0-9.]+) frames/s", generation.detail).group(1))
    verdict = "met" if best >= 500 else "not met"
    assert generation.status == "pass" and generation.detail.endswith(f"goal >= 500 on one H100 {verdict}")
