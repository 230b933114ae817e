"""Metric protocols (which real and fake clips/frames FID and FVD see) and the video-folder reader they sample from.

Two protocols, chosen per call (docs/METRICS.md has both side by side, with the source lines they follow):
- `styleinv` (default; the StyleInV release's scripts/calc_metrics_video.py, which gave the paper's numbers):
  videos with >= (n-1)s+1 frames are eligible, V of them drawn by a seeded permutation (seed 1141514); fidK draws
  min(#frames, K) frames video-balanced (video perm[i mod #videos], then a uniform frame); fidK_full draws
  #frames such frames.
- `stylegan-v` (universome/stylegan-v): videos with >= n*s frames are eligible, the first V in sorted order;
  fidK takes the first min(#frames, K) frames in sorted order, fidK_full every frame.
In both, a real clip starts at a uniform offset in [0, L - (n-1)s - 1] (seeded per video here; unseeded in both
references), and fake clips start at t = 0. Metric names:
- fvdV_Nf[_subsampleSf][_videomae]: n = N/S frames at stride S; V real and V fake clips; I3D logits, or VideoMAE-v2
  features with `_videomae` (the content-debiased FVD of Ge et al., CVPR 2024).
- fidK[k][_full]: K (x1000 with 'k') frames; Inception pool features.
In generator mode each metric's fakes are fixed by its own definition (never by the other metrics of a call):
videos 0, 1, ... of the seed, each generated with `generated_frames` frames (n*s for FVD, 16 for FID) from t = 0.
"""

import math
import os
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import PIL.Image

from training.dataset import decode_image

PROTOCOL_VERSION = "styleinv-metrics/2"
STANDARD_METRICS = ("fid50k", "fid50k_full", "fvd2048_16f", "fvd2048_128f", "fvd2048_128f_subsample8f",
                    "fvd2048_16f_videomae", "fvd2048_128f_videomae")
FID_FAKE_FRAMES_PER_VIDEO = 16  # Generator-mode FID: frames t = 0..15 of ceil(K / 16) videos (3125 for fid50k).
FVD_DETECTORS = ("i3d", "videomae")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".gif", ".avi", ".webm", ".mov", ".mkv")


# A sampling protocol, as data. min_length: eligibility of a clip's video ('span': (n-1)s+1 frames, 'window':
# n*s). video_order: which V eligible videos ('shuffled': the first V of a seeded permutation, 'sorted': the first
# V by path). fid_real / fid_fake_folder: 'balanced' (draw i -> video perm[i mod #videos], uniform frame),
# 'uniform' (frames without replacement), 'sorted' (the first frames by path), 'all' (every frame, `_full`).
@dataclass(frozen=True)
class Protocol:
    name: str
    default_seed: int
    min_length: str
    video_order: str
    fid_real: str
    fid_full_real: str
    fid_fake_folder: str
    source: str

    def min_video_length(self, spec: "MetricSpec") -> int:
        return spec.span if self.min_length == "span" else spec.num_frames * spec.stride

    def to_dict(self) -> dict:
        return dict(asdict(self), version=PROTOCOL_VERSION)


