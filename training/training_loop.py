"""The one training loop shared by all stages: StyleGAN2 (stage 1), the W encoder (stage 2) and StyleInV (stage 3).

A stage is described by a `Stage`: its networks, its optimisation phases (with lazy-regularisation intervals), a
loss object that accumulates gradients for one phase, EMA pairs and an optional adaptive augmentation. The loop
does the rest: data, distributed gradient reduction, EMA, ADA updates, ticks, logging, snapshots, resume, signals.
"""

import contextlib
import json
import os
import random
import resource
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tqdm

from dnnlib.errors import UserError
from torch_utils import cpu_memory, distributed
from torch_utils.training_stats import Stats
from training import checkpoint

SNAPSHOT_GLOB = "network-snapshot-*.pt"
SIGNAL_REPEAT_S = 2.0  # a second stop signal within this time is the same request delivered twice


# A snapshot could not be written (disk full, permission denied); the earlier ones are untouched.
class SnapshotWriteError(UserError):
    pass


# A loss term became NaN or Inf; the message names it and suggests what to change.
class TrainingDiverged(UserError, FloatingPointError):
    pass


# One optimisation phase: which parameters it updates, with which optimizer, every how many steps.
# The loss of a lazy phase is scaled by `interval` (StyleGAN2's lazy regularisation).
@dataclass
class Phase:
    name: str
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    interval: int = 1


# Everything stage-specific. `loss.accumulate_gradients(phase_name, batch, gain)` runs forward+backward for one
# round and returns {term name: loss tensor} so that a non-finite term is reported by name.
@dataclass
class Stage:
    networks: dict[str, torch.nn.Module]
    phases: list[Phase]
    loss: Any
    ema: dict[str, str] = field(default_factory=dict)  # {ema network name: source network name}
    ema_kimg: float = 10.0
    ema_rampup: float | None = None
    augment: Any = None  # training.augment.AdaptiveAugment or None
    nimg_per_sample: int = 1  # 4 for StyleInV, whose kimg counts frames
    status_keys: tuple[str, ...] = ()  # stats shown on the console tick line
    snapshot_images: Callable[[], dict[str, np.ndarray]] | None = None  # {name: uint8 [H, W, C] grid}
    # (metric names, snapshot path, detector folder) -> result records; called on every rank at snapshots.
    compute_metrics: Callable[[list[str], str, str | None], list[dict]] | None = None
    evaluate: Callable[[], dict] | None = None  # cheap per-snapshot evaluation on rank 0 -> {metric, results}
    batch_group: int = 1  # consecutive dataset items drawn together (InfiniteSampler group_size); divides batch_gpu


# A Stage.compute_metrics for a fake-clip source (see metrics.metric_main.FakeClips) against the real dataset.
def metrics_hook(fake_clips: Callable, real_data: str, device: torch.device, resolution: int | None = None):
    def compute(names: list[str], snapshot: str, detector_dir: str | None) -> list[dict]:
        from metrics.metric_main import compute_metrics
        return compute_metrics(names, fake_clips, real_data, detector_dir=detector_dir, device=device,
                               rank=distributed.get_rank(), world_size=distributed.get_world_size(),
                               resolution=resolution, snapshot=os.path.basename(snapshot), progress=False,
                               num_workers=min(3, os.cpu_count() or 1))
    return compute


# Adam with StyleGAN2's lazy-regularisation correction: lr * r/(r+1), betas ** (r/(r+1)).
def make_adam(params, lr: float, betas=(0.0, 0.99), eps: float = 1e-8, reg_interval: int | None = None):
    if reg_interval:
        ratio = reg_interval / (reg_interval + 1)
        lr, betas = lr * ratio, tuple(b ** ratio for b in betas)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)


