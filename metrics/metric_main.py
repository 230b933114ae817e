"""FID and FVD end to end: detectors, real statistics (cached), fake generations (one per generated clip length,
shared by the metrics that use it), self-describing result dicts, repeated fake runs."""

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
# the number of GPUs, and a metric's fakes do not depend on the other metrics of the call; without it, each rank > 1
# gets its own seed.
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


# Whether the real sample of a metric depends on the seed (FVD clip offsets always; FID unless it takes fixed frames).
def _real_side_is_random(spec: MetricSpec, protocol: protocols.Protocol) -> bool:
    rule = protocol.fid_full_real if spec.num_real is None else protocol.fid_real
    return spec.kind == "fvd" or rule == "balanced"


# Real statistics of one metric, from the cache when possible (rank 0 decides and writes; only rank 0 needs them).
# The key holds everything the statistics depend on, precision included.
def _real_stats(spec: MetricSpec, coll: VideoCollection, detector, opts) -> tuple[FeatureStats | None, str]:
    protocol = opts.protocol
    fields = dict(protocol=protocol.name, protocol_version=protocols.PROTOCOL_VERSION, kind=spec.kind,
                  num_real=spec.num_real, num_frames=spec.num_frames, stride=spec.stride,
                  seed=opts.seed if _real_side_is_random(spec, protocol) else None,
                  dataset=opts.real_fingerprint or stats_cache.dataset_fingerprint(coll.fingerprint_items),
                  resolution=coll.resolution, detector=detector.info["name"],
                  detector_sha256=detector.info["sha256"], detector_layout=detector.info["layout"],
                  preprocess=detector.info["preprocess"], precision=_precision_record(opts))
    key = stats_cache.cache_key(fields)
    path = stats_cache.cache_path(opts.cache_dir, coll.name, spec.name, key)
    stats = None
    if opts.use_cache and opts.rank == 0:
        stats = stats_cache.load_stats(path, key, opts.device)
    if opts.use_cache and _broadcast_flag(stats is not None, opts):
        return stats, "hit"
    plan_fn = protocols.real_fvd_plan if spec.kind == "fvd" else protocols.real_fid_plan
    plan = plan_fn(coll, spec, protocol, opts.seed)
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


# Fake statistics of every metric in generator mode, for fake seed `seed`. One generation per distinct
# generated_frames (protocols.fake_generation_passes), this rank taking a contiguous block of its videos. From a
# generation of L-frame videos, an FVD metric takes its first num_fake videos (frames 0, s, ...); FID takes frames
# 0..15 of its first ceil(K/16) videos (K of those frames, uniformly, when K is not a multiple of 16).
def _generator_stats(fake_clips: FakeClips, specs, detectors, opts, seed: int) -> dict[str, FeatureStats]:
    accs = {s.name: _Accumulator(detectors[s.detector], s.kind, _batch_size(s, opts), opts.device) for s in specs}
    for frames, videos in protocols.fake_generation_passes(specs).items():
        users = [s for s in specs if s.generated_frames == frames]
        lo, hi = videos * opts.rank // opts.world_size, videos * (opts.rank + 1) // opts.world_size
        kwargs, rank_seed = {}, seed
        if "start" in inspect.signature(fake_clips).parameters:
            kwargs = dict(start=lo)
        elif opts.world_size > 1:
            rank_seed = int(np.random.SeedSequence([seed, opts.rank]).generate_state(1)[0])
        chosen = {s.name: protocols.uniform_frame_choice(s.generated_videos * frames, s.num_fake, seed)
                  for s in users if s.kind == "fid"}
        v = lo
        for batch in _progress(fake_clips(hi - lo, frames, rank_seed, opts.batch_gen, **kwargs), opts,
                               f"fake {frames}-frame videos"):
            batch = _check_fake_batch(batch, frames, hi - v)
            if opts.frozen_fakes:  # Motion-free control: every frame is the video's first.
                batch = batch[:, :1].expand_as(batch)
            b = batch.shape[0]
            for s in users:
                keep = min(b, max(0, s.generated_videos - v))
                if s.kind == "fvd":
                    accs[s.name].add(batch[:keep, s.stride * torch.arange(s.num_frames)])
                else:
                    sel = chosen[s.name]
                    i0, i1 = np.searchsorted(sel, [v * frames, (v + keep) * frames])
                    index = torch.as_tensor(sel[i0:i1] - v * frames, device=batch.device)
                    accs[s.name].add(batch[:keep].reshape(keep * frames, *batch.shape[2:])[index])
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


