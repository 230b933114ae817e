"""Video and image datasets (folder or zip of per-video frame folders), timestamp sampling and the infinite sampler.

Layout (StyleGAN-V / StyleInV): every directory that directly holds image files (.png/.jpg/...) is one video,
its frames sorted by file name; the root may carry a `dataset.json` with `fps`, `resolution` and `kind`
("video" or "images"). A dataset is a folder or a zip archive (uncompressed, as written by
`scripts/dataset_tool.py`) with that layout.

Indexing. Every dataset accepts any index `i >= 0`: `i % len(dataset)` picks the item (video or frame, and the
x-flip for the second half when `xflip=True`) and the random draws of that item (which frame of the video, the clip
window and timestamps, the consecutive-clip offset) come from `np.random.default_rng([seed, i])`. So
`dataset[i]` is deterministic, and `i + k * len(dataset)` gives the same item with fresh draws. `InfiniteSampler`
uses this: on every pass over the dataset it adds `pass * len(dataset)` to the indices it yields.
"""

import io
import json
import os
import posixpath
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from dnnlib.errors import UserError, UserNotice

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".webp")
TOTAL_DISTS = tuple(2**k for k in range(12))  # [1, 2, 4, ..., 2048], SPEC 1.7 `total_dists`
CONVERT_HINT = "convert the data with scripts/dataset_tool.py from-videos --resolution N"
RESIZE_HINT = f"pass resolution=N (train_stylegan.py --resolution) to center-crop and resize, or {CONVERT_HINT}"


# Any problem with the files of a dataset: the message names the dataset or file and the problem.
class DatasetError(UserError, ValueError):
    pass


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


# Innermost folders (posix, relative) without an image file: video folders left empty. Hidden ones are ignored.
def _empty_folders(dirs: list[str], images: list[str]) -> list[str]:
    parents = {posixpath.dirname(d) for d in dirs} | {posixpath.dirname(n) for n in images}
    return [d for d in dirs if d not in parents and not any(p.startswith(".") for p in d.split("/"))]


# Read-only access to the files of a folder or a zip archive. The zip handle is opened lazily and reopened in every
# process (DataLoader workers get a pickled copy without it, and a forked copy notices the new pid).
class _FileStore:
    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if os.path.isdir(self.path):
            self.is_zip = False
            names, dirs = [], []
            for root, _dirs, files in os.walk(self.path, followlinks=True):
                rel = os.path.relpath(root, self.path)
                if rel != ".":
                    dirs.append(Path(rel).as_posix())
                for f in files:
                    names.append(f if rel == "." else posixpath.join(Path(rel).as_posix(), f))
            self.names = sorted(names)
        elif os.path.isfile(self.path):
            if not zipfile.is_zipfile(self.path):
                raise DatasetError(f"{self.path}: not a folder or a zip archive")
            self.is_zip = True
            with zipfile.ZipFile(self.path) as z:
                entries = z.namelist()
            self.names = sorted(n for n in entries if not n.endswith("/"))
            dirs = [n.rstrip("/") for n in entries if n.endswith("/")]
        else:
            raise FileNotFoundError(f"Dataset not found: {self.path}")
        self.dirs = sorted(set(dirs) | {posixpath.dirname(n) for n in self.names} - {""})
        self._zip = None
        self._zip_pid = None

    def describe(self, name: str) -> str:
        return f"{self.path}:{name}" if self.is_zip else os.path.join(self.path, name)

    def read(self, name: str) -> bytes:
        if not self.is_zip:
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip.read(name)

    def __getstate__(self):
        return dict(self.__dict__, _zip=None, _zip_pid=None)


# What PIL said about a file it could not read (without the repr of our in-memory buffer).
def _pil_problem(e: Exception) -> str:
    if isinstance(e, PIL.UnidentifiedImageError):
        return "not an image format PIL can identify"
    return f"{type(e).__name__}: {e}"