def _rss_gb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _format_time(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


# RNG states of this process as plain Python / tensor data (loadable with weights_only=True).
def _rng_state() -> dict:
    np_state = np.random.get_state()
    return dict(
        python=[random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        numpy=[np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
               float(np_state[4])],
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    )


def _set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], npy[1].numpy().astype(np.uint32), npy[2], npy[3], npy[4]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


# kimg tag of snapshot and image files: 6 digits as in StyleGAN2-ADA, plus the remaining images for sub-kimg runs.
def kimg_tag(cur_nimg: int) -> str:
    rest = f"-{cur_nimg % 1000:03d}" if cur_nimg % 1000 else ""
    return f"{cur_nimg // 1000:06d}{rest}"


def snapshot_name(cur_nimg: int) -> str:
    return f"network-snapshot-{kimg_tag(cur_nimg)}.pt"


def _snapshot_nimg(path: Path) -> int:
    kimg, _, rest = path.name[len("network-snapshot-"):-len(".pt")].partition("-")
    return int(kimg) * 1000 + int(rest or 0)


# Snapshots of a run directory, newest (most images seen) first.
def snapshots(run_dir: str | os.PathLike) -> list[Path]:
    snaps = [p for p in Path(run_dir).glob(SNAPSHOT_GLOB) if p.name.count("-") in (2, 3)]
    return sorted(snaps, key=_snapshot_nimg, reverse=True)


# Newest snapshot (most images seen) in a run directory, or None.
def latest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    snaps = snapshots(run_dir)
    return snaps[0] if snaps else None


# Why training cannot resume from `path` (None if it can): the file must load (format, CRC of every tensor) and
# hold a training state with its counters and optimizer states.
def snapshot_problem(path: str | os.PathLike) -> str | None:
    try:
        state = checkpoint.load_training_state(path)
    except (OSError, ValueError) as e:
        return str(e)
    if state is None:
        return f"'{path}' holds no training state (use --init to start from its weights only)"
    missing = [k for k in ("cur_nimg", "cur_tick", "batch_idx", "optimizers") if k not in state]
    if missing:
        return f"the training state in '{path}' lacks {', '.join(missing)}"
    return None


# Collects SIGINT/SIGTERM so the loop can write a snapshot and stop cleanly at the end of the step.
class _StopRequest:
    def __init__(self):
        self.requested = False
        self._first = 0.0
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and time.monotonic() - self._first < SIGNAL_REPEAT_S:
            return  # e.g. SIGTERM sent to every process of a job and also passed on by the --gpus launcher
        if self.requested:  # second signal: stop now
            raise KeyboardInterrupt
        self.requested, self._first = True, time.monotonic()
        print(f"\nReceived signal {signum}: writing a snapshot and stopping after this step "
              "(send again to stop at once).", flush=True)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# Copies everything written to stdout/stderr into <run_dir>/log.txt (rank 0).
class _Tee:
    def __init__(self, path: Path | None):
        self.file = open(path, "a", buffering=1) if path is not None else None

    def __enter__(self):
        if self.file is not None:
            self.stdout, self.stderr = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = _TeeStream(self.stdout, self.file), _TeeStream(self.stderr, self.file)
        return self

    def __exit__(self, *exc):
        if self.file is not None:
            sys.stdout, sys.stderr = self.stdout, self.stderr
            self.file.close()


class _TeeStream:
    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()


def _infinite_batches(dataset, batch_gpu: int, seed: int, num_workers: int, device, group_size: int = 1) -> Iterator:
    from training.dataset import InfiniteSampler
    sampler = InfiniteSampler(dataset, rank=distributed.get_rank(), num_replicas=distributed.get_world_size(),
                              seed=seed, group_size=group_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_gpu, sampler=sampler, num_workers=num_workers,
                                         pin_memory=device.type == "cuda", persistent_workers=num_workers > 0,
                                         prefetch_factor=2 if num_workers > 0 else None)
    for batch in loader:
        yield [x.to(device, non_blocking=True) if torch.is_tensor(x) else x for x in batch]


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, source: torch.nn.Module, beta: float) -> None:
    for p_ema, p in zip(ema.parameters(), source.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), source.buffers()):
        b_ema.copy_(b)


def _write_image(path: Path, image: np.ndarray) -> None:
    import PIL.Image
    tmp = path.with_name(path.name + ".tmp")
    try:
        PIL.Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# The training loop (StyleGAN2-ADA's loop structure, written once for every stage).
