"""End-to-end tests of the shared training loop through `train_stylegan.py` (tiny configs, CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import train_stylegan
from training import checkpoint, training_loop

ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--cfg", "tiny", "--batch", "4", "--batch-gpu", "2", "--tick", "0.008", "--workers", "0"]


def _train(args: list[str]):
    result = CliRunner().invoke(train_stylegan.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _run_dirs(outdir: Path) -> list[Path]:
    return sorted(p for p in outdir.iterdir() if p.is_dir())


def test_short_run_writes_stats_grids_and_snapshots(sprites_dir, tmp_path):
    _train(["--data", str(sprites_dir), "--outdir", str(tmp_path), "--kimg", "0.024", "--snap", "1", *TINY_ARGS])
    run_dir, = _run_dirs(tmp_path)
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert len(lines) == 4  # ticks after the first step (4 images), then at 12, 20 and 24 (done) images
    for key in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty", "Timing/sec_per_kimg"):
        assert key in lines[0], key
    assert all(torch.isfinite(torch.tensor(line["Loss/G/loss"]["mean"])) for line in lines)
    snaps = sorted(run_dir.glob("network-snapshot-*.pt"))
    assert len(snaps) >= 2
    assert (run_dir / "reals.png").is_file() and (run_dir / "fakes_init.png").is_file()
    assert list(run_dir.glob("fakes0000*.png"))
    log_lines = (run_dir / "log.txt").read_text().splitlines()
    assert (run_dir / "training_options.json").is_file() and sum(x.startswith("tick ") for x in log_lines) == 4
    nets = checkpoint.load_networks(snaps[-1])
    assert set(nets) >= {"G", "D", "G_ema", "augment_pipe"}
    state = checkpoint.load_training_state(snaps[-1])
    assert state["cur_nimg"] == 24


def test_pl_weight_zero_drops_the_path_length_phase(sprites_dir, tmp_path):
    _train(["--data", str(sprites_dir), "--outdir", str(tmp_path), "--kimg", "0.016", "--pl-weight", "0", *TINY_ARGS])
    run_dir, = _run_dirs(tmp_path)
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert all("Timing/Greg" not in line and "Loss/pl_penalty" not in line for line in lines)
    assert "Timing/Dreg" in lines[0]


def test_resume_latest_restores_exact_state(sprites_dir, tmp_path):
    args = ["--data", str(sprites_dir), "--outdir", str(tmp_path), "--kimg", "1", "--aug", "fixed", "--p", "0.3",
            *TINY_ARGS]
    _train(args + ["--max-ticks", "2"])
    run_dir, = _run_dirs(tmp_path)
    snap = training_loop.latest_snapshot(run_dir)
    saved_state = checkpoint.load_training_state(snap)
    saved_nets = checkpoint.load_networks(snap)

    # Rebuild the stage as the loop does and load the snapshot: everything must equal what was saved.
    options = json.loads((run_dir / "training_options.json").read_text())
    from torch_utils.training_stats import Stats
    from training.dataset import open_dataset
    from training.loss_stylegan2 import build_stylegan_stage
    stage = build_stylegan_stage(device=torch.device("cpu"), stats=Stats(torch.device("cpu")),
                                 dataset=open_dataset(**options["data_kwargs"]), **options["stage_kwargs"])
    state = training_loop._load_training_state(stage, str(snap), rank=0, world=1)
    assert state["cur_nimg"] == saved_state["cur_nimg"] > 0
    for name in ("G", "D", "G_ema"):
        for (k, a), b in zip(stage.networks[name].state_dict().items(), saved_nets[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k}"
    assert float(stage.networks["augment_pipe"].p) == pytest.approx(0.3)
    opt_state = stage.phases[0].optimizer.state_dict()["state"]
    saved_opt = saved_state["optimizers"]["Gmain"]["state"]
    assert opt_state.keys() == saved_opt.keys() and len(opt_state) > 0
    for k in opt_state:
        assert torch.equal(opt_state[k]["exp_avg"], saved_opt[k]["exp_avg"])

    # And training goes on from there, in the same run folder.
    result = _train(args + ["--resume", "latest", "--max-ticks", "1"])
    assert f"Resumed from {snap}" in result.output
    assert _run_dirs(tmp_path) == [run_dir]
    newest = training_loop.latest_snapshot(run_dir)
    assert checkpoint.load_training_state(newest)["cur_nimg"] > saved_state["cur_nimg"]


def test_resume_latest_without_snapshot_is_a_clear_error(sprites_dir, tmp_path):
    result = CliRunner().invoke(train_stylegan.main, ["--data", str(sprites_dir), "--outdir", str(tmp_path),
                                                      "--resume", "latest", *TINY_ARGS])
    assert result.exit_code != 0 and "no snapshot found" in result.output


@pytest.mark.slow
def test_sigterm_writes_snapshot_and_kill9_resumes(sprites_dir, tmp_path):
    cmd = [sys.executable, str(ROOT / "train_stylegan.py"), "--data", str(sprites_dir), "--outdir", str(tmp_path),
           "--kimg", "100", "--snap", "1000", *TINY_ARGS]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("*/network-snapshot-*.pt")):
        time.sleep(0.5)
    time.sleep(2)  # a few steps past the tick-0 snapshot
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "Received signal" in out
    run_dir, = _run_dirs(tmp_path)
    snap = training_loop.latest_snapshot(run_dir)
    kimg_at_stop = checkpoint.load_training_state(snap)["cur_nimg"]
    assert kimg_at_stop > 0

    # kill -9 loses only the steps after the last snapshot: resume continues from it.
    log = tmp_path / "resumed.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd + ["--resume", "latest"], stdout=f, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and "Resumed from" not in log.read_text():
        time.sleep(0.5)
    time.sleep(2)  # a few steps past the resume point
    proc.kill()
    proc.wait(timeout=60)
    assert f"at {kimg_at_stop / 1000:.3f} kimg" in log.read_text()
    result = _train(["--data", str(sprites_dir), "--outdir", str(tmp_path), "--kimg", "100", *TINY_ARGS,
                     "--resume", "latest", "--max-ticks", "1"])
    assert "Resumed from" in result.output


def _two_rank_entry(args, out_dir):
    import torch.distributed as dist

    from torch_utils import distributed
    result = training_loop.training_loop(**args)
    # Parameters must agree exactly; buffers such as w_avg are per-rank running averages, as in StyleGAN2-ADA.
    params = {f"{name}.{k}": v.detach().clone() for name in ("G", "D", "G_ema")
              for k, v in result["stage"].networks[name].named_parameters()}
    torch.save(params, Path(out_dir) / f"rank{distributed.get_rank()}.pt")
    dist.barrier()


@pytest.mark.slow
def test_two_gloo_processes_keep_parameters_identical(sprites_dir, tmp_path):
    from torch_utils import distributed
    from training.loss_stylegan2 import build_stylegan_stage
    from training.presets import stylegan2_preset
    spec = stylegan2_preset("tiny", resolution=16)
    (tmp_path / "run").mkdir()
    args = dict(run_dir=str(tmp_path / "run"), build_stage=build_stylegan_stage,
                stage_kwargs=dict(G_kwargs=spec.G_kwargs, D_kwargs=spec.D_kwargs, G_opt_kwargs=spec.G_opt_kwargs,
                                  D_opt_kwargs=spec.D_opt_kwargs, loss_kwargs=spec.loss_kwargs,
                                  augment_kwargs=dict(preset="bgc", p=0.0, adaptive=True)),
                data_kwargs=dict(path=str(sprites_dir), kind="frames"), batch_size=8, batch_gpu=2,
                total_kimg=0.04, kimg_per_tick=0.04, snapshot_ticks=None, num_workers=0)
    distributed.launch(_two_rank_entry, (args, str(tmp_path)), num_procs=2)
    a, b = torch.load(tmp_path / "rank0.pt", weights_only=True), torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_transfer_freezes_mapping_and_low_res_blocks(sprites_dir, stage1_checkpoint, tmp_path):
    _train(["--data", str(sprites_dir), "--outdir", str(tmp_path), "--kimg", "0.016", "--transfer-from",
            str(stage1_checkpoint), "--freeze-res", "8", "--perceptual-weight", "0", *TINY_ARGS])
    run_dir, = _run_dirs(tmp_path)
    parent = checkpoint.load_networks(stage1_checkpoint)["G_ema"].state_dict()
    child = checkpoint.load_networks(training_loop.latest_snapshot(run_dir))["G"].state_dict()
    frozen = [k for k in parent if k.startswith(("mapping.", "synthesis.b4.", "synthesis.b8."))]
    trainable = [k for k in parent if k.startswith("synthesis.b16.") and k.endswith("weight")]
    assert frozen and trainable
    for k in frozen:
        assert torch.equal(parent[k], child[k]), k
    assert any(not torch.equal(parent[k], child[k]) for k in trainable)


def test_nan_loss_is_reported_by_name(sprites_dir, tmp_path):
    from torch_utils.training_stats import Stats
    from training.dataset import open_dataset
    from training.loss_stylegan2 import build_stylegan_stage
    from training.presets import stylegan2_preset
    spec = stylegan2_preset("tiny", resolution=16)
    stage = build_stylegan_stage(device=torch.device("cpu"), stats=Stats(torch.device("cpu")),
                                 dataset=open_dataset(str(sprites_dir)), G_kwargs=spec.G_kwargs,
                                 D_kwargs=spec.D_kwargs, G_opt_kwargs=spec.G_opt_kwargs,
                                 D_opt_kwargs=spec.D_opt_kwargs, loss_kwargs=spec.loss_kwargs)
    with torch.no_grad():
        next(stage.networks["D"].b4.out.parameters()).fill_(float("nan"))
    batch = [torch.zeros([2, 3, 16, 16], dtype=torch.uint8), torch.zeros([2, 0])]
    with pytest.raises(FloatingPointError, match="'G/adv'"):
        training_loop._run_phase(stage, stage.phases[0], [batch], stage.loss.stats)


def test_fakes_move_toward_the_data(sprites_dir, tmp_path):
    # A simple statistic: per-channel mean and std of the images. Random init G makes grey-ish noise; after a
    # short run the EMA generator's statistics must be clearly closer to the sprites' than at the start.
    _train(["--data", str(sprites_dir), "--outdir", str(tmp_path), "--kimg", "0.8", "--snap", "1000",
            "--cfg", "tiny", "--batch", "8", "--batch-gpu", "8", "--tick", "0.4", "--workers", "0", "--aug", "noaug",
            "--glr", "0.005", "--dlr", "0.005"])
    run_dir, = _run_dirs(tmp_path)
    from training.dataset import open_dataset
    ds = open_dataset(str(sprites_dir))
    reals = torch.stack([torch.from_numpy(ds[i][0]) for i in range(0, len(ds), 3)]).float() / 127.5 - 1

    def stats(x):
        return torch.cat([x.mean([0, 2, 3]), x.std([0, 2, 3])])

    def distance(path):
        G = checkpoint.load_networks(path)["G_ema"]
        with torch.no_grad():
            fakes = G(torch.randn([256, G.z_dim], generator=torch.Generator().manual_seed(0)), None,
                      noise_mode="const").clamp(-1, 1)
        return float((stats(fakes) - stats(reals)).norm())

    snaps = sorted(run_dir.glob("network-snapshot-*.pt"), key=lambda p: training_loop._snapshot_nimg(p))
    start, end = distance(snaps[0]), distance(snaps[-1])
    assert end < 0.5 * start, (start, end)
