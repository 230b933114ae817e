"""Stage 2 through the shared loop: the encoder learns to reconstruct, G stays frozen, resume works."""

import json

import torch
from click.testing import CliRunner

import train_encoder
from training import checkpoint, training_loop

ARGS = ["--encoder", "tiny", "--lpips-weight", "0", "--id-weight", "0", "--batch", "8", "--batch-gpu", "8",
        "--workers", "0", "--optimizer", "adam", "--lr", "0.002", "--holdout", "2"]


def _train(args):
    result = CliRunner().invoke(train_encoder.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_encoder_lowers_reconstruction_error_and_keeps_g_frozen(sprites_dir, stage1_checkpoint, tmp_path):
    _train(["--data", str(sprites_dir), "--generator", str(stage1_checkpoint), "--outdir", str(tmp_path),
            "--kimg", "0.48", "--tick", "0.08", *ARGS])
    run_dir, = [p for p in tmp_path.iterdir() if p.is_dir()]
    l2 = [json.loads(line)["Loss/E/l2"]["mean"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert l2[-1] < 0.7 * l2[0], l2
    evals = [json.loads(line) for line in (run_dir / "metric-reconstruction.jsonl").read_text().splitlines()]
    assert len(evals) >= 1 and "psnr" in evals[-1]["results"]
    assert evals[-1]["results"]["psnr"] > evals[-1]["results"]["psnr_w_avg"]
    snap = training_loop.latest_snapshot(run_dir)
    nets = checkpoint.load_networks(snap)
    G0 = checkpoint.load_networks(stage1_checkpoint)["G_ema"].state_dict()
    for k, v in nets["G"].state_dict().items():
        assert torch.equal(v, G0[k]), k
    assert (run_dir / f"reconstructions{snap.stem[len('network-snapshot-'):]}.png").is_file() or \
        list(run_dir.glob("reconstructions*.png"))

    result = _train(["--data", str(sprites_dir), "--generator", str(stage1_checkpoint), "--outdir", str(tmp_path),
                     "--kimg", "0.56", "--tick", "0.08", "--resume", "latest", *ARGS])
    assert "Resumed from" in result.output
    assert checkpoint.load_training_state(training_loop.latest_snapshot(run_dir))["cur_nimg"] == 560