# Decode image bytes to RGB (grayscale, palette and RGBA are converted; alpha is dropped). `where` names the file.
def decode_image(data: bytes, where: str) -> PIL.Image.Image:
    try:
        img = PIL.Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError...) for bad files
        raise DatasetError(f"{where}: unreadable or truncated image ({_pil_problem(e)})") from e
    return img if img.mode == "RGB" else img.convert("RGB")


# Center-crop to a square and resize (default bilinear, SPEC 4.5; PIL widens the filter's support when shrinking).
def center_crop_resize(img: PIL.Image.Image, resolution: int, resample=PIL.Image.BILINEAR) -> PIL.Image.Image:
    w, h = img.size
    if (w, h) == (resolution, resolution):
        return img
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
    return img if s == resolution else img.resize((resolution, resolution), resample)


# Timestamp sampling for one clip (SPEC 1.7, `RandomSampling.sample_one`), in frames: [0, t1, ..., t_{F-1}].
# M = min(max_limit, max_num_frames); spacing d uniform over {x in total_dists : F-2 <= x <= min(M-1, max_dist)};
# offset o uniform in [0, M-d-1] (integer, or real in fractional mode); frames o, o+d and F-3 distinct frames drawn
# from o+1 ... o+d-1; sorted, with 0 prepended. All times are <= M-1.
def sample_clip_times(rng: np.random.Generator, max_limit: int, num_frames: int = 4, max_num_frames: int = 128,
                      max_dist: int = 32, total_dists=TOTAL_DISTS, fractional: bool = False) -> np.ndarray:
    num_sample = num_frames - 1
    if num_sample < 2:
        raise ValueError(f"num_frames must be >= 3 (frame 0 plus at least 2 sampled frames), got {num_frames}")
    m = min(int(max_limit), int(max_num_frames))
    max_diff = min(m - 1, int(max_dist))
    dists = [int(d) for d in total_dists if num_sample - 1 <= d <= max_diff]
    if not dists:
        raise ValueError(f"no spacing in total_dists fits {num_frames} frames in a window of {m} frames "
                         f"with max_dist={max_dist}")
    d = dists[rng.integers(len(dists))]
    offset = rng.random() * (m - d - 1) if fractional else float(rng.integers(0, m - d))
    middle = rng.choice(np.arange(1, d), size=num_sample - 2, replace=False)
    rel = np.sort(np.concatenate([[0, d], middle]))
    return np.concatenate([[0.0], offset + rel]).astype(np.float32)