def training_loop(
    *,
    run_dir: str,
    build_stage: Callable[..., Stage],  # build_stage(device=, stats=, dataset=, **stage_kwargs) -> Stage
    stage_kwargs: dict,
    data_kwargs: dict,  # training.dataset.open_dataset(**data_kwargs)
    batch_size: int,  # global, in samples (videos for StyleInV)
    batch_gpu: int,  # per process per round
    total_kimg: float,
    kimg_per_tick: float = 4,
    snapshot_ticks: int | None = 50,
    seed: int = 0,
    resume: str | None = None,  # full training state
    init: str | None = None,  # weights only (ours or an official .pkl)
    metrics: tuple[str, ...] = (),
    detector_dir: str | None = None,
    num_workers: int = 2,
    allow_tf32: bool = False,
    cudnn_benchmark: bool = True,
    max_ticks: int | None = None,  # stop (with a snapshot) after this many ticks in this process; for tests
) -> dict:
    rank, world = distributed.get_rank(), distributed.get_world_size()
    device = distributed.device_for_rank(int(os.environ.get("LOCAL_RANK", 0)))
    run_dir = Path(run_dir)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32

    rounds, rest = divmod(batch_size, batch_gpu * world)
    if rest or rounds == 0:
        raise ValueError(f"--batch={batch_size} must be a positive multiple of --batch-gpu={batch_gpu} x "
                         f"{world} processes")
    random.seed(seed * world + rank)
    np.random.seed(seed * world + rank)
    torch.manual_seed(seed * world + rank)

    # Every rank opens the data and builds the stage; a failure on one rank stops all of them (reported once).
    dataset, stats, stage, state = distributed.agree(_setup, build_stage, stage_kwargs, data_kwargs, device, init,
                                                     resume)
    retains_memory = cpu_memory.configure_for_training(device, dataset.resolution)
    if batch_gpu % stage.batch_group:
        raise ValueError(f"--batch-gpu={batch_gpu} must be a multiple of the {stage.batch_group} videos per content "
                         f"drawn together (data.videos_per_content)")
    for net in stage.networks.values():
        distributed.broadcast_module(net)
        net.requires_grad_(False)

    tee = _Tee(run_dir / "log.txt" if rank == 0 else None)
    with tee, _StopRequest() as stop, _Logger(run_dir if rank == 0 else None) as logger:
        skipped = f" ({dataset.num_skipped} skipped)" if getattr(dataset, "num_skipped", 0) else ""
        distributed.print0(f"Dataset: {dataset.name}, {getattr(dataset, 'num_videos', '?')} videos used{skipped}, "
                           f"{len(dataset)} items, resolution {dataset.resolution}")
        distributed.print0(f"Batch {batch_size} = {batch_gpu} per round x {rounds} rounds x {world} processes; "
                           f"device {device}; training until {total_kimg} kimg")
        if retains_memory:
            distributed.print0("CPU memory: freed blocks kept for reuse, trimmed every tick (docs/PERFORMANCE.md)")
        if resume:
            distributed.print0(f"Resumed from {resume} at {state['cur_nimg'] / 1000:.3f} kimg")
        # The resumed run draws new data, not a replay of the samples before the snapshot.
        batches = _infinite_batches(dataset, batch_gpu, seed + state["batch_idx"], num_workers, device,
                                    stage.batch_group)
        try:
            result = _run(stage, state, batches, stats, logger, stop, run_dir, device, batch_size, rounds,
                          total_kimg, kimg_per_tick, snapshot_ticks, list(metrics), detector_dir, max_ticks,
                          retains_memory)
        except RuntimeError as e:
            if not distributed.is_collective_failure(e):
                raise
            raise distributed.peer_failed(e) from e
    return result


# Dataset, stats, stage and start state of this rank (a dataset's warnings are shown by rank 0 only).
def _setup(build_stage: Callable, stage_kwargs: dict, data_kwargs: dict, device: torch.device, init: str | None,
           resume: str | None) -> tuple:
    from training.dataset import open_dataset
    rank, world = distributed.get_rank(), distributed.get_world_size()
    with warnings.catch_warnings() if rank != 0 else contextlib.nullcontext():
        if rank != 0:
            warnings.simplefilter("ignore")
        dataset = open_dataset(**data_kwargs)
    stats = Stats(device)
    stage = build_stage(device=device, stats=stats, dataset=dataset, **stage_kwargs)
    state = dict(cur_nimg=0, cur_tick=0, batch_idx=0)
    if init is not None:
        _load_weights(stage, init, rank)
    if resume is not None:
        state = _load_training_state(stage, resume, rank, world)
    return dataset, stats, stage, state


