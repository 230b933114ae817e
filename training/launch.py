"""Command-line plumbing shared by the three training scripts: common options, run directories, resume lookup and
process launch (single process, `--gpus N` spawn, or torchrun)."""

import functools
import json
import os
import re
import warnings
from pathlib import Path

import click
import torch.distributed as dist

from dnnlib.errors import UserError, UserNotice
from torch_utils import distributed
from training import training_loop


# Options every stage takes; the decorated command receives them as keyword arguments.
def common_options(fn):
    options = [
        click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Where run folders go"),
        click.option("--gpus", default=1, show_default=True, type=click.IntRange(min=1),
                     help="Processes to spawn (one per GPU; gloo CPU processes without CUDA). Ignored under torchrun"),
        click.option("--batch", type=click.IntRange(min=1), help="Global batch size [default: preset]"),
        click.option("--batch-gpu", type=click.IntRange(min=1), help="Per-process batch per round [default: preset]"),
        click.option("--kimg", type=click.FloatRange(min=0, min_open=True), help="Training length [default: preset]"),
        click.option("--tick", type=click.FloatRange(min=0, min_open=True),
                     help="kimg per status line [default: preset]"),
        click.option("--snap", default=None, type=click.IntRange(min=1),
                     help="Snapshot every N ticks [default: 50, or the config's]"),
        click.option("--seed", default=0, show_default=True, type=int, help="Random seed"),
        click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0), help="DataLoader workers"),
        click.option("--resume", default=None, help="'latest' (newest snapshot of the newest matching run) or a "
                                                    "snapshot path: continue with the full training state"),
        click.option("--init", default=None, type=click.Path(dir_okay=False, exists=True),
                     help="Initialise weights only (our snapshot or an official .pkl)"),
        click.option("--metrics", default="none", show_default=True,
                     help="Comma-separated metrics at each snapshot, or 'none'"),
        click.option("--detector-dir", default=None, type=click.Path(file_okay=False),
                     help="Folder with the metric detector weight files"),
        click.option("--tf32", is_flag=True, help="Allow TF32 matmuls/convs on Ampere+ GPUs"),
        click.option("--desc", default=None, help="Extra string for the run folder name"),
        click.option("--max-ticks", default=None, type=click.IntRange(min=1), hidden=True,
                     help="Stop after N ticks in this process (with a snapshot)"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def parse_metrics(text: str) -> tuple[str, ...]:
    return () if text in ("", "none") else tuple(m.strip() for m in text.split(",") if m.strip())


_RUN_DIR_RE = re.compile(r"^(\d{5})-(.+)$")


def _run_dirs(outdir: Path) -> list[tuple[int, str, Path]]:
    if not outdir.is_dir():
        return []
    found = []
    for d in outdir.iterdir():
        m = _RUN_DIR_RE.match(d.name)
        if m and d.is_dir():
            found.append((int(m.group(1)), m.group(2), d))
    return sorted(found)


# `--resume latest`: the newest snapshot that loads (format, CRC, training state) of the newest run folder with
# this description that has one. Every snapshot passed over (truncated, corrupted) is named in a warning.
def find_latest(outdir: Path, desc: str) -> tuple[Path, Path]:
    skipped = 0
    for _, run_desc, run_dir in reversed(_run_dirs(outdir)):
        if run_desc != desc:
            continue
        for snap in training_loop.snapshots(run_dir):
            problem = training_loop.snapshot_problem(snap)
            if problem is None:
                return run_dir, snap
            skipped += 1
            warnings.warn(f"--resume latest: skipping {snap}: {problem}", UserNotice, stacklevel=2)
    found = f"no snapshot that loads ({skipped} skipped, see the warnings)" if skipped else "no snapshot found"
    raise click.ClickException(f"--resume latest: {found} in {outdir}/*-{desc}/. Start without --resume "
                               "or pass a snapshot path.")


def _make_run_dir(outdir: Path, desc: str, resume: str | None) -> tuple[Path, str | None]:
    if resume == "latest":
        return find_latest(outdir, desc)
    if resume is not None and not Path(resume).is_file():
        raise click.ClickException(f"--resume {resume}: no such file")
    if resume is not None and (problem := training_loop.snapshot_problem(resume)) is not None:
        raise click.ClickException(f"--resume {resume}: cannot resume from this file: {problem}")
    ids = [i for i, _, _ in _run_dirs(outdir)]
    run_dir = outdir / f"{(max(ids) + 1 if ids else 0):05d}-{desc}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir, resume


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def _train_process(loop_kwargs: dict) -> None:
    training_loop.training_loop(**loop_kwargs)


# Rank 0: create (or, for --resume latest, find) the run folder and write training_options.json into it.
# Returns [run folder, snapshot to resume from or None].
def _prepare_run_dir(outdir: Path, desc: str, resume: str | None, loop_kwargs: dict, processes: int) -> list:
    run_dir, resume_path = _make_run_dir(outdir, desc, resume)
    box = [str(run_dir), str(resume_path) if resume_path else None]
    options = dict(loop_kwargs, run_dir=str(run_dir), resume=box[1], num_processes=processes)
    tmp = run_dir / "training_options.json.tmp"
    try:
        tmp.write_text(json.dumps(_jsonable(options), indent=2))
        os.replace(tmp, run_dir / "training_options.json")
    finally:
        tmp.unlink(missing_ok=True)
    print(f"Run folder: {run_dir}" + (f" (resuming from {resume_path})" if resume_path else ""), flush=True)
    return box


# Create (or, for --resume latest, find) the run folder on rank 0, write training_options.json and run the loop in
# every process. Returns the run folder.
def run(*, outdir: str, desc: str, gpus: int, resume: str | None, loop_kwargs: dict) -> Path:
    if "WORLD_SIZE" in os.environ:  # torchrun: rank 0 picks the folder, the others are told
        distributed.init_from_env()
    processes = distributed.get_world_size() if "WORLD_SIZE" in os.environ else max(gpus, 1)
    batch, batch_gpu = loop_kwargs["batch_size"], loop_kwargs["batch_gpu"]
    if batch % (batch_gpu * processes):
        raise click.UsageError(f"--batch={batch} must be a multiple of --batch-gpu={batch_gpu} x {processes} "
                               "processes")
    is_rank0 = distributed.get_rank() == 0
    box = distributed.agree(lambda: _prepare_run_dir(Path(outdir), desc, resume, loop_kwargs, processes)
                            if is_rank0 else [None, None])
    if distributed.get_world_size() > 1:
        dist.broadcast_object_list(box, src=0)
    kwargs = dict(loop_kwargs, run_dir=box[0], resume=box[1])
    try:
        distributed.launch(functools.partial(_train_process), (kwargs,), gpus)
    except distributed.ProcessFailed as e:
        if e.died:
            raise UserError(f"{e} The snapshots in {box[0]} are intact: continue with --resume latest.") from None
        raise
    return Path(box[0])