# Common part of every dataset: file listing, `dataset.json`, frame decoding with size checks, and the ADA-style
# attributes (`name`, `resolution`, `num_channels`, `label_dim`, `num_videos`, `fps`, `has_labels`). Every dataset
# takes `videos=[indices]` to keep a subset of the videos (sorted by folder name; images for the image folder).
class _DatasetBase(torch.utils.data.Dataset):
    accepts_any_index = True  # see the module docstring; InfiniteSampler adds pass * len to its indices

    def __init__(self, path, resolution: int | None, group_by_folder: bool, seed: int = 0, videos=None):
        self._store = _FileStore(path)
        self.path = self._store.path
        self.name = Path(self.path.rstrip("/\\")).name.removesuffix(".zip")
        self.seed = int(seed)
        self.meta = self._read_meta()
        self.fps = float(self.meta["fps"]) if self.meta.get("fps") is not None else None
        images = [n for n in self._store.names if _is_image(n)]
        if not images:
            raise DatasetError(f"{self.path}: empty dataset, no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
        self.empty_folders: list[str] = []  # video folders without frames (e.g. a failed extraction)
        self.num_skipped = 0  # videos left out: empty folders and, for clips, videos too short
        if group_by_folder:
            groups: dict[str, list[str]] = {}
            for n in images:
                groups.setdefault(posixpath.dirname(n), []).append(n)
            self.video_names = sorted(groups)
            self._videos = [sorted(groups[k]) for k in self.video_names]
            if videos is None:
                self.empty_folders = _empty_folders(self._store.dirs, images)
        else:
            self.video_names = images
            self._videos = [[n] for n in images]
        first_file = self._videos[0][0]
        if videos is not None:  # a subset of the videos (indices into the sorted list), e.g. a train/holdout split
            videos = [int(v) for v in videos]
            bad = [v for v in videos if not 0 <= v < len(self._videos)]
            if bad or not videos:
                raise ValueError(f"{self.path}: videos= must be a non-empty list of indices in "
                                 f"[0, {len(self._videos)}), got {bad or videos}")
            self.video_names = [self.video_names[v] for v in videos]
            self._videos = [self._videos[v] for v in videos]
        self.video_lengths = np.array([len(v) for v in self._videos], dtype=np.int64)
        self._first_size: dict[int, tuple[int, int]] = {}  # per-process cache of each video's first frame size
        self.resize = resolution is not None  # center-crop and resize files of another size (else: error)
        self.resolution = int(resolution) if resolution is not None else self._native_resolution(first_file)
        self.num_channels = 3
        self.label_dim = 0
        self.has_labels = False

    def _read_meta(self) -> dict:
        if "dataset.json" not in self._store.names:
            return {}
        where = self._store.describe("dataset.json")
        try:
            meta = json.loads(self._store.read("dataset.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{where}: invalid JSON ({e})") from e
        if not isinstance(meta, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(meta).__name__}")
        return meta

    # The size of the dataset's first file (of all videos, so that every subset of `videos=` agrees).
    def _native_resolution(self, first_file: str) -> int:
        w, h = self._header_size(first_file)
        if w != h:
            raise DatasetError(f"{self._store.describe(first_file)}: frames are {w}x{h}, not square; "
                               f"{RESIZE_HINT}")
        return w

    # Size (w, h) of an image file, read from its header.
    def _header_size(self, name: str) -> tuple[int, int]:
        try:
            with PIL.Image.open(io.BytesIO(self._store.read(name))) as img:
                return img.size
        except Exception as e:
            raise DatasetError(f"{self._store.describe(name)}: unreadable image ({_pil_problem(e)})") from e

    # Size (w, h) of the first frame of video v, read from the file header once per process.
    def _size_of(self, v: int) -> tuple[int, int]:
        if v not in self._first_size:
            self._first_size[v] = self._header_size(self._videos[v][0])
        return self._first_size[v]

    # Frame k of video v as uint8 [H, W, 3] at self.resolution.
    def _load_frame(self, v: int, k: int) -> np.ndarray:
        name = self._videos[v][k]
        where = self._store.describe(name)
        img = decode_image(self._store.read(name), where)
        if k == 0:
            self._first_size.setdefault(v, img.size)
        first = self._size_of(v)
        if img.size != first:
            raise DatasetError(f"{where}: frame size {img.size[0]}x{img.size[1]} differs from the first frame of its "
                               f"video ({first[0]}x{first[1]}, {self._videos[v][0]}); frames inside a video must "
                               f"have one size: {CONVERT_HINT}")
        if img.size != (self.resolution, self.resolution):
            if not self.resize:
                raise DatasetError(f"{where}: image is {img.size[0]}x{img.size[1]}, the dataset is "
                                   f"{self.resolution}x{self.resolution} (size of its first file); {RESIZE_HINT}")
            img = center_crop_resize(img, self.resolution)
        return np.asarray(img, dtype=np.uint8)

    # Frames `ks` of video v as uint8 [F, C, H, W], optionally mirrored (the same flip for every frame).
    def load_frames(self, v: int, ks, flip: bool = False) -> np.ndarray:
        frames = np.stack([self._load_frame(v, int(k)) for k in ks])
        if flip:
            frames = frames[:, :, ::-1]
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))

    # A whole video as uint8 [T, C, H, W].
    def load_video(self, v: int) -> np.ndarray:
        return self.load_frames(v, range(len(self._videos[v])))

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(i)])

    def _check_index(self, i) -> int:
        i = int(i)
        if i < 0:
            raise IndexError(f"{self.name}: negative index {i}")
        return i

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))

    def get_label(self, i: int) -> np.ndarray:
        return np.zeros([0], dtype=np.float32)

    @property
    def num_videos(self) -> int:
        return len(self._videos)

    @property
    def image_shape(self) -> list[int]:
        return [self.num_channels, self.resolution, self.resolution]

    @property
    def label_shape(self) -> list[int]:
        return [self.label_dim]