def _run(stage, state, batches, stats, logger, stop, run_dir, device, batch_size, rounds, total_kimg,
         kimg_per_tick, snapshot_ticks, metrics, detector_dir, max_ticks, retains_memory) -> dict:
    rank = distributed.get_rank()
    start_time = tick_start_time = time.time()
    tick_start_nimg = state["cur_nimg"]
    ticks_this_run = 0
    if rank == 0 and stage.snapshot_images is not None and state["cur_tick"] == 0:
        _save_images(stage, run_dir, logger, state["cur_nimg"], initial=True)
    bar = _tick_bar(kimg_per_tick, rank)
    while True:
        batch_rounds = [next(batches) for _ in range(rounds)]
        for phase in stage.phases:
            if state["batch_idx"] % phase.interval != 0:
                continue
            _run_phase(stage, phase, batch_rounds, stats)
        step_nimg = batch_size * stage.nimg_per_sample
        for ema_name, src_name in stage.ema.items():
            ema_nimg = stage.ema_kimg * 1000
            if stage.ema_rampup is not None:
                ema_nimg = min(ema_nimg, state["cur_nimg"] * stage.ema_rampup)
            _update_ema(stage.networks[ema_name], stage.networks[src_name],
                        0.5 ** (batch_size / max(ema_nimg, 1e-8)))
        if stage.augment is not None:
            stage.augment.update(batch_size)
        state["cur_nimg"] += step_nimg
        state["batch_idx"] += 1
        bar.update(step_nimg)

        done = state["cur_nimg"] >= total_kimg * 1000
        stopping = distributed.any_rank(stop.requested, device)
        if (not done and not stopping and state["cur_tick"] != 0
                and state["cur_nimg"] < tick_start_nimg + kimg_per_tick * 1000):
            continue

        # Tick: report, maybe snapshot.
        bar.close()
        tick_end_time = time.time()
        ticks_this_run += 1
        if max_ticks is not None and ticks_this_run >= max_ticks:
            stopping = True
        tick_nimg = state["cur_nimg"] - tick_start_nimg
        stats.report("Progress/tick", state["cur_tick"])
        stats.report("Progress/kimg", state["cur_nimg"] / 1000)
        stats.report("Timing/total_sec", tick_end_time - start_time)
        stats.report("Timing/sec_per_tick", tick_end_time - tick_start_time)
        stats.report("Timing/sec_per_kimg", (tick_end_time - tick_start_time) / max(tick_nimg, 1) * 1000)
        stats.report("Resources/cpu_mem_gb", _rss_gb())
        if device.type == "cuda":
            stats.report("Resources/peak_gpu_mem_gb", torch.cuda.max_memory_allocated(device) / 2**30)
            torch.cuda.reset_peak_memory_stats(device)
        if stage.augment is not None:
            stats.report("Progress/augment", float(stage.augment.pipe.p))
        collected = stats.collect()
        if retains_memory:
            cpu_memory.release_free_memory()
        if rank == 0:
            print(_status_line(collected, state, total_kimg, tick_nimg, tick_end_time - tick_start_time,
                               stage.status_keys), flush=True)
            logger.write_stats(collected, state["cur_nimg"])
        snapshot_due = snapshot_ticks is not None and state["cur_tick"] % snapshot_ticks == 0
        if done or stopping or snapshot_due:
            path = _save_snapshot(stage, state, run_dir)
            if rank == 0 and stage.snapshot_images is not None:
                _save_images(stage, run_dir, logger, state["cur_nimg"])
            if rank == 0 and stage.evaluate is not None:
                result = dict(stage.evaluate(), kimg=state["cur_nimg"] / 1000, snapshot=path.name)
                print(f"Evaluation ({result['metric']}): " + ", ".join(
                    f"{k} {v:.4f}" for k, v in result["results"].items()), flush=True)
                logger.write_metric(result, state["cur_nimg"])
            if metrics and stage.compute_metrics is not None and not stopping:
                for result in stage.compute_metrics(metrics, str(path), detector_dir):
                    logger.write_metric(result, state["cur_nimg"])
        if done or stopping:
            break
        state["cur_tick"] += 1
        tick_start_nimg = state["cur_nimg"]
        tick_start_time = time.time()
        bar = _tick_bar(kimg_per_tick, rank)
    distributed.print0("Exiting..." if not done else f"Done: {state['cur_nimg'] / 1000:.3f} kimg")
    return dict(state, done=done, run_dir=str(run_dir), stage=stage)


def _tick_bar(kimg_per_tick: float, rank: int):
    # A progress bar inside a tick (shown on terminals only; the tick line is the log).
    return tqdm.tqdm(total=int(kimg_per_tick * 1000), unit="img", leave=False, disable=rank != 0 or None,
                     mininterval=2, dynamic_ncols=True)


