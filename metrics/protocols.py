"""Metric protocols (which real and fake clips/frames FID and FVD see) and the video-folder reader they sample from.

Follows StyleGAN-V (`metric_main.py`, METRICS.md section 1) with the clip-offset RNG seeded:
- fvdV_Nf[_subsampleSf]: n = N/S frames at stride S (S = 1 without the suffix). Real: videos sorted by path, those
  shorter than n*S frames dropped, the first V kept, one clip per video starting at a uniform random offset in
  [0, L - (n-1)S - 1] drawn from a generator seeded by (seed, video index). Fake: V videos, frames 0, S, ...
- fidK[k]: K (x1000 with 'k') real frames, video-balanced (draw i -> video perm[i mod #videos], a uniform random
  frame of it; StyleInV's fid50k); fidKk_full: every real frame. Fake: K frames drawn uniformly without replacement
  from all fake frames.
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

PROTOCOL_VERSION = "styleinv-metrics/1"
STANDARD_METRICS = ("fid50k", "fid50k_full", "fvd2048_16f", "fvd2048_128f", "fvd2048_128f_subsample8f")
FID_FAKE_FRAMES_PER_VIDEO = 16  # Generator-mode FID alone: 3125 videos x frames 0..15 (StyleGAN-V).
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".gif", ".avi", ".webm", ".mov", ".mkv")


# One metric: kind 'fvd' (clips of num_frames at stride) or 'fid' (frames). num_real: clips/frames of the real
# side (None = all frames); num_fake: fake clips/frames.
@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    num_real: int | None
    num_fake: int
    num_frames: int = 1
    stride: int = 1

    @property
    def span(self) -> int:  # Frames covered by one clip.
        return (self.num_frames - 1) * self.stride + 1

    @property
    def min_video_length(self) -> int:  # StyleGAN-V's discard rule (stricter than `span`).
        return self.num_frames * self.stride

    @property
    def standard(self) -> bool:
        return self.name in STANDARD_METRICS

    def to_dict(self) -> dict:
        return dict(asdict(self), standard=self.standard, protocol_version=PROTOCOL_VERSION)


# Parse a metric name (the five standard ones, or the same grammar with other counts, e.g. fvd64_16f, fid500).
def parse_metric(name: str) -> MetricSpec:
    m = re.fullmatch(r"fvd(\d+)_(\d+)f(?:_subsample(\d+)f)?", name)
    if m:
        videos, frames, stride = int(m[1]), int(m[2]), int(m[3] or 1)
        if frames % stride or videos < 1:
            raise ValueError(f"Metric '{name}': {frames} frames are not a multiple of the subsample factor {stride}")
        return MetricSpec(name, "fvd", videos, videos, frames // stride, stride)
    m = re.fullmatch(r"fid(\d+)(k?)(_full)?", name)
    if m:
        num = int(m[1]) * (1000 if m[2] else 1)
        if num < 2:
            raise ValueError(f"Metric '{name}' needs at least 2 fake frames")
        return MetricSpec(name, "fid", None if m[3] else num, num)
    raise ValueError(f"Unknown metric '{name}'. Standard metrics: {', '.join(STANDARD_METRICS)} "
                     f"(also fvd<videos>_<frames>f[_subsample<s>f] and fid<n>[k][_full])")


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
# all of that video's sampled frames (so each video is opened once).


def _eligible(coll: VideoCollection, spec: MetricSpec, limit: int | None, what: str) -> np.ndarray:
    videos = np.flatnonzero(coll.lengths >= spec.min_video_length)
    if len(videos) == 0:
        raise ValueError(f"{spec.name}: no {what} video in '{coll.path}' has the {spec.min_video_length} frames "
                         f"needed ({spec.num_frames} frames at stride {spec.stride}); longest has {coll.lengths.max()}")
    return videos[:limit]


# Real FVD clips: the first num_real eligible videos in sorted order, one clip each, start uniform in
# [0, L - (n-1)s - 1] from a generator seeded by (seed, video index) (independent of sharding and batch size).
def real_fvd_plan(coll: VideoCollection, spec: MetricSpec, seed: int) -> list[tuple[int, np.ndarray]]:
    plan = []
    for v in _eligible(coll, spec, spec.num_real, "real"):
        offset = np.random.default_rng([seed, int(v)]).integers(0, coll.lengths[v] - spec.span + 1)
        plan.append((int(v), offset + spec.stride * np.arange(spec.num_frames)))
    return plan


# Fake FVD clips from a folder: the first num_fake eligible videos, frames 0, s, 2s, ...
def fake_fvd_plan(coll: VideoCollection, spec: MetricSpec) -> list[tuple[int, np.ndarray]]:
    videos = _eligible(coll, spec, spec.num_fake, "fake")
    return [(int(v), spec.stride * np.arange(spec.num_frames)) for v in videos]


# Real FID frames: every frame (`_full`), or num_real video-balanced draws with replacement: draw i takes video
# perm[i mod #videos] and a uniform random frame of it (StyleInV's fid50k).
def real_fid_plan(coll: VideoCollection, spec: MetricSpec, seed: int) -> list[tuple[int, np.ndarray]]:
    if spec.num_real is None:
        return [(v, np.arange(n)) for v, n in enumerate(coll.lengths) if n > 0]
    rng = np.random.default_rng(seed)
    videos = rng.permutation(len(coll))[np.arange(spec.num_real) % len(coll)]
    frames = rng.integers(0, coll.lengths[videos])
    return _group_by_video(videos, frames)


# Fake FID frames from a folder: num_fake frames uniformly without replacement from all frames (all if fewer).
def fake_fid_plan(coll: VideoCollection, spec: MetricSpec, seed: int) -> list[tuple[int, np.ndarray]]:
    chosen = uniform_frame_choice(int(coll.lengths.sum()), spec.num_fake, seed)
    starts = np.concatenate([[0], np.cumsum(coll.lengths)])
    videos = np.searchsorted(starts, chosen, side="right") - 1
    return _group_by_video(videos, chosen - starts[videos])


# Sorted global indices of `num` frames drawn uniformly without replacement out of `total` (all if total <= num).
def uniform_frame_choice(total: int, num: int, seed: int) -> np.ndarray:
    if total <= num:
        return np.arange(total)
    return np.sort(np.random.default_rng([seed, total, num]).choice(total, num, replace=False))


def _group_by_video(videos: np.ndarray, frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
    order = np.lexsort((frames, videos))
    videos, frames = videos[order], frames[order]
    cuts = np.flatnonzero(np.diff(videos)) + 1
    return [(int(v[0]), f) for v, f in zip(np.split(videos, cuts), np.split(frames, cuts), strict=True)]


# One generation serves every requested metric (fake clips always start at t = 0): videos x frames to generate.
# FVD uses the first num_fake videos; FID draws its frames uniformly from all generated frames. FID alone gives
# 3125 videos x 16 frames = exactly 50k frames (StyleGAN-V's generator mode).
def fake_generation_size(specs: list[MetricSpec]) -> tuple[int, int]:
    fvd = [s for s in specs if s.kind == "fvd"]
    fid = [s for s in specs if s.kind == "fid"]
    frames = max([s.span for s in fvd] + ([FID_FAKE_FRAMES_PER_VIDEO] if fid else [1]))
    videos = max([s.num_fake for s in fvd] + [math.ceil(s.num_fake / frames) for s in fid])
    return videos, frames