# Frames of a video dataset, for image-GAN and encoder training (SPEC 6). Item: (uint8 [C,H,W], float32 [0] label).
# class_aware=True ("video balance"): len = num_videos * m with m = round(total_frames / num_videos); index i ->
# video v = i % num_videos and stratum s = (i // num_videos) % m of that video; the frame is
# floor((s + u) * len_v / m) with u ~ U[0, 1) from rng([seed, i]). A uniform index therefore gives a uniform video,
# then a uniform frame of it, and one pass over the indices spreads each video's m draws evenly over all of its
# frames (long videos included). class_aware=False: index i -> the i-th frame of all frames.
# xflip doubles the length; the second half is mirrored.
class VideoFrameDataset(_DatasetBase):
    def __init__(self, path, resolution: int | None = None, class_aware: bool = True, xflip: bool = False,
                 seed: int = 0, videos=None):
        super().__init__(path, resolution, group_by_folder=True, seed=seed, videos=videos)
        _usable_videos(self)  # every video has a frame; this reports empty folders
        self.class_aware = bool(class_aware)
        self.xflip = bool(xflip)
        total = int(self.video_lengths.sum())
        self.total_frames = total
        self._base_len = self.num_videos * max(1, round(total / self.num_videos)) if class_aware else total
        self._starts = np.concatenate([[0], np.cumsum(self.video_lengths)])

    def __len__(self) -> int:
        return self._base_len * (2 if self.xflip else 1)

    # (video, frame, flip) for index i.
    def locate(self, i: int) -> tuple[int, int, bool]:
        i = self._check_index(i)
        j = i % len(self)
        flip = j >= self._base_len
        j %= self._base_len
        if self.class_aware:
            v, stratum = j % self.num_videos, j // self.num_videos
            strata = self._base_len // self.num_videos
            k = int((stratum + self._rng(i).random()) * int(self.video_lengths[v]) / strata)
            return v, min(k, int(self.video_lengths[v]) - 1), flip
        v = int(np.searchsorted(self._starts, j, side="right")) - 1
        return v, j - int(self._starts[v]), flip

    def __getitem__(self, i):
        v, k, flip = self.locate(i)
        return self.load_frames(v, [k], flip)[0], self.get_label(i)


# Plain images (e.g. the style-transfer fine-tuning set), all files of the folder or zip, sorted. Each image counts
# as a one-frame video. Item: (uint8 [C,H,W], float32 [0] label). xflip doubles the length.
class ImageFolderDataset(_DatasetBase):
    def __init__(self, path, resolution: int | None = None, xflip: bool = False, videos=None):
        super().__init__(path, resolution, group_by_folder=False, videos=videos)
        self.xflip = bool(xflip)

    def __len__(self) -> int:
        return self.num_videos * (2 if self.xflip else 1)

    def __getitem__(self, i):
        j = self._check_index(i) % len(self)
        return self.load_frames(j % self.num_videos, [0], flip=j >= self.num_videos)[0], self.get_label(i)


