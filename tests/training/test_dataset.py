"""Tests for training/dataset.py: sampling rules, layouts, conversions, errors, workers and the sampler."""

import pickle
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from training.dataset import (
    ConsecutiveClipDataset,
    DatasetError,
    DatasetWriter,
    ImageFolderDataset,
    InfiniteSampler,
    VideoClipDataset,
    VideoFrameDataset,
    open_dataset,
    sample_clip_times,
)


# A frame whose pixels encode (video, frame): R = video, G = frame % 256, B = frame // 256.
def _coded_frame(v: int, k: int, size=(4, 4)) -> np.ndarray:
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = v, k % 256, k // 256
    return frame


def _decode(frame_chw: np.ndarray) -> tuple[int, int]:
    return int(frame_chw[0, 0, 0]), int(frame_chw[1, 0, 0]) + 256 * int(frame_chw[2, 0, 0])


# Write videos with the given lengths as a folder (and optionally the same files as a zip).
def _make_videos(root: Path, lengths, size=(4, 4), meta=None) -> Path:
    for v, n in enumerate(lengths):
        (root / f"vid{v:03d}").mkdir(parents=True)
        for k in range(n):
            PIL.Image.fromarray(_coded_frame(v, k, size)).save(root / f"vid{v:03d}" / f"{k:05d}.png")
    if meta is not None:
        (root / "dataset.json").write_text(__import__("json").dumps(meta))
    return root


def _zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return dest


def test_class_aware_sampling_is_uniform_over_videos(tmp_path):
    lengths = [2, 10, 100]
    root = _make_videos(tmp_path / "d", lengths)
    ds = VideoFrameDataset(root, class_aware=True, seed=0)
    # Indices as InfiniteSampler yields them over many passes (i + pass * len; see the module docstring).
    draws = np.random.default_rng(0).integers(0, 50 * len(ds), size=3000)
    located = [ds.locate(i) for i in draws]
    videos = np.bincount([v for v, _, _ in located], minlength=3)
    assert np.all(np.abs(videos - 1000) < 130), videos  # 5 binomial standard deviations
    frames_long = np.bincount([k for v, k, _ in located if v == 2], minlength=100)
    assert (frames_long > 0).sum() >= 95 and frames_long.max() < 30  # ~10 per frame, uniform over frames
    one_pass = sorted(k for v, k, _ in map(ds.locate, range(len(ds))) if v == 2)
    assert len(set(one_pass)) >= 30 and np.diff([0, *one_pass, 100]).max() <= 6  # 37 draws spread over the video
    for i in draws[:20]:  # decoded content is the located frame
        v, k, _ = ds.locate(i)
        assert _decode(ds[i][0]) == (v, k)
    assert ds[5][1].shape == (0,) and ds[5][1].dtype == np.float32


def test_frame_sampling_without_class_aware_is_uniform_over_frames(tmp_path):
    lengths = [2, 10, 100]
    ds = VideoFrameDataset(_make_videos(tmp_path / "d", lengths), class_aware=False)
    assert len(ds) == sum(lengths)
    expected = [(v, k) for v, n in enumerate(lengths) for k in range(n)]
    assert [_decode(ds[i][0]) for i in range(len(ds))] == expected


