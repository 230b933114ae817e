"""Tests for metrics/protocols.py: metric grammar, video reader, real/fake sampling plans."""

import zipfile

import numpy as np
import PIL.Image
import pytest

from metrics import protocols
from metrics.protocols import VideoCollection, parse_metric


# Folder of per-video frame folders; pixel (R, G, B) = (frame index, video index, 7) so reads can be checked.
def make_video_folder(root, lengths, size=8, names=None):
    root.mkdir(parents=True, exist_ok=True)
    for v, n in enumerate(lengths):
        d = root / (names[v] if names else f"video_{v:03d}")
        d.mkdir()
        for f in range(n):
            img = np.zeros((size, size, 3), np.uint8)
            img[..., 0], img[..., 1], img[..., 2] = f, v, 7
            PIL.Image.fromarray(img).save(d / f"{f:05d}.png")
    return root


def test_parse_standard_metrics():
    fvd = parse_metric("fvd2048_128f_subsample8f")
    assert (fvd.kind, fvd.num_real, fvd.num_fake, fvd.num_frames, fvd.stride) == ("fvd", 2048, 2048, 16, 8)
    assert fvd.span == 121 and fvd.min_video_length == 128 and fvd.standard
    assert (parse_metric("fvd2048_128f").num_frames, parse_metric("fvd2048_16f").stride) == (128, 1)
    fid, full = parse_metric("fid50k"), parse_metric("fid50k_full")
    assert (fid.kind, fid.num_real, fid.num_fake) == ("fid", 50000, 50000)
    assert full.num_real is None and full.num_fake == 50000
    small = parse_metric("fvd8_16f")
    assert small.num_real == 8 and not small.standard and small.to_dict()["protocol_version"]
    for bad in ("kid50k", "fvd2048_16f_subsample3f", "fid1", "fvd_16f"):
        with pytest.raises(ValueError):
            parse_metric(bad)


def test_collection_reads_sorted_videos_and_frames(tmp_path):
    root = make_video_folder(tmp_path / "d", [3, 5, 2], names=["b", "a", "c"])
    coll = VideoCollection(root)
    assert [key for _, key, _ in coll.videos] == ["a", "b", "c"] and list(coll.lengths) == [5, 3, 2]
    frames = coll.read_frames(0, [4, 1, 1])
    assert frames.shape == (3, 3, 8, 8) and frames.dtype == np.uint8
    assert list(frames[:, 0, 0, 0]) == [4, 1, 1] and (frames[:, 1] == 1).all()  # Folder 'a' was written as video 1.
    with pytest.raises(IndexError, match="out of range"):
        coll.read_frames(2, [2])


def test_zip_reads_like_folder(tmp_path):
    root = make_video_folder(tmp_path / "d", [4, 2])
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        for p in sorted(root.rglob("*.png")):
            z.write(p, p.relative_to(root).as_posix())
    a, b = VideoCollection(root), VideoCollection(tmp_path / "d.zip")
    assert list(a.lengths) == list(b.lengths)
    np.testing.assert_array_equal(a.read_frames(0, [3, 0]), b.read_frames(0, [3, 0]))