def _some(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


# The videos (indices) with at least `min_len` frames. Empty video folders and shorter videos are skipped and named
# in one warning ("3 of 64 videos skipped: ..."); none left is a DatasetError naming the dataset. `purpose` says
# what the frames are needed for, e.g. the config keys that set the length.
def _usable_videos(ds: _DatasetBase, min_len: int = 1, purpose: str = "") -> np.ndarray:
    keep = np.flatnonzero(ds.video_lengths >= min_len)
    short = [f"{ds.video_names[v]} ({ds.video_lengths[v]})" for v in np.flatnonzero(ds.video_lengths < min_len)]
    reasons = []
    if ds.empty_folders:
        reasons.append(f"{len(ds.empty_folders)} empty folder(s) without frames ({_some(ds.empty_folders)})")
    if short:
        reasons.append(f"{len(short)} shorter than {min_len} frames{f' ({purpose})' if purpose else ''}: "
                       f"{_some(short)}")
    ds.num_skipped = len(ds.empty_folders) + len(short)
    total = len(ds.video_lengths) + len(ds.empty_folders)
    if len(keep) == 0:
        raise DatasetError(f"{ds.path}: no usable video, all {total} skipped: {'; '.join(reasons)}. Use longer "
                           "videos or lower the frame counts")
    if ds.num_skipped:
        warnings.warn(f"{ds.name}: {ds.num_skipped} of {total} videos skipped: {'; '.join(reasons)}", UserNotice,
                      stacklevel=3)
    return keep


# Fewest frames a video needs for `sample_clip_times`: one more than the smallest spacing in total_dists that fits
# the clip (>= num_frames - 2) and is allowed (<= max_dist, <= max_num_frames - 1). ValueError if none is.
def _shortest_clip_video(num_frames: int, max_num_frames: int, max_dist: int, total_dists) -> int:
    fits = [d for d in total_dists if num_frames - 2 <= d <= min(max_dist, max_num_frames - 1)]
    if not fits:
        raise ValueError(f"No clip of {num_frames} frames fits max_dist={max_dist}, max_num_frames={max_num_frames}: "
                         f"its spacing (one of {', '.join(map(str, total_dists))}) must be >= {num_frames - 2} and "
                         "<= both max_dist and max_num_frames - 1")
    return min(fits) + 1


# Real clips for StyleInV training (SPEC 4.5): item (frames uint8 [F,C,H,W], times float32 [F] in frames,
# times[0] == 0). Index i -> video (i % num_videos among the videos kept), a window of M = min(len, max_num_frames)
# frames at a uniform start, then integer timestamps inside it by `sample_clip_times` (SPEC 1.7). Videos shorter
# than `min_video_len` (default max_num_frames, as the release) are skipped. xflip doubles the length and mirrors
# every frame of the clip in the second half.
class VideoClipDataset(_DatasetBase):
    def __init__(self, path, resolution: int | None = None, max_num_frames: int = 128, num_frames: int = 4,
                 max_dist: int = 32, total_dists=TOTAL_DISTS, min_video_len: int | None = None, xflip: bool = False,
                 seed: int = 0, videos=None):
        super().__init__(path, resolution, group_by_folder=True, seed=seed, videos=videos)
        self.max_num_frames, self.num_frames, self.max_dist = int(max_num_frames), int(num_frames), int(max_dist)
        self.total_dists = tuple(int(d) for d in total_dists)
        self.xflip = bool(xflip)
        min_len = max(int(min_video_len) if min_video_len is not None else self.max_num_frames,
                      _shortest_clip_video(self.num_frames, self.max_num_frames, self.max_dist, self.total_dists))
        purpose = f"clips of window max_num_frames={self.max_num_frames}, max_dist={self.max_dist}"
        self.video_ids = _usable_videos(self, min_len, purpose)
        sample_clip_times(np.random.default_rng(0), int(self.video_lengths[self.video_ids].min()), self.num_frames,
                          self.max_num_frames, self.max_dist, self.total_dists)  # fail now if nothing fits

    def __len__(self) -> int:
        return len(self.video_ids) * (2 if self.xflip else 1)

    @property
    def num_videos(self) -> int:  # videos long enough for a clip
        return len(self.video_ids)

    # (video, absolute frame indices, times in frames, flip) for index i.
    def locate(self, i: int) -> tuple[int, np.ndarray, np.ndarray, bool]:
        i = self._check_index(i)
        j = i % len(self)
        v = int(self.video_ids[j % len(self.video_ids)])
        rng = self._rng(i)
        length = int(self.video_lengths[v])
        window = min(length, self.max_num_frames)
        start = int(rng.integers(0, length - window + 1))
        times = sample_clip_times(rng, window, self.num_frames, self.max_num_frames, self.max_dist, self.total_dists)
        return v, start + times.astype(np.int64), times, j >= len(self.video_ids)

    def __getitem__(self, i):
        v, ks, times, flip = self.locate(i)
        return self.load_frames(v, ks, flip), times


# Consecutive clips for metrics (SPEC 9.4, FVD reals): one clip per video, `num_frames` frames at `stride` from a
# seeded random offset (or offset 0 with random_offset=False). Videos shorter than (num_frames-1)*stride+1 are
# skipped; with `max_videos`, a seeded random subset of the rest is used. Item i: frames uint8 [n,C,H,W] of the
# i-th video kept.
class ConsecutiveClipDataset(_DatasetBase):
    def __init__(self, path, num_frames: int, stride: int = 1, resolution: int | None = None, seed: int = 0,
                 max_videos: int | None = None, random_offset: bool = True, videos=None):
        super().__init__(path, resolution, group_by_folder=True, seed=seed, videos=videos)
        self.num_frames, self.stride, self.random_offset = int(num_frames), int(stride), bool(random_offset)
        if self.num_frames < 1 or self.stride < 1:
            raise ValueError(f"num_frames and stride must be >= 1, got {num_frames}, {stride}")
        self.span = (self.num_frames - 1) * self.stride + 1
        ids = _usable_videos(self, self.span, f"{self.num_frames} frames at stride {self.stride}")
        if max_videos is not None and max_videos < len(ids):
            ids = np.sort(np.random.default_rng([self.seed, 2**31]).choice(ids, size=int(max_videos), replace=False))
        self.video_ids = ids

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def num_videos(self) -> int:  # videos used (long enough, at most max_videos)
        return len(self.video_ids)

    # (video, absolute frame indices) for index i.
    def locate(self, i: int) -> tuple[int, np.ndarray]:
        i = self._check_index(i)
        v = int(self.video_ids[i % len(self)])
        room = int(self.video_lengths[v]) - self.span
        offset = int(self._rng(i).integers(0, room + 1)) if self.random_offset else 0
        return v, offset + self.stride * np.arange(self.num_frames)

    def __getitem__(self, i):
        v, ks = self.locate(i)
        return self.load_frames(v, ks)


# True when the dataset at `path` is a plain image folder: `dataset.json` says kind "images" or has ADA's "labels"
# key (an ADA image dataset), or no image file sits in a sub-folder. Otherwise it is a video dataset (one
# sub-folder per video).
def is_image_folder(path) -> bool:
    store = _FileStore(path)
    if "dataset.json" in store.names:
        try:
            meta = json.loads(store.read("dataset.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{store.describe('dataset.json')}: invalid JSON ({e})") from e
        if isinstance(meta, dict) and meta.get("kind") in ("images", "video"):
            return meta["kind"] == "images"
        if isinstance(meta, dict) and "labels" in meta:
            return True
    return not any("/" in n for n in store.names if _is_image(n))


# Dataset factory. kind: 'frames' (video frames, or an image folder when auto-detected by `is_image_folder`, in
# which case class_aware and seed are ignored), 'clips', 'consecutive', 'images'.
def open_dataset(path, kind: str = "frames", **kwargs) -> _DatasetBase:
    if kind == "frames":
        if is_image_folder(path):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("class_aware", "seed")}
            return ImageFolderDataset(path, **kwargs)
        return VideoFrameDataset(path, **kwargs)
    kinds = {"clips": VideoClipDataset, "consecutive": ConsecutiveClipDataset, "images": ImageFolderDataset}
    if kind not in kinds:
        raise ValueError(f"unknown dataset kind {kind!r}; expected 'frames', 'clips', 'consecutive' or 'images'")
    return kinds[kind](path, **kwargs)


# Infinite stream of dataset indices for one rank. A permutation from `seed` (identical on every rank) is walked
# forever; after each step the visited entry is swapped with a random one among the previous
# window_size * len entries of the same pass, so every pass visits each item once, in an order that keeps
# changing from pass to pass. Rank r yields the positions
# p with p % num_replicas == r, so ranks never overlap. For datasets with `accepts_any_index` (ours), pass k adds
# k * len to the index, so items with random draws (frame, clip window, timestamps) get fresh draws on each pass.
# With group_size g > 1 the walk is over the len / g groups of consecutive indices, each yielded whole and in order
# (a synthetic dataset's videos of one content; see training/sprites.py).
class InfiniteSampler(torch.utils.data.Sampler):
    def __init__(self, dataset, rank: int = 0, num_replicas: int = 1, seed: int = 0, shuffle: bool = True,
                 window_size: float = 0.5, fresh_draws: bool | None = None, group_size: int = 1):
        if len(dataset) == 0:
            raise ValueError("InfiniteSampler: the dataset is empty")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"InfiniteSampler: rank {rank} not in [0, {num_replicas})")
        if group_size < 1 or len(dataset) % group_size:
            raise ValueError(f"InfiniteSampler: {len(dataset)} items do not split into groups of {group_size}")
        self.size, self.group_size = len(dataset), int(group_size)
        self.rank, self.num_replicas, self.seed = int(rank), int(num_replicas), int(seed)
        self.shuffle, self.window_size = bool(shuffle), float(window_size)
        self.fresh_draws = getattr(dataset, "accepts_any_index", False) if fresh_draws is None else bool(fresh_draws)

    def __iter__(self) -> Iterator[int]:
        g = self.group_size
        n = self.size // g
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        window = int(np.rint(n * self.window_size)) if self.shuffle else 0
        pos = 0
        while True:
            k = pos % n
            if pos % self.num_replicas == self.rank:
                first = int(order[k]) * g + (pos // n) * self.size * self.fresh_draws
                yield from range(first, first + g)
            if window >= 2:  # swap with an entry already visited in this pass, so every pass is a permutation
                j = k - int(rng.integers(min(window, k + 1)))
                order[k], order[j] = order[j], order[k]
            pos += 1


# Writes a dataset (folder or uncompressed zip) into a temporary location and moves it into place on `commit`, so
# an interrupted run leaves nothing at `dest`. Use as a context manager; an exception aborts and cleans up.
class DatasetWriter:
    def __init__(self, dest: str | os.PathLike, overwrite: bool = False):
        self.dest = Path(dest)
        self.is_zip = self.dest.suffix.lower() == ".zip"
        if self.dest.exists() and not overwrite:
            raise FileExistsError(f"{self.dest} already exists (pass overwrite=True / --overwrite to replace it)")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{self.dest.name}.tmp-"
        if self.is_zip:
            fd, tmp = tempfile.mkstemp(prefix=prefix, dir=self.dest.parent)
            os.close(fd)
            self.tmp = Path(tmp)
            self._zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED)
        else:
            self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=self.dest.parent))
        self.names: set[str] = set()
        self.committed = False

    # Add one file at the relative posix path `name`.
    def add(self, name: str, data: bytes) -> None:
        if name in self.names:
            raise ValueError(f"{self.dest}: duplicate file name {name}")
        self.names.add(name)
        if self.is_zip:
            self._zip.writestr(name, data)
        else:
            target = self.tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def add_image(self, name: str, image: np.ndarray, compress_level: int = 1) -> None:
        buf = io.BytesIO()
        PIL.Image.fromarray(image).save(buf, format="PNG", compress_level=compress_level)
        self.add(name, buf.getvalue())

    def add_json(self, name: str, obj, indent: int | None = 1) -> None:
        self.add(name, json.dumps(obj, indent=indent).encode())

    def commit(self) -> Path:
        if self.is_zip:
            self._zip.close()
        if self.dest.exists():  # overwrite: remove the old dataset only now that the new one is complete
            shutil.rmtree(self.dest) if self.dest.is_dir() else self.dest.unlink()
        os.replace(self.tmp, self.dest)
        self.committed = True
        return self.dest

    def abort(self) -> None:
        if self.is_zip:
            self._zip.close()
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self):
        return self

    # Commit on a clean exit, abort (remove the temporary files) on any exception, KeyboardInterrupt included.
    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif not self.committed:
            self.commit()
        return False