def test_clip_sampling_follows_spec_1_7(tmp_path):
    lengths = [130, 160]
    ds = VideoClipDataset(_make_videos(tmp_path / "d", lengths), max_num_frames=128, num_frames=4, max_dist=32)
    spacings = []
    for i in range(1500):
        v, ks, t, flip = ds.locate(i)
        assert t.dtype == np.float32 and t[0] == 0 and np.all(np.diff(t) >= 0) and np.all(t == np.round(t))
        d = t[3] - t[1]
        assert d in (2, 4, 8, 16, 32) and 1 <= t[2] - t[1] <= d - 1  # spacing set, middle frame inside
        assert t[3] <= 127 and ks[-1] < lengths[v]  # window bound
        start = ks[0]
        assert 0 <= start <= lengths[v] - 128 and np.array_equal(ks, start + t.astype(int))
        spacings.append(d)
    counts = np.bincount(np.log2(spacings).astype(int), minlength=6)[1:]
    assert np.all(np.abs(counts - 300) < 90), counts  # uniform over {2, 4, 8, 16, 32}
    for i in range(5):
        frames, times = ds[i]
        v, ks, _, _ = ds.locate(i)
        assert frames.shape == (4, 3, 4, 4) and frames.dtype == np.uint8
        assert [_decode(f) for f in frames] == [(v, int(k)) for k in ks]
        assert np.array_equal(times, ds.locate(i)[2])


def test_clip_times_large_max_dist_and_fractional():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(600):
        t = sample_clip_times(rng, 128, max_dist=128)
        seen.add(int(t[3] - t[1]))
        f = sample_clip_times(rng, 128, max_dist=32, fractional=True)
        assert f[0] == 0 and np.allclose(np.diff(f[1:]), np.round(np.diff(f[1:])), atol=1e-4)  # integer spacings
        assert f[3] <= 127
    assert seen == {2, 4, 8, 16, 32, 64}  # 128 > M - 1 = 127 is excluded
    assert any(sample_clip_times(rng, 128, fractional=True)[1] % 1 != 0 for _ in range(10))


def test_clip_dataset_skips_short_videos_and_errors_when_none_fit(tmp_path):
    root = _make_videos(tmp_path / "d", [20, 40])
    with pytest.warns(UserWarning, match="1 of 2 videos skipped: 1 shorter than 32 frames"):
        ds = VideoClipDataset(root, max_num_frames=32)
    assert {ds.locate(i)[0] for i in range(50)} == {1}
    with pytest.raises(DatasetError, match="no usable video, all 2 skipped: 2 shorter than 128"):
        VideoClipDataset(root, max_num_frames=128)
    with pytest.raises(DatasetError, match="no usable video"):
        ConsecutiveClipDataset(root, num_frames=16, stride=4)


def test_empty_folders_and_short_videos_are_counted_and_named(tmp_path):
    root = _make_videos(tmp_path / "d", [20, 40, 40])
    for name in ("empty_a", "nested/empty_b", ".hidden"):
        (root / name).mkdir(parents=True)
    with pytest.warns(UserWarning) as record:
        ds = VideoClipDataset(root, max_num_frames=32)
    message, = [str(w.message) for w in record]
    assert message == ("d: 3 of 5 videos skipped: 2 empty folder(s) without frames (empty_a, nested/empty_b); "
                       "1 shorter than 32 frames (clips of window max_num_frames=32, max_dist=32): vid000 (20)")
    assert (ds.num_videos, ds.num_skipped) == (2, 3)
    with pytest.warns(UserWarning, match="2 of 5 videos skipped: 2 empty folder"):
        assert VideoFrameDataset(root).num_videos == 3
    with zipfile.ZipFile(tmp_path / "e.zip", "w") as z:
        z.writestr("vid/00000.png", (root / "vid001" / "00000.png").read_bytes())
        z.writestr("blank/", b"")
    with pytest.warns(UserWarning, match="1 of 2 videos skipped: 1 empty folder.*blank"):
        VideoFrameDataset(tmp_path / "e.zip")


def test_shortest_clip_video_follows_max_dist(tmp_path):
    # 4-frame clips need a spacing d >= 2 from total_dists: with min_video_len=1 a 3-frame video (d=2) fits, a
    # 2-frame one does not; max_dist=1 admits no spacing at all.
    root = _make_videos(tmp_path / "d", [2, 3])
    with pytest.warns(UserWarning, match="1 of 2 videos skipped: 1 shorter than 3 frames"):
        ds = VideoClipDataset(root, max_num_frames=32, min_video_len=1)
    v, ks, times, _ = ds.locate(0)
    assert v == 1 and list(times) == [0, 0, 1, 2] and list(ks) == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="No clip of 4 frames fits max_dist=1"):
        VideoClipDataset(root, max_num_frames=32, max_dist=1)