PROTOCOLS = {
    "styleinv": Protocol("styleinv", default_seed=1141514, min_length="span", video_order="shuffled",
                         fid_real="balanced", fid_full_real="balanced", fid_fake_folder="uniform",
                         source="johannwyh/StyleInV scripts/calc_metrics_video.py, training/dataset_styleinv.py"),
    "stylegan-v": Protocol("stylegan-v", default_seed=0, min_length="window", video_order="sorted",
                           fid_real="sorted", fid_full_real="all", fid_fake_folder="sorted",
                           source="universome/stylegan-v src/metrics/metric_utils.py, src/training/dataset.py"),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"Unknown protocol '{name}'; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


# One metric: kind 'fvd' (clips of num_frames at stride) or 'fid' (frames). num_real: clips/frames of the real
# side (None = all frames); num_fake: fake clips/frames; detector: 'inception', 'i3d' or 'videomae'.
@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    num_real: int | None
    num_fake: int
    num_frames: int = 1
    stride: int = 1
    detector: str = "inception"

    @property
    def span(self) -> int:  # Frames covered by one clip.
        return (self.num_frames - 1) * self.stride + 1

    # Frames per generated fake video: n*s for FVD (so fvd128f and its subsample8f share one generation), 16 for FID.
    @property
    def generated_frames(self) -> int:
        return self.num_frames * self.stride if self.kind == "fvd" else FID_FAKE_FRAMES_PER_VIDEO

    # Fake videos generated for this metric (each one of `generated_frames` frames, from t = 0).
    @property
    def generated_videos(self) -> int:
        return self.num_fake if self.kind == "fvd" else math.ceil(self.num_fake / FID_FAKE_FRAMES_PER_VIDEO)

    @property
    def standard(self) -> bool:
        return self.name in STANDARD_METRICS

    def to_dict(self) -> dict:
        return dict(asdict(self), standard=self.standard)


# Parse a metric name (the standard ones, or the same grammar with other counts, e.g. fvd64_16f, fid500).
def parse_metric(name: str) -> MetricSpec:
    m = re.fullmatch(r"fvd(\d+)_(\d+)f(?:_subsample(\d+)f)?(?:_(videomae))?", name)
    if m:
        videos, frames, stride = int(m[1]), int(m[2]), int(m[3] or 1)
        if frames % stride or videos < 1:
            raise ValueError(f"Metric '{name}': {frames} frames are not a multiple of the subsample factor {stride}")
        return MetricSpec(name, "fvd", videos, videos, frames // stride, stride, m[4] or "i3d")
    m = re.fullmatch(r"fid(\d+)(k?)(_full)?", name)
    if m:
        num = int(m[1]) * (1000 if m[2] else 1)
        if num < 2:
            raise ValueError(f"Metric '{name}' needs at least 2 fake frames")
        return MetricSpec(name, "fid", None if m[3] else num, num)
    raise ValueError(f"Unknown metric '{name}'. Standard metrics: {', '.join(STANDARD_METRICS)} "
                     f"(also fvd<videos>_<frames>f[_subsample<s>f][_videomae] and fid<n>[k][_full])")


# ----------------------------------------------------------------------------------------------------------------
# Reading videos.


# Sorted videos of a folder or zip: every directory holding image files is one video (its frames sorted by name),
# and every video file (mp4, gif, ...) is one video. `resolution` centre-crops to a square and resizes (bilinear).
class VideoCollection:
    def __init__(self, path: str | os.PathLike, resolution: int | None = None):
        self.path, self.resolution = Path(path), resolution
        self.name = self.path.stem
        self._zip = None
        self._zip_pid = None
        if self.path.is_dir():
            entries = self._scan_dir()
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            entries = self._scan_zip()
        else:
            raise FileNotFoundError(f"Video data '{path}' is neither a folder nor a zip file")
        videos = {}
        for rel, _, _ in entries:
            parent, _, base = rel.rpartition("/")
            if base.lower().endswith(IMAGE_EXTS):
                videos.setdefault(("frames", parent), []).append(rel)
            elif base.lower().endswith(VIDEO_EXTS) and not self._zip_path:
                videos[("file", rel)] = [rel]
        if not videos:
            raise ValueError(f"'{path}' holds no frame folders or video files")
        ordered = sorted(videos.items(), key=lambda item: item[0][1])
        self.videos = [(kind, key, sorted(files)) for (kind, key), files in ordered]
        self.lengths = np.array([len(f) if k == "frames" else _video_file_length(self.path / f[0])
                                 for k, _, f in self.videos], dtype=np.int64)
        self.fingerprint_items = sorted(entries)

    @property
    def _zip_path(self) -> bool:
        return self.path.is_file()

    def _scan_dir(self) -> list[tuple[str, int, int]]:
        entries = []
        for root, dirs, files in os.walk(self.path):
            dirs.sort()
            for f in files:
                if f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS):
                    st = os.stat(os.path.join(root, f))
                    entries.append((Path(root, f).relative_to(self.path).as_posix(), st.st_size, st.st_mtime_ns))
        return entries

    def _scan_zip(self) -> list[tuple[str, int, int]]:
        st = os.stat(self.path)
        with zipfile.ZipFile(self.path) as z:
            return [(i.filename, i.file_size, st.st_mtime_ns) for i in z.infolist()
                    if i.filename.lower().endswith(IMAGE_EXTS)]

    def __len__(self) -> int:
        return len(self.videos)

    # Frames `indices` of video `v` as uint8 [len(indices), 3, H, W] (repeats allowed, any order).
    def read_frames(self, v: int, indices) -> np.ndarray:
        kind, key, files = self.videos[v]
        indices = [int(i) for i in indices]
        if indices and (min(indices) < 0 or max(indices) >= self.lengths[v]):
            raise IndexError(f"Frame {max(indices)} out of range for video '{key}' ({self.lengths[v]} frames)")
        unique = sorted(set(indices))
        if kind == "frames":
            decoded = {i: self._load_image(files[i]) for i in unique}
        else:
            decoded = _read_video_file(self.path / files[0], unique)
        frames = [self._to_chw(decoded[i], key) for i in indices]
        return np.stack(frames) if frames else np.zeros((0, 3, 1, 1), np.uint8)

    def _load_image(self, rel: str) -> PIL.Image.Image:
        if self._zip_path:
            if self._zip is None or self._zip_pid != os.getpid():  # One handle per (worker) process.
                self._zip, self._zip_pid = zipfile.ZipFile(self.path), os.getpid()
            return decode_image(self._zip.read(rel), f"{self.path}:{rel}")
        return decode_image((self.path / rel).read_bytes(), str(self.path / rel))

    def _to_chw(self, img, key: str) -> np.ndarray:
        if not isinstance(img, PIL.Image.Image):
            img = PIL.Image.fromarray(np.asarray(img)).convert("RGB")
        if self.resolution is not None:
            w, h = img.size
            s = min(w, h)
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            img = img.resize((self.resolution, self.resolution), PIL.Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
        if not hasattr(self, "_frame_shape"):
            self._frame_shape = arr.shape
        elif arr.shape != self._frame_shape:
            raise ValueError(f"Video '{key}' in '{self.path}' has frames of shape {arr.shape}, others "
                             f"{self._frame_shape}; pass --resolution N to resize them")
        return arr

    def __getstate__(self):  # Zip handles do not cross process boundaries.
        return dict(self.__dict__, _zip=None, _zip_pid=None)


def _video_file_length(path: Path) -> int:
    import imageio.v2 as iio
    with iio.get_reader(path) as r:
        n = r.count_frames() if hasattr(r, "count_frames") else r.get_length()
    if not math.isfinite(n):
        raise ValueError(f"Cannot count the frames of '{path}'")
    return int(n)


def _read_video_file(path: Path, indices: list[int]) -> dict:
    import imageio.v2 as iio
    wanted, out = set(indices), {}
    with iio.get_reader(path) as r:
        for i, frame in enumerate(r):
            if i in wanted:
                frame = np.asarray(frame)
                out[i] = frame[..., :3] if frame.ndim == 3 else frame
            if len(out) == len(wanted):
                break
    if len(out) != len(wanted):
        raise ValueError(f"'{path}' ended before frame {max(wanted)}")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Sampling plans: lists of (video index, frame indices). One entry per FVD clip; for FID one entry per video with
# all of that video's sampled frames (so each video is opened once). Every random choice comes from its own
# generator seeded by (seed, stream[, video]), so plans do not depend on sharding, batch size or metric order.
_REAL_VIDEOS, _FAKE_VIDEOS, _FID_DRAWS, _CLIP_OFFSET = 0, 1, 2, 3


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


# The clips' videos: eligible ones (protocol.min_length), then the first `limit` by path or of a seeded permutation
# (returned sorted, so videos are read in order).
def _clip_videos(coll: VideoCollection, spec: MetricSpec, protocol: Protocol, seed: int, stream: int,
                 what: str) -> np.ndarray:
    need = protocol.min_video_length(spec)
    videos = np.flatnonzero(coll.lengths >= need)
    if len(videos) == 0:
        raise ValueError(f"{spec.name}: no {what} video in '{coll.path}' has the {need} frames needed "
                         f"({spec.num_frames} frames at stride {spec.stride}, {protocol.name} protocol); longest "
                         f"has {coll.lengths.max()}")
    limit = spec.num_real if what == "real" else spec.num_fake
    if protocol.video_order == "shuffled":
        return np.sort(videos[_rng(seed, stream).permutation(len(videos))[:limit]])
    return videos[:limit]


# Real FVD clips: one per selected video, start uniform in [0, L - (n-1)s - 1] from a generator seeded by
# (seed, video index).
def real_fvd_plan(coll: VideoCollection, spec: MetricSpec, protocol: Protocol,
                  seed: int) -> list[tuple[int, np.ndarray]]:
    plan = []
    for v in _clip_videos(coll, spec, protocol, seed, _REAL_VIDEOS, "real"):
        offset = _rng(seed, _CLIP_OFFSET, int(v)).integers(0, coll.lengths[v] - spec.span + 1)
        plan.append((int(v), offset + spec.stride * np.arange(spec.num_frames)))
    return plan


# Fake FVD clips from a folder: one per selected video, frames 0, s, 2s, ...
def fake_fvd_plan(coll: VideoCollection, spec: MetricSpec, protocol: Protocol,
                  seed: int) -> list[tuple[int, np.ndarray]]:
    videos = _clip_videos(coll, spec, protocol, seed, _FAKE_VIDEOS, "fake")
    return [(int(v), spec.stride * np.arange(spec.num_frames)) for v in videos]


# Real FID frames: min(#frames, K) of them (#frames for `_full`), chosen by the protocol's rule:
# 'balanced' draw i takes video perm[i mod #videos] and a uniform frame of it (StyleInV), 'sorted' the first
# frames by path (StyleGAN-V's fid50k), 'all' every frame.
def real_fid_plan(coll: VideoCollection, spec: MetricSpec, protocol: Protocol,
                  seed: int) -> list[tuple[int, np.ndarray]]:
    rule = protocol.fid_full_real if spec.num_real is None else protocol.fid_real
    total = int(coll.lengths.sum())
    num = total if spec.num_real is None else min(total, spec.num_real)
    if rule in ("all", "sorted"):
        return _frames_at(coll, np.arange(num))
    rng = _rng(seed, _FID_DRAWS)
    nonempty = np.flatnonzero(coll.lengths > 0)
    videos = nonempty[rng.permutation(len(nonempty))][np.arange(num) % len(nonempty)]
    return _group_by_video(videos, rng.integers(0, coll.lengths[videos]))


# Fake FID frames from a folder: min(#frames, K), uniformly without replacement ('uniform', StyleInV) or the first
# by path ('sorted', StyleGAN-V).
def fake_fid_plan(coll: VideoCollection, spec: MetricSpec, protocol: Protocol,
                  seed: int) -> list[tuple[int, np.ndarray]]:
    total = int(coll.lengths.sum())
    if protocol.fid_fake_folder == "sorted":
        return _frames_at(coll, np.arange(min(total, spec.num_fake)))
    return _frames_at(coll, uniform_frame_choice(total, spec.num_fake, seed))


# Sorted global indices of `num` frames drawn uniformly without replacement out of `total` (all if total <= num).
def uniform_frame_choice(total: int, num: int, seed: int) -> np.ndarray:
    if total <= num:
        return np.arange(total)
    return np.sort(np.random.default_rng([seed, total, num]).choice(total, num, replace=False))


# Global frame indices (videos concatenated in order) -> plan entries.
def _frames_at(coll: VideoCollection, chosen: np.ndarray) -> list[tuple[int, np.ndarray]]:
    starts = np.concatenate([[0], np.cumsum(coll.lengths)])
    videos = np.searchsorted(starts, chosen, side="right") - 1
    return _group_by_video(videos, chosen - starts[videos])


def _group_by_video(videos: np.ndarray, frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
    order = np.lexsort((frames, videos))
    videos, frames = videos[order], frames[order]
    cuts = np.flatnonzero(np.diff(videos)) + 1
    return [(int(v[0]), f) for v, f in zip(np.split(videos, cuts), np.split(frames, cuts), strict=True)]


# Generator mode: the fake generations a call needs, {frames per video: videos}. Metrics with the same
# generated_frames share one generation and each takes its first generated_videos videos, which are the same videos
# (same seeds, same frame count, same batches) as when the metric is computed alone.
def fake_generation_passes(specs: list[MetricSpec]) -> dict[int, int]:
    passes = {}
    for s in specs:
        passes[s.generated_frames] = max(passes.get(s.generated_frames, 0), s.generated_videos)
    return dict(sorted(passes.items()))