def _run_phase(stage: Stage, phase: Phase, batch_rounds: list, stats: Stats) -> None:
    for p in phase.params:
        p.requires_grad_(True)
    phase.optimizer.zero_grad(set_to_none=True)
    phase_start = time.time()
    for batch in batch_rounds:
        terms = stage.loss.accumulate_gradients(phase.name, batch, gain=phase.interval)
        _check_finite(terms, phase.name)
    distributed.reduce_gradients(phase.params)
    phase.optimizer.step()
    for p in phase.params:
        p.requires_grad_(False)
    stats.report(f"Timing/{phase.name}", time.time() - phase_start)


# A non-finite loss term stops training with its name rather than being scrubbed silently into the weights.
def _check_finite(terms: dict[str, torch.Tensor], phase_name: str) -> None:
    if not terms:
        return
    values = torch.stack([t.detach().float().mean() for t in terms.values()])
    if not bool(torch.isfinite(values).all()):
        bad = [name for name, v in zip(terms, values.tolist()) if not np.isfinite(v)]
        raise TrainingDiverged(f"Non-finite loss {', '.join(repr(b) for b in bad)} in phase '{phase_name}'. "
                                 "Try a lower learning rate, --fp32, or a smaller gamma.")


def _status_line(collected: dict, state: dict, total_kimg: float, tick_nimg: int, tick_sec: float,
                 status_keys) -> str:
    kimg = state["cur_nimg"] / 1000
    sec_per_kimg = tick_sec / max(tick_nimg, 1) * 1000
    eta = max(total_kimg - kimg, 0) * sec_per_kimg
    fields = [f"tick {state['cur_tick']:<4d}", f"kimg {kimg:<9.3f}", f"sec/kimg {sec_per_kimg:<7.2f}",
              f"sec/tick {tick_sec:<6.1f}", f"ETA {_format_time(eta):<8s}",
              f"cpumem {collected.get('Resources/cpu_mem_gb', {}).get('mean', 0):<5.2f}"]
    if "Resources/peak_gpu_mem_gb" in collected:
        fields.append(f"gpumem {collected['Resources/peak_gpu_mem_gb']['mean']:<5.2f}")
    if "Progress/augment" in collected:
        fields.append(f"augment {collected['Progress/augment']['mean']:.3f}")
    for key in status_keys:
        if key in collected:
            fields.append(f"{key.split('/', 1)[-1]} {collected[key]['mean']:<8.4f}")
    return " ".join(fields)


