"""FID and FVD end to end: detectors, real statistics (cached), one fake generation for all metrics, result dicts."""

import contextlib
import inspect
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import dnnlib
from metrics import cache as stats_cache
from metrics import protocols
from metrics.detectors import load_detector_cached
from metrics.frechet import FeatureStats, frechet_distance_from_stats
from metrics.protocols import MetricSpec, VideoCollection

# Fake source: fake_clips(num_videos, num_frames, seed, batch_size) yields uint8 tensors [b, T, 3, H, W]
# (T >= num_frames), videos in order, every video starting at t = 0, deterministic for a seed. A source that also
# takes `start` (index of its first video) gets each rank's block of the same sequence, so results do not depend on
# the number of GPUs; without it, each rank > 1 gets its own seed.
FakeClips = Callable[[int, int, int, int], Iterator[torch.Tensor]]


# Runs a detector on units (frames [k, 3, H, W] or clips [k, T, 3, H, W]) re-batched to a fixed size and
# accumulates the features.
class _Accumulator:
    def __init__(self, detector, kind: str, batch_size: int, device: torch.device):
        self.detector, self.kind, self.batch_size, self.device = detector, kind, max(1, batch_size), device
        self.stats = FeatureStats(detector.feature_dim, device)
        self.buf, self.count = [], 0

    def add(self, units: torch.Tensor) -> None:
        if len(units):
            self.buf.append(units)
            self.count += len(units)
        while self.count >= self.batch_size:
            self._run(self.batch_size)

    def flush(self) -> FeatureStats:
        if self.count:
            self._run(self.count)
        return self.stats

    def _run(self, n: int) -> None:
        data = torch.cat(self.buf) if len(self.buf) > 1 else self.buf[0]
        batch, rest = data[:n], data[n:]
        self.buf, self.count = ([rest] if len(rest) else []), len(rest)
        x = batch.to(self.device, non_blocking=True)
        if self.kind == "fvd":
            x = x.permute(0, 2, 1, 3, 4)  # [b, T, C, H, W] -> I3D's [b, C, T, H, W]
        with torch.inference_mode():
            self.stats.append(self.detector(x))


# Items of a sampling plan as uint8 arrays [k, 3, H, W] (k frames of one video).
class _PlanDataset(torch.utils.data.Dataset):
    def __init__(self, coll: VideoCollection, plan: list):
        self.coll, self.plan = coll, plan

    def __len__(self):
        return len(self.plan)

    def __getitem__(self, i):
        v, frames = self.plan[i]
        return self.coll.read_frames(v, frames)


# Statistics of a plan (this rank's share: items rank::world_size), summed over ranks.
def _plan_stats(coll, plan, spec: MetricSpec, detector, opts, desc: str) -> FeatureStats:
    items = plan[opts.rank::opts.world_size]
    loader = torch.utils.data.DataLoader(_PlanDataset(coll, items), batch_size=None, shuffle=False,
                                         num_workers=opts.num_workers, pin_memory=opts.device.type == "cuda")
    acc = _Accumulator(detector, spec.kind, _batch_size(spec, opts), opts.device)
    for units in _progress(loader, opts, desc, len(items)):
        acc.add(units if spec.kind == "fid" else units[None])
    return acc.flush().all_reduce()