def test_consecutive_clips(tmp_path):
    lengths = [10, 20, 30]
    root = _make_videos(tmp_path / "d", lengths)
    ds = ConsecutiveClipDataset(root, num_frames=4, stride=3, seed=5)
    assert len(ds) == ds.num_videos == 3
    offsets = []
    for i in range(3):
        ids = [_decode(f) for f in ds[i]]
        assert [v for v, _ in ids] == [i] * 4
        ks = [k for _, k in ids]
        assert np.all(np.diff(ks) == 3) and ks[-1] < lengths[i]
        offsets.append(ks[0])
    assert offsets[0] == 0  # 10 frames = exactly one span
    again = ConsecutiveClipDataset(root, num_frames=4, stride=3, seed=5)
    assert [_decode(again[i][0])[1] for i in range(3)] == offsets
    other = [[_decode(ConsecutiveClipDataset(root, 4, 3, seed=s)[2][0])[1] for s in range(6)]]
    assert len(set(other[0])) > 1
    no_offset = ConsecutiveClipDataset(root, num_frames=4, stride=3, random_offset=False)
    assert all(_decode(no_offset[i][0])[1] == 0 for i in range(3))
    sub = ConsecutiveClipDataset(root, num_frames=2, max_videos=2, seed=1)
    assert len(sub) == 2 and len({_decode(sub[i][0])[0] for i in range(2)}) == 2


def test_image_folder_and_auto_detection(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    imgs = [np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8) for i in range(3)]
    for i, img in enumerate(imgs):
        PIL.Image.fromarray(img).save(root / f"im{i}.png")
    ds = open_dataset(root, kind="frames", class_aware=True, seed=3, xflip=True)
    assert isinstance(ds, ImageFolderDataset) and ds.num_videos == 3 and len(ds) == 6
    assert np.array_equal(ds[1][0], imgs[1].transpose(2, 0, 1))
    assert np.array_equal(ds[4][0], imgs[1][:, ::-1].transpose(2, 0, 1))  # mirrored half
    videos = _make_videos(tmp_path / "v", [3, 3])
    assert isinstance(open_dataset(videos), VideoFrameDataset)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        open_dataset(videos, kind="nope")


def test_video_subset(tmp_path):
    root = _make_videos(tmp_path / "d", [3, 4, 5])
    ds = VideoFrameDataset(root, videos=[0, 2], class_aware=False)
    assert ds.num_videos == 2 and ds.video_names == ["vid000", "vid002"] and len(ds) == 8
    assert {_decode(ds[i][0])[0] for i in range(len(ds))} == {0, 2}
    assert open_dataset(root, kind="consecutive", num_frames=2, videos=[1]).video_names == ["vid001"]
    with pytest.raises(ValueError, match="videos= must be"):
        VideoFrameDataset(root, videos=[3])


def test_attributes_and_dataset_json(tmp_path):
    root = _make_videos(tmp_path / "myset", [3, 5], meta={"fps": 25, "resolution": 4})
    ds = VideoFrameDataset(root)
    assert (ds.name, ds.resolution, ds.num_channels, ds.label_dim, ds.num_videos, ds.fps, ds.has_labels) == \
        ("myset", 4, 3, 0, 2, 25.0, False)
    zds = VideoFrameDataset(_zip_folder(root, tmp_path / "zipped.zip"))
    assert zds.name == "zipped" and zds.fps == 25.0
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="dataset.json: invalid JSON"):
        VideoFrameDataset(root)


