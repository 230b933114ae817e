"""Stage 3 through the shared loop (tiny config on the synthetic dataset): losses finite, the first-frame
reconstruction error falls, snapshots hold everything generation needs, resume works, configs validate."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import train_styleinv
from training import checkpoint, training_loop

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--cfg", str(ROOT / "configs" / "tiny.yaml"), "--workers", "0", "--batch", "4", "--batch-gpu", "4"]


def _train(args):
    result = CliRunner().invoke(train_styleinv.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_tiny_styleinv_run_lowers_first_frame_error(sprites32_dir, stage2_checkpoint, tmp_path):
    _train(["--data", str(sprites32_dir), "--checkpoint", str(stage2_checkpoint), "--outdir", str(tmp_path),
            "--kimg", "0.96", "--tick", "0.16", "--snap", "100", "--train.lr_motion=0.003", *ARGS])
    run_dir, = [p for p in tmp_path.iterdir() if p.is_dir()]
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    recon = [line["Loss/SI/first_frame_recon"]["mean"] for line in lines]
    assert all(torch.isfinite(torch.tensor([line[k]["mean"] for k in ("Loss/SI/loss", "Loss/D/loss")])).all()
               for line in lines)
    assert max(recon[-2:]) < 0.6 * recon[0], recon
    snap = training_loop.latest_snapshot(run_dir)
    nets = checkpoint.load_networks(snap)
    assert set(nets) >= {"G", "encoder", "D", "motion_generator", "motion_generator_ema"}
    G0 = checkpoint.load_networks(stage2_checkpoint)["G"].state_dict()
    for k, v in nets["G"].state_dict().items():
        assert torch.equal(v, G0[k]), k
    assert (run_dir / "reals.png").is_file() and list(run_dir.glob("fakes*.png"))

    result = _train(["--data", str(sprites32_dir), "--checkpoint", str(stage2_checkpoint), "--outdir",
                     str(tmp_path), "--kimg", "1.04", "--tick", "0.08", "--resume", "latest",
                     "--train.lr_motion=0.003", *ARGS])
    assert "Resumed from" in result.output
    assert checkpoint.load_training_state(training_loop.latest_snapshot(run_dir))["cur_nimg"] >= 1040


def test_config_overrides_are_validated(tmp_path):
    cfg = train_styleinv.load_config(str(ROOT / "configs" / "tiny.yaml"), ["--loss.lambda_reg=0",
                                                                          "--model.skip_encoder=true"])
    assert cfg["loss"]["lambda_reg"] == 0 and cfg["model"]["skip_encoder"] is True
    import click
    with pytest.raises(click.ClickException, match="lambda_rg"):
        train_styleinv.load_config(str(ROOT / "configs" / "tiny.yaml"), ["--loss.lambda_rg=0"])
    with pytest.raises(click.ClickException, match="'train.batch' is 4 .* must be of type int, not 'abc'"):
        train_styleinv.load_config(str(ROOT / "configs" / "tiny.yaml"), ["--train.batch=abc"])
    assert train_styleinv.load_config(str(ROOT / "configs" / "tiny.yaml"), ["--loss.lambda_reg=1"])["loss"][
        "lambda_reg"] == 1  # an int for a float is fine
    partial = tmp_path / "partial.yaml"
    partial.write_text((ROOT / "configs" / "tiny.yaml").read_text().replace("  snap: 5\n", "").replace("fuse:", "x:"))
    with pytest.raises(click.ClickException, match=r"partial.yaml: missing fuse, train.snap \(see configs/tiny"):
        train_styleinv.load_config(str(partial), [])


def test_paper_configs_differ_where_the_release_does():
    cfgs = {name: train_styleinv.load_config(str(ROOT / "configs" / f"{name}.yaml"), [])
            for name in ("deeperforensics", "faceforensics", "skytimelapse", "taichi")}
    assert cfgs["taichi"]["loss"]["lambda_adv"] == 0.1 and cfgs["taichi"]["loss"]["lambda_reg"] == 0
    assert cfgs["faceforensics"]["train"]["aug"] == "noaug"
    assert cfgs["skytimelapse"]["loss"]["noise_mode"] == "none"
    assert {c["motion"]["motion_z_distance"] for c in cfgs.values()} == {16, 128}


def test_wrong_stage_checkpoint_is_rejected(sprites32_dir, stage1_checkpoint, tmp_path):
    result = CliRunner().invoke(train_styleinv.main, ["--data", str(sprites32_dir), "--checkpoint",
                                                      str(stage1_checkpoint), "--outdir", str(tmp_path), *ARGS])
    assert result.exit_code != 0
    assert "stage-2 snapshot" in str(result.exception) or "stage-2 snapshot" in result.output


def test_grouped_minibatches_pair_one_content_with_one_w0(stage2_checkpoint, tmp_path):
    from torch_utils.training_stats import Stats
    from training.dataset import open_dataset
    from training.loss_styleinv import build_styleinv_stage, config_stage_kwargs
    from training.sprites import write_synthetic_dataset
    data = write_synthetic_dataset(tmp_path / "grouped", num_videos=4, num_frames=32, resolution=32, seed=2,
                                   motion="straight", videos_per_content=2)
    cfg = train_styleinv.load_config(str(ROOT / "configs" / "tiny.yaml"), [])
    cfg["data"]["videos_per_content"] = 2
    dataset = open_dataset(data, kind="clips", max_num_frames=32, max_dist=16)
    stage = build_styleinv_stage(device=torch.device("cpu"), stats=Stats(torch.device("cpu")), dataset=dataset,
                                 **config_stage_kwargs(cfg, str(stage2_checkpoint)))
    assert stage.batch_group == 2
    torch.manual_seed(0)
    w0, t, _, w_t, _ = stage.loss.sample_fake(4, torch.device("cpu"))
    assert torch.equal(w0[0], w0[1]) and torch.equal(w0[2], w0[3]) and not torch.equal(w0[0], w0[2])
    assert not torch.allclose(w_t[0, 1:], w_t[1, 1:])  # one w0, two motions
    frames, _ = next(training_loop._infinite_batches(dataset, 4, 0, 0, torch.device("cpu"), stage.batch_group))
    assert torch.equal(frames[0, 0], frames[1, 0]) and torch.equal(frames[2, 0], frames[3, 0])  # one first frame
    assert not torch.equal(frames[0, 0], frames[2, 0])

    odd = open_dataset(write_synthetic_dataset(tmp_path / "odd", num_videos=3, num_frames=32, resolution=32),
                       kind="clips", max_num_frames=32, max_dist=16)
    with pytest.raises(ValueError, match="videos_per_content = 2"):
        build_styleinv_stage(device=torch.device("cpu"), stats=Stats(torch.device("cpu")), dataset=odd,
                             **config_stage_kwargs(cfg, str(stage2_checkpoint)))


# Dmain does not synthesise the fake frame 0 that x0 replaces in D's input: its fakes equal the full clip's with
# x0 as frame 0 (same latents, times and motion), and D gets exactly that clip.
def test_dmain_fakes_have_x0_as_frame_0(sprites32_dir, stage2_checkpoint):
    from torch_utils.training_stats import Stats
    from training.dataset import open_dataset
    from training.loss_styleinv import build_styleinv_stage, config_stage_kwargs
    cfg = train_styleinv.load_config(str(ROOT / "configs" / "tiny.yaml"), [])
    dataset = open_dataset(str(sprites32_dir), kind="clips", max_num_frames=32, max_dist=16)
    loss = build_styleinv_stage(device=torch.device("cpu"), stats=Stats(torch.device("cpu")), dataset=dataset,
                                **config_stage_kwargs(cfg, str(stage2_checkpoint))).loss
    fakes = []
    for first_frame in (True, False):
        torch.manual_seed(3)
        loss.rng = np.random.default_rng(3)
        with torch.no_grad():
            fakes.append(loss.sample_fake(3, torch.device("cpu"), first_frame=first_frame))
    (w0, t, x0, w_t, full), (w0_d, t_d, x0_d, w_t_d, dmain) = fakes
    assert torch.equal(t, t_d) and torch.equal(w0, w0_d) and torch.allclose(w_t, w_t_d, atol=1e-6)
    assert not torch.allclose(full[:, 0], x0, atol=1e-3)  # G(w_t0) is not x0, so the check below can fail
    torch.testing.assert_close(dmain, torch.cat([x0.unsqueeze(1), full[:, 1:]], dim=1), rtol=1e-5, atol=1e-5)