def _batch_size(spec: MetricSpec, opts) -> int:
    return opts.batch_inception if spec.kind == "fid" else max(1, opts.batch_i3d_frames // spec.num_frames)


def _progress(iterable, opts, desc: str, total: int | None = None):
    if not opts.progress or opts.rank != 0:
        return iterable
    import tqdm
    return tqdm.tqdm(iterable, desc=desc, total=total, unit="item", leave=False)


# Real statistics of one metric, from the cache when possible (rank 0 decides and writes; only rank 0 needs them).
def _real_stats(spec: MetricSpec, coll: VideoCollection, detector, opts) -> tuple[FeatureStats | None, str]:
    random = spec.kind == "fvd" or spec.num_real is not None
    fields = dict(protocol=protocols.PROTOCOL_VERSION, kind=spec.kind, num_real=spec.num_real,
                  num_frames=spec.num_frames, stride=spec.stride, seed=opts.seed if random else None,
                  dataset=stats_cache.dataset_fingerprint(coll.fingerprint_items), resolution=coll.resolution,
                  detector_sha256=detector.info["sha256"], detector_layout=detector.info["layout"],
                  preprocess=detector.info["preprocess"])
    key = stats_cache.cache_key(fields)
    path = stats_cache.cache_path(opts.cache_dir, coll.name, spec.name, key)
    stats = None
    if opts.use_cache and opts.rank == 0:
        stats = stats_cache.load_stats(path, key, opts.device)
    if opts.use_cache and _broadcast_flag(stats is not None, opts):
        return stats, "hit"
    if spec.kind == "fvd":
        plan = protocols.real_fvd_plan(coll, spec, opts.seed)
    else:
        plan = protocols.real_fid_plan(coll, spec, opts.seed)
    stats = _plan_stats(coll, plan, spec, detector, opts, f"{spec.name} real")
    if opts.use_cache and opts.rank == 0:
        stats_cache.save_stats(path, key, stats, dict(fields, metric=spec.name, data=str(coll.path)))
    return stats, ("miss" if opts.use_cache else "off")


def _broadcast_flag(flag: bool, opts) -> bool:
    if opts.world_size == 1:
        return flag
    t = torch.tensor([float(flag)], device=opts.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


# Fake statistics of every metric from one generation of `videos x frames` (this rank: a contiguous block of
# videos). FVD takes the first num_fake videos (frames 0, s, ...); FID takes num_fake frames drawn uniformly from
# all generated frames.
def _generator_stats(fake_clips: FakeClips, specs, detectors, opts) -> dict[str, FeatureStats]:
    videos, frames = protocols.fake_generation_size(specs)
    lo, hi = videos * opts.rank // opts.world_size, videos * (opts.rank + 1) // opts.world_size
    kwargs, seed = {}, opts.seed
    if "start" in inspect.signature(fake_clips).parameters:
        kwargs = dict(start=lo)
    elif opts.world_size > 1:
        seed = int(np.random.SeedSequence([opts.seed, opts.rank]).generate_state(1)[0])
    accs = {s.name: _Accumulator(detectors[s.kind], s.kind, _batch_size(s, opts), opts.device) for s in specs}
    chosen = {s.name: protocols.uniform_frame_choice(videos * frames, s.num_fake, opts.seed)
              for s in specs if s.kind == "fid"}
    v = lo
    for batch in _progress(fake_clips(hi - lo, frames, seed, opts.batch_gen, **kwargs), opts, "fake batches"):
        batch = _check_fake_batch(batch, frames, hi - v)
        b = batch.shape[0]
        for s in specs:
            if s.kind == "fvd":
                keep = min(b, max(0, s.num_fake - v))
                accs[s.name].add(batch[:keep, s.stride * torch.arange(s.num_frames)])
            else:
                sel = chosen[s.name]
                i0, i1 = np.searchsorted(sel, [v * frames, (v + b) * frames])
                index = torch.as_tensor(sel[i0:i1] - v * frames, device=batch.device)
                accs[s.name].add(batch.reshape(b * frames, *batch.shape[2:])[index])
        v += b
    if v != hi:
        raise ValueError(f"fake_clips yielded {v - lo} videos, {hi - lo} were requested")
    return {name: acc.flush().all_reduce() for name, acc in accs.items()}


def _check_fake_batch(batch, frames: int, remaining: int) -> torch.Tensor:
    batch = torch.as_tensor(batch)
    if batch.ndim == 5 and batch.shape[2] == 1:  # Grayscale generator: repeat to RGB.
        batch = batch.expand(-1, -1, 3, -1, -1)
    if batch.dtype != torch.uint8 or batch.ndim != 5 or batch.shape[2] != 3 or batch.shape[1] < frames:
        raise ValueError(f"fake_clips must yield uint8 [b, T>={frames}, 3, H, W], "
                         f"got {batch.dtype} {tuple(batch.shape)}")
    if batch.shape[0] > remaining:
        raise ValueError(f"fake_clips yielded more videos than requested ({batch.shape[0]} > {remaining} remaining)")
    return batch[:, :frames]


# Fake statistics from a folder of generated videos (frame folders or video files), read like the real data.
def _folder_stats(coll: VideoCollection, specs, detectors, opts) -> dict[str, FeatureStats]:
    out = {}
    for s in specs:
        plan = protocols.fake_fvd_plan(coll, s) if s.kind == "fvd" else protocols.fake_fid_plan(coll, s, opts.seed)
        out[s.name] = _plan_stats(coll, plan, s, detectors[s.kind], opts, f"{s.name} fake")
    return out


# Reference precision (fp32, TF32 off, cudnn.benchmark on), restored afterwards.
@contextlib.contextmanager
def _precision(allow_tf32: bool):
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = old


# Compute `metrics` (names as in protocols.STANDARD_METRICS) between real data and a fake source.
#   fake: a FakeClips callable (generator mode; one generation serves all metrics) or a folder/zip of generated
#         videos (frame folders or mp4/gif files).
#   real_data: folder or zip of per-video frame folders.
#   detector_dir: folder (or None) searched for the published detector files before $STYLEINV_DETECTOR_DIR and the
#         cache folders; detector_files: {'inception': path, 'i3d': path} to name files explicitly.
#   rank/world_size: this process's shard (torch.distributed must be initialised when world_size > 1).
# Returns one dict per metric (the same on every rank) with 'metric', 'results' {name: value} and provenance.
def compute_metrics(metrics: Sequence[str], fake: FakeClips | str | os.PathLike, real_data: str | os.PathLike, *,
                    detector_dir: str | os.PathLike | None = None, detector_files: dict | None = None,
                    cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                    device: str | torch.device | None = None, rank: int = 0, world_size: int = 1, seed: int = 0,
                    batch_inception: int = 64, batch_i3d_frames: int = 512, batch_gen: int = 4, num_workers: int = 3,
                    inception_preprocess: str = "nvidia_tf1", i3d_preprocess: str = "stylegan_v",
                    unbiased: bool = False, fd_method: str = "eigh", resolution: int | None = None,
                    allow_tf32: bool = False, detector_check: str = "warn", progress: bool = False,
                    snapshot: str | None = None) -> list[dict]:
    specs = [protocols.parse_metric(m) for m in metrics]
    if len({s.name for s in specs}) != len(specs):
        raise ValueError(f"Duplicate metric names in {list(metrics)}")
    if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("world_size > 1 needs an initialised torch.distributed process group")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    opts = dnnlib.EasyDict(device=device, rank=rank, world_size=world_size, seed=seed,
                           batch_inception=batch_inception, batch_i3d_frames=batch_i3d_frames, batch_gen=batch_gen,
                           num_workers=num_workers, use_cache=use_cache, progress=progress,
                           cache_dir=Path(cache_dir or stats_cache.default_cache_dir()))
    start = time.time()
    with _precision(allow_tf32):
        detectors = _load_detectors(specs, detector_dir, detector_files or {}, inception_preprocess,
                                    i3d_preprocess, device, detector_check)
        real = VideoCollection(real_data, resolution)
        real_stats, real_cache, real_time = {}, {}, {}
        for s in specs:
            t0 = time.time()
            real_stats[s.name], real_cache[s.name] = _real_stats(s, real, detectors[s.kind], opts)
            real_time[s.name] = time.time() - t0
        t0 = time.time()
        if isinstance(fake, (str, os.PathLike)):
            fake_stats, fake_desc = _folder_stats(VideoCollection(fake, resolution), specs, detectors, opts), str(fake)
        else:
            fake_stats, fake_desc = _generator_stats(fake, specs, detectors, opts), "generator"
        fake_time = time.time() - t0
        results = None
        if rank == 0:
            results = []
            for s in specs:
                t0 = time.time()
                value = frechet_distance_from_stats(fake_stats[s.name], real_stats[s.name], unbiased, fd_method,
                                                    device)
                results.append(dict(
                    metric=s.name, results={s.name: value}, protocol=s.to_dict(),
                    protocol_version=protocols.PROTOCOL_VERSION,
                    num_real=real_stats[s.name].num, num_fake=fake_stats[s.name].num, seed=seed,
                    detector=detectors[s.kind].info, covariance="unbiased" if unbiased else "biased",
                    fd_method=fd_method, allow_tf32=allow_tf32, real_data=str(real_data),
                    real_stats_cache=real_cache[s.name],
                    fake=fake_desc, snapshot=snapshot, num_gpus=world_size, real_time=real_time[s.name],
                    fake_time=fake_time, fd_time=time.time() - t0, total_time=time.time() - start,
                    timestamp=time.time()))
    if world_size > 1:
        box = [results]
        dist.broadcast_object_list(box, src=0)
        results = box[0]
    return results


def _load_detectors(specs, detector_dir, detector_files, inception_preprocess, i3d_preprocess, device, check) -> dict:
    out = {}
    for kind, name, pre in (("fid", "inception", inception_preprocess), ("fvd", "i3d", i3d_preprocess)):
        if any(s.kind == kind for s in specs):
            path = detector_files.get(name) or detector_dir
            out[kind] = load_detector_cached(name, None if path is None else str(path), pre, str(device), check)
    return out