def test_mirror_flips_every_frame_of_a_clip(tmp_path):
    root = tmp_path / "d"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)
    (root / "v").mkdir(parents=True)
    for k, f in enumerate(frames):
        PIL.Image.fromarray(f).save(root / "v" / f"{k:03d}.png")
    ds = VideoClipDataset(root, max_num_frames=32, xflip=True)
    assert len(ds) == 2
    for i in range(2, 8):  # i % 2 == 1 -> mirrored
        clip, _ = ds[i]
        _, ks, _, flip = ds.locate(i)
        assert flip == (i % 2 == 1)
        expected = frames[ks][:, :, ::-1] if flip else frames[ks]
        assert np.array_equal(clip, expected.transpose(0, 3, 1, 2))


def test_center_crop_resize_and_mode_conversion(tmp_path):
    root = tmp_path / "d"
    (root / "gray").mkdir(parents=True)
    (root / "rgba").mkdir()
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (8, 12), dtype=np.uint8)  # h=8, w=12
    rgba = rng.integers(0, 256, (8, 12, 4), dtype=np.uint8)
    PIL.Image.fromarray(gray, "L").save(root / "gray" / "0.png")
    PIL.Image.fromarray(rgba, "RGBA").save(root / "rgba" / "0.png")
    ds = VideoFrameDataset(root, resolution=4, class_aware=False)
    exp_gray = np.asarray(PIL.Image.fromarray(np.stack([gray[:, 2:10]] * 3, -1)).resize((4, 4), PIL.Image.BILINEAR))
    exp_rgba = np.asarray(PIL.Image.fromarray(rgba[:, 2:10, :3]).resize((4, 4), PIL.Image.BILINEAR))
    assert np.array_equal(ds[0][0], exp_gray.transpose(2, 0, 1))
    assert np.array_equal(ds[1][0], exp_rgba.transpose(2, 0, 1))
    with pytest.raises(DatasetError, match="not square; pass resolution"):
        VideoFrameDataset(root)


def test_bad_inputs_name_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="empty dataset"):
        VideoFrameDataset(empty)
    with pytest.raises(FileNotFoundError, match="missing"):
        VideoFrameDataset(tmp_path / "missing")

    root = _make_videos(tmp_path / "d", [4, 4], size=(8, 8))
    good = (root / "vid001" / "00002.png").read_bytes()
    (root / "vid001" / "00002.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "vid000" / "00001.png").write_bytes(b"not an image at all")
    PIL.Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(root / "vid000" / "00003.png")  # size mismatch
    ds = VideoFrameDataset(root, class_aware=False)
    with pytest.raises(DatasetError, match=r"vid001.00002\.png: unreadable or truncated image"):
        ds[6]
    with pytest.raises(DatasetError, match=r"vid000.00001\.png: unreadable or truncated image"):
        ds[1]
    with pytest.raises(DatasetError, match=r"vid000.00003\.png: frame size 6x6 differs from the first frame"):
        VideoFrameDataset(root, resolution=4, class_aware=False)[3]



# A subset (videos=, e.g. a held-out split) has the resolution of the whole dataset's first file, so a video of
# another size is an error in the subset too instead of a subset of another resolution.
def test_video_subset_has_the_resolution_of_the_dataset(tmp_path):
    root = _make_videos(tmp_path / "d", [3, 3], size=(8, 8))
    for k in range(3):
        PIL.Image.fromarray(_coded_frame(1, k, size=(6, 6))).save(root / "vid001" / f"{k:05d}.png")
    held_out = VideoFrameDataset(root, class_aware=False, videos=[1])
    assert held_out.resolution == 8 and VideoFrameDataset(root, videos=[0]).resolution == 8
    with pytest.raises(DatasetError, match=r"vid001.00000\.png: image is 6x6, the dataset is 8x8"):
        held_out[0]
    assert _decode(VideoFrameDataset(root, resolution=6, class_aware=False, videos=[1])[2][0]) == (1, 2)

def test_zip_and_folder_give_identical_samples(tmp_path):
    root = _make_videos(tmp_path / "d", [40, 36, 50], size=(6, 6))
    zipped = _zip_folder(root, tmp_path / "d.zip")
    pairs = [(VideoFrameDataset(p, seed=2, xflip=True) for p in (root, zipped)),
             (VideoClipDataset(p, max_num_frames=32, seed=2) for p in (root, zipped)),
             (ConsecutiveClipDataset(p, num_frames=5, stride=2, seed=2) for p in (root, zipped))]
    for a, b in pairs:
        for i in [0, 1, 2, 7, 100, len(a) + 3]:
            xa, xb = a[i], b[i]
            xa, xb = (xa if isinstance(xa, tuple) else (xa,)), (xb if isinstance(xb, tuple) else (xb,))
            assert all(np.array_equal(u, w) for u, w in zip(xa, xb, strict=True))


def test_dataloader_workers_with_zip(tmp_path):
    root = _make_videos(tmp_path / "d", [40, 36], size=(6, 6))
    ds = VideoClipDataset(_zip_folder(root, tmp_path / "d.zip"), max_num_frames=32)
    ds[0]  # opens the zip in this process; workers must reopen their own handle
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[3][0], ds[3][0])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, sampler=list(range(8)))
    batches = list(loader)
    frames = torch.cat([b[0] for b in batches])
    expected = torch.from_numpy(np.stack([ds[i][0] for i in range(8)]))
    assert torch.equal(frames, expected)