def test_collection_grayscale_resolution_and_errors(tmp_path):
    d = tmp_path / "g" / "v0"
    d.mkdir(parents=True)
    PIL.Image.fromarray(np.full((6, 10), 200, np.uint8)).save(d / "0.png")
    PIL.Image.fromarray(np.full((4, 4), 9, np.uint8)).save(d / "1.png")
    coll = VideoCollection(tmp_path / "g")
    assert (coll.read_frames(0, [0]) == 200).all()  # Grayscale -> 3 equal channels.
    with pytest.raises(ValueError, match="shape"):
        coll.read_frames(0, [0, 1])
    resized = VideoCollection(tmp_path / "g", resolution=4).read_frames(0, [0, 1])
    assert resized.shape == (2, 3, 4, 4)
    with pytest.raises(FileNotFoundError):
        VideoCollection(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frame folders"):
        VideoCollection(tmp_path / "empty")


@pytest.mark.parametrize("ext", ["gif", "mp4"])
def test_video_files_are_videos(tmp_path, ext):
    iio = pytest.importorskip("imageio.v2")
    (tmp_path / "fake").mkdir()
    frames = [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(6)]
    iio.mimsave(tmp_path / "fake" / f"000.{ext}", frames, **({"loop": 0} if ext == "gif" else {"fps": 8}))
    coll = VideoCollection(tmp_path / "fake")
    assert list(coll.lengths) == [6]
    out = coll.read_frames(0, [5, 2])  # mp4 is lossy: values within a few levels.
    assert out.shape == (2, 3, 16, 16) and abs(int(out[0, 0, 8, 8]) - 200) <= 6 and abs(int(out[1, 0, 8, 8]) - 80) <= 6


def test_real_fvd_plan_selection_offsets_and_stride(tmp_path):
    # n=4 frames at stride 2 (span 7). Video 1 (7 frames) holds a clip but is shorter than n*s = 8, so StyleGAN-V's
    # rule drops it; the first 3 of the 4 eligible videos are kept.
    coll = VideoCollection(make_video_folder(tmp_path / "d", [12, 7, 8, 30, 9], size=2))
    spec = parse_metric("fvd3_8f_subsample2f")
    plan = protocols.real_fvd_plan(coll, spec, seed=0)
    assert [v for v, _ in plan] == [0, 2, 3]
    for v, frames in plan:
        assert np.all(np.diff(frames) == 2) and len(frames) == 4
        assert 0 <= frames[0] <= coll.lengths[v] - 7
    assert plan[2][1].tolist() == protocols.real_fvd_plan(coll, spec, seed=0)[2][1].tolist()  # Seeded.
    # Every valid start is equally reachable: L=12, span 7 -> starts 0..5.
    starts = [int(protocols.real_fvd_plan(coll, spec, seed=s)[0][1][0]) for s in range(600)]
    counts = np.bincount(starts, minlength=6)
    assert len(counts) == 6 and counts.min() > 60
    # The clip read back holds exactly those frames.
    v, frames = plan[2]
    assert coll.read_frames(v, frames)[:, 0, 0, 0].tolist() == frames.tolist()


def test_real_fvd_plan_takes_first_videos_in_sorted_order(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [4] * 6, size=2))
    plan = protocols.real_fvd_plan(coll, parse_metric("fvd4_4f"), seed=3)
    assert [v for v, _ in plan] == [0, 1, 2, 3] and all(f.tolist() == [0, 1, 2, 3] for _, f in plan)
    with pytest.raises(ValueError, match="no real video"):
        protocols.real_fvd_plan(coll, parse_metric("fvd4_16f"), seed=0)


def test_fake_fvd_plan_starts_at_zero(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [16, 3, 16], size=2))
    plan = protocols.fake_fvd_plan(coll, parse_metric("fvd8_16f_subsample4f"))
    assert [(v, f.tolist()) for v, f in plan] == [(0, [0, 4, 8, 12]), (2, [0, 4, 8, 12])]


def test_real_fid_plans(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [3, 10, 5], size=2))
    full = protocols.real_fid_plan(coll, parse_metric("fid2k_full"), seed=0)
    assert sum(len(f) for _, f in full) == 18 and [f.tolist() for _, f in full][0] == [0, 1, 2]
    balanced = protocols.real_fid_plan(coll, parse_metric("fid100"), seed=0)
    counts = {v: len(f) for v, f in balanced}
    assert sum(counts.values()) == 100 and max(counts.values()) - min(counts.values()) <= 1  # Video-balanced.
    assert all(0 <= f.min() and f.max() < coll.lengths[v] for v, f in balanced)
    again = protocols.real_fid_plan(coll, parse_metric("fid100"), seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(balanced, again, strict=True))


def test_fake_fid_plan_uniform_without_replacement(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [4, 6, 2], size=2))
    plan = protocols.fake_fid_plan(coll, parse_metric("fid5"), seed=1)
    pairs = [(v, int(f)) for v, frames in plan for f in frames]
    assert len(pairs) == len(set(pairs)) == 5 and all(f < coll.lengths[v] for v, f in pairs)
    everything = protocols.fake_fid_plan(coll, parse_metric("fid50"), seed=1)  # Fewer frames than asked: all.
    assert sum(len(f) for _, f in everything) == 12
    # Uniform over the 12 frames: over many seeds each frame is drawn about 5/12 of the time.
    hits = np.zeros(12)
    for s in range(400):
        hits[protocols.uniform_frame_choice(12, 5, s)] += 1
    assert np.all(np.abs(hits / 400 - 5 / 12) < 0.12)


def test_fake_generation_size():
    size = protocols.fake_generation_size
    assert size([parse_metric("fid50k")]) == (3125, 16)
    assert size([parse_metric(m) for m in ("fid50k", "fvd2048_16f", "fvd2048_128f")]) == (2048, 128)
    assert size([parse_metric(m) for m in ("fid50k", "fvd2048_16f")]) == (3125, 16)
    assert size([parse_metric("fvd2048_128f_subsample8f")]) == (2048, 121)