# Fake statistics from a folder of generated videos (frame folders or video files), chosen by the protocol.
def _folder_stats(coll: VideoCollection, specs, detectors, opts, seed: int) -> dict[str, FeatureStats]:
    out = {}
    for s in specs:
        plan_fn = protocols.fake_fvd_plan if s.kind == "fvd" else protocols.fake_fid_plan
        plan = plan_fn(coll, s, opts.protocol, seed)
        if opts.frozen_fakes:
            plan = [(v, np.zeros_like(frames)) for v, frames in plan]
        out[s.name] = _plan_stats(coll, plan, s, detectors[s.detector], opts, f"{s.name} fake")
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


def _precision_record(opts) -> dict:
    return dict(dtype="float32", allow_tf32=opts.allow_tf32, device=opts.device.type)


# Compute `metrics` (names as in protocols.STANDARD_METRICS) between real data and a fake source.
#   fake: a FakeClips callable (generator mode) or a folder/zip of generated videos (frame folders or mp4/gif files).
#   real_data: folder or zip of per-video frame folders.
#   protocol: 'styleinv' (the StyleInV release, default) or 'stylegan-v': which real clips/frames (protocols.py).
#   seed: seed of the real sampling (default: the protocol's, 1141514 for styleinv); run i uses fake seed seed + i.
#   num_runs: fake samples per metric against the same real statistics; mean and std (ddof=0) as StyleGAN-V.
#   detector_dir: folder (or None) searched for the published detector files before $STYLEINV_DETECTOR_DIR and the
#         cache folders; detector_files: {'inception' | 'i3d' | 'videomae': path} to name files explicitly.
#   frozen_fakes: replace every fake frame by its video's first frame (a motion-free control).
#   rank/world_size: this process's shard (torch.distributed must be initialised when world_size > 1).
# Returns one dict per metric (the same on every rank) with 'metric', 'results' {name: value} and everything that
# defines the number (protocol, detector file and digest, preprocessing, counts, clip length, seeds, precision, data).
def compute_metrics(metrics: Sequence[str], fake: FakeClips | str | os.PathLike, real_data: str | os.PathLike, *,
                    protocol: str = "styleinv", seed: int | None = None, num_runs: int = 1,
                    detector_dir: str | os.PathLike | None = None, detector_files: dict | None = None,
                    cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                    device: str | torch.device | None = None, rank: int = 0, world_size: int = 1,
                    batch_inception: int = 64, batch_i3d_frames: int = 512, batch_gen: int = 4, num_workers: int = 3,
                    inception_preprocess: str = "nvidia_tf1", i3d_preprocess: str = "stylegan_v",
                    unbiased: bool = False, fd_method: str = "eigh", resolution: int | None = None,
                    allow_tf32: bool = False, detector_check: str = "warn", progress: bool = False,
                    frozen_fakes: bool = False, snapshot: str | None = None) -> list[dict]:
    specs = [protocols.parse_metric(m) for m in metrics]
    if len({s.name for s in specs}) != len(specs):
        raise ValueError(f"Duplicate metric names in {list(metrics)}")
    if num_runs < 1:
        raise ValueError(f"num_runs must be >= 1, got {num_runs}")
    if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("world_size > 1 needs an initialised torch.distributed process group")
    proto = protocols.get_protocol(protocol)
    seed = proto.default_seed if seed is None else int(seed)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    opts = dnnlib.EasyDict(device=device, rank=rank, world_size=world_size, seed=seed, protocol=proto,
                           batch_inception=batch_inception, batch_i3d_frames=batch_i3d_frames, batch_gen=batch_gen,
                           num_workers=num_workers, use_cache=use_cache, progress=progress, allow_tf32=allow_tf32,
                           frozen_fakes=frozen_fakes, cache_dir=Path(cache_dir or stats_cache.default_cache_dir()))
    start = time.time()
    with _precision(allow_tf32):
        detectors = _load_detectors(specs, detector_dir, detector_files or {}, inception_preprocess,
                                    i3d_preprocess, device, detector_check)
        real = VideoCollection(real_data, resolution)
        opts.real_fingerprint = stats_cache.dataset_fingerprint(real.fingerprint_items)
        real_stats, real_cache, real_time = {}, {}, {}
        for s in specs:
            t0 = time.time()
            real_stats[s.name], real_cache[s.name] = _real_stats(s, real, detectors[s.detector], opts)
            real_time[s.name] = time.time() - t0
        fake_coll = VideoCollection(fake, resolution) if isinstance(fake, (str, os.PathLike)) else None
        t0 = time.time()
        values = {s.name: [] for s in specs}
        for run in range(num_runs):
            if fake_coll is not None:
                fake_stats = _folder_stats(fake_coll, specs, detectors, opts, seed + run)
            else:
                fake_stats = _generator_stats(fake, specs, detectors, opts, seed + run)
            for s in specs:
                value = None
                if rank == 0:
                    value = frechet_distance_from_stats(fake_stats[s.name], real_stats[s.name], unbiased, fd_method,
                                                        device)
                values[s.name].append(value)
        fake_time = time.time() - t0
        results = None
        if rank == 0:
            common = dict(
                protocol=proto.to_dict(), protocol_version=protocols.PROTOCOL_VERSION, seed=seed,
                fake_seeds=[seed + r for r in range(num_runs)], covariance="unbiased" if unbiased else "biased",
                fd_method=fd_method, precision=dict(_precision_record(opts), torch=torch.__version__),
                resolution=resolution, real_data=str(real_data), real_fingerprint=opts.real_fingerprint,
                fake="generator" if fake_coll is None else str(fake),
                fake_fingerprint=None if fake_coll is None else stats_cache.dataset_fingerprint(
                    fake_coll.fingerprint_items),
                frozen_fakes=frozen_fakes, snapshot=snapshot, num_gpus=world_size)
            results = []
            for s in specs:
                info = detectors[s.detector].info
                results.append(dict(
                    metric=s.name, **_summarise_runs(s.name, values[s.name]), **common,
                    metric_spec=s.to_dict(), num_frames=s.num_frames, stride=s.stride,
                    num_real=real_stats[s.name].num, num_fake=fake_stats[s.name].num,
                    detector=dict(info, file=Path(info["file"]).name, path=info["file"]),
                    preprocess=dict(detector=info["preprocess"], resolution=resolution),
                    real_stats_cache=real_cache[s.name], real_time=real_time[s.name], fake_time=fake_time,
                    total_time=time.time() - start, timestamp=time.time()))
    if world_size > 1:
        box = [results]
        dist.broadcast_object_list(box, src=0)
        results = box[0]
    return results


# results {name: value}; for several runs {name: mean, name_std: population std (ddof=0, StyleGAN-V's np.std)},
# with every run's value and a note beside them.
def _summarise_runs(name: str, values: list[float]) -> dict:
    if len(values) == 1:
        return dict(results={name: values[0]})
    return dict(results={name: float(np.mean(values)), f"{name}_std": float(np.std(values))}, runs=values,
                runs_note=f"mean and std (ddof=0) over {len(values)} fake seeds against one real sample (real "
                          "statistics computed once), as StyleGAN-V's --num_runs")


def _load_detectors(specs, detector_dir, detector_files, inception_preprocess, i3d_preprocess, device, check) -> dict:
    out = {}
    for name, pre in (("inception", inception_preprocess), ("i3d", i3d_preprocess), ("videomae", None)):
        if any(s.detector == name for s in specs):
            path = detector_files.get(name) or detector_dir
            out[name] = load_detector_cached(name, None if path is None else str(path), pre, str(device), check)
    return out