# Writes stats.jsonl, metric-<name>.jsonl and TensorBoard events (rank 0 only; a no-op elsewhere).
class _Logger:
    def __init__(self, run_dir: Path | None):
        self.run_dir = run_dir
        self.tb = None

    def __enter__(self):
        if self.run_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.run_dir))
            except ImportError:
                print("TensorBoard not installed: skipping TensorBoard logging.")
        return self

    def __exit__(self, *exc):
        if self.tb is not None:
            self.tb.close()

    def write_stats(self, collected: dict, cur_nimg: int) -> None:
        if self.run_dir is None:
            return
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(dict(collected, timestamp=time.time())) + "\n")
        if self.tb is not None:
            for name, value in collected.items():
                self.tb.add_scalar(name, value["mean"], global_step=cur_nimg // 1000, walltime=time.time())
            self.tb.flush()

    def write_metric(self, result: dict, cur_nimg: int) -> None:
        if self.run_dir is None:
            return
        with open(self.run_dir / f"metric-{result['metric']}.jsonl", "a") as f:
            f.write(json.dumps(result) + "\n")
        if self.tb is not None:
            for name, value in result.get("results", {}).items():
                self.tb.add_scalar(f"Metrics/{name}", value, global_step=cur_nimg // 1000)

    def write_image(self, name: str, image: np.ndarray, cur_nimg: int) -> None:
        if self.tb is not None:
            self.tb.add_image(name, image, global_step=cur_nimg // 1000, dataformats="HWC")


def _save_images(stage: Stage, run_dir: Path, logger: _Logger, cur_nimg: int, initial: bool = False) -> None:
    for name, image in stage.snapshot_images().items():
        if name == "reals" and not initial:
            continue
        filename = f"{name}.png" if name == "reals" else f"{name}{'_init' if initial else kimg_tag(cur_nimg)}.png"
        _write_image(run_dir / filename, image)
        logger.write_image(name, image, cur_nimg)


# Snapshot = every network + the full training state of every rank, in one atomically written checkpoint.
def _save_snapshot(stage: Stage, state: dict, run_dir: Path) -> Path:
    path = run_dir / snapshot_name(state["cur_nimg"])
    rng_states = distributed.all_gather_object(_rng_state())
    if distributed.get_rank() == 0:
        training_state = dict(
            cur_nimg=int(state["cur_nimg"]), cur_tick=int(state["cur_tick"]), batch_idx=int(state["batch_idx"]),
            optimizers={phase.name: phase.optimizer.state_dict() for phase in stage.phases},
            loss=stage.loss.state_dict() if hasattr(stage.loss, "state_dict") else {},
            augment=stage.augment.state_dict() if stage.augment is not None else None,
            rng=rng_states, world_size=distributed.get_world_size(),
        )
        try:
            checkpoint.save_checkpoint(path, stage.networks, training_state=training_state,
                                       metadata=dict(kimg=state["cur_nimg"] / 1000, time=time.time()))
        except (OSError, RuntimeError) as e:
            cause = _os_error_in(e)
            if cause is None:
                raise
            raise SnapshotWriteError(f"Could not write the snapshot {path} ({cause.strerror or cause}). The earlier "
                                     f"snapshots in {run_dir} are intact: free disk space or fix the permissions, "
                                     "then continue with --resume latest") from e
        print(f"Saved snapshot {path}", flush=True)
    if distributed.get_world_size() > 1:
        torch.distributed.barrier()  # the snapshot exists for every rank from here on
    return path


# The OSError behind an exception (torch.save turns a failed write into a RuntimeError whose context is the
# OSError), or None.
def _os_error_in(exc: BaseException | None) -> OSError | None:
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__ or exc.__context__
    return exc


def _load_weights(stage: Stage, path: str, rank: int) -> None:
    loaded = checkpoint.load_networks(path)
    used = []
    for name, net in stage.networks.items():
        src = loaded.get(name)
        if src is None and name.endswith("_ema"):
            src = loaded.get(name[:-4])
        if src is not None:
            checkpoint.copy_params_and_buffers(src, net, require_all=False)
            used.append(name)
    if not used:
        raise ValueError(f"--init {path}: none of its networks ({', '.join(loaded)}) match this stage's "
                         f"({', '.join(stage.networks)})")
    if rank == 0:
        print(f"Initialised {', '.join(used)} from {path}", flush=True)


def _load_training_state(stage: Stage, path: str, rank: int, world: int) -> dict:
    ts = checkpoint.load_training_state(path)
    if ts is None:  # E.g. an official .pkl: weights only.
        raise ValueError(f"--resume {path}: the file holds no training state (use --init for weights only)")
    loaded = checkpoint.load_networks(path)
    for name, net in stage.networks.items():
        if name not in loaded:
            raise ValueError(f"--resume {path}: the snapshot has no network '{name}'")
        try:
            net.load_state_dict(loaded[name].state_dict())
        except RuntimeError as e:
            detail = " ".join(str(e).split())
            raise ValueError(f"--resume {path}: network '{name}' does not match the one built from these options; "
                             f"resume with the options of the run that wrote it ({detail[:300]})") from None
    ts = checkpoint.load_training_state(path)
    if ts is None:
        raise ValueError(f"--resume {path}: the file holds no training state (use --init for weights only)")
    for phase in stage.phases:
        if phase.name in ts["optimizers"]:
            phase.optimizer.load_state_dict(ts["optimizers"][phase.name])
    if hasattr(stage.loss, "load_state_dict") and ts.get("loss"):
        stage.loss.load_state_dict(ts["loss"])
    if stage.augment is not None and ts.get("augment") is not None:
        stage.augment.load_state_dict(ts["augment"])
    if ts.get("world_size") == world and len(ts.get("rng", [])) == world:
        _set_rng_state(ts["rng"][rank])
    elif rank == 0:
        print(f"Note: the snapshot was written by {ts.get('world_size')} processes, this run has {world}; "
              "random streams are re-seeded.", flush=True)
    return dict(cur_nimg=ts["cur_nimg"], cur_tick=ts["cur_tick"] + 1, batch_idx=ts["batch_idx"])