def test_infinite_sampler_order_depends_on_seed_and_rank():
    data = list(range(10))

    def take(n, **kw):
        it = iter(InfiniteSampler(data, **kw))
        return [next(it) for _ in range(n)]
    full = take(40, seed=3)
    assert sorted(full[:10]) == list(range(10))  # first pass: every item once
    assert take(40, seed=3) == full and take(40, seed=4) != full
    r0, r1 = take(20, seed=3, rank=0, num_replicas=2), take(20, seed=3, rank=1, num_replicas=2)
    assert r0 == full[0::2] and r1 == full[1::2]
    assert take(12, shuffle=False) == list(range(10)) + [0, 1]  # a plain list takes no pass offset


def test_infinite_sampler_yields_whole_groups_in_order():
    it = iter(InfiniteSampler(list(range(12)), seed=5, group_size=3))
    idx = [next(it) for _ in range(24)]
    groups = [idx[i:i + 3] for i in range(0, 24, 3)]
    assert all(g == [g[0], g[0] + 1, g[0] + 2] and g[0] % 3 == 0 for g in groups)
    assert sorted(g[0] for g in groups[:4]) == [0, 3, 6, 9]  # each pass visits every group once
    r1 = iter(InfiniteSampler(list(range(12)), seed=5, group_size=3, rank=1, num_replicas=2))
    assert [next(r1) for _ in range(6)] == groups[1] + groups[3]
    with pytest.raises(ValueError, match="groups of 5"):
        InfiniteSampler(list(range(12)), group_size=5)


def test_infinite_sampler_gives_fresh_draws_each_pass(tmp_path):
    ds = VideoFrameDataset(_make_videos(tmp_path / "d", [20, 180]), seed=0)  # strata of 0.2 and 1.8 frames
    it = iter(InfiniteSampler(ds, shuffle=False))
    idx = [next(it) for _ in range(2 * len(ds))]
    assert idx[len(ds)] == len(ds)  # second pass: offset by len
    first = [ds.locate(i)[:2] for i in idx[: len(ds)]]
    second = [ds.locate(i)[:2] for i in idx[len(ds):]]
    assert [v for v, _ in first] == [v for v, _ in second] and first != second


def test_dataset_writer_leaves_nothing_on_error(tmp_path):
    for dest in (tmp_path / "out", tmp_path / "out.zip"):
        with pytest.raises(RuntimeError):
            with DatasetWriter(dest) as w:
                w.add("a/0.png", b"123")
                raise RuntimeError("interrupted")
        assert not dest.exists()
    assert list(tmp_path.iterdir()) == []
