"""Tests for metrics/protocols.py: metric grammar, video reader, real/fake sampling plans."""

import zipfile

import numpy as np
import PIL.Image
import pytest

from metrics import protocols
from metrics.protocols import PROTOCOLS, VideoCollection, parse_metric

STYLEINV, STYLEGAN_V = PROTOCOLS["styleinv"], PROTOCOLS["stylegan-v"]


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
    assert fvd.span == 121 and fvd.standard
    assert STYLEINV.min_video_length(fvd) == 121 and STYLEGAN_V.min_video_length(fvd) == 128
    assert (parse_metric("fvd2048_128f").num_frames, parse_metric("fvd2048_16f").stride) == (128, 1)
    fid, full = parse_metric("fid50k"), parse_metric("fid50k_full")
    assert (fid.kind, fid.num_real, fid.num_fake) == ("fid", 50000, 50000)
    assert full.num_real is None and full.num_fake == 50000
    small = parse_metric("fvd8_16f")
    assert small.num_real == 8 and not small.standard and small.detector == "i3d"
    mae = parse_metric("fvd2048_16f_videomae")
    assert (mae.kind, mae.detector, mae.num_frames, mae.standard) == ("fvd", "videomae", 16, True)
    assert parse_metric("fvd2048_128f_videomae").standard and parse_metric("fvd4_32f_subsample2f_videomae").stride == 2
    assert fid.detector == "inception" and (fid.generated_frames, fid.generated_videos) == (16, 3125)
    assert (fvd.generated_frames, fvd.generated_videos) == (128, 2048)  # n*s: shared with fvd2048_128f.
    for bad in ("kid50k", "fvd2048_16f_subsample3f", "fid1", "fvd_16f", "fvd16_16f_i3d"):
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


def _selected(plan):
    return [v for v, _ in plan]


def test_real_fvd_eligibility_and_selection_per_protocol(tmp_path):
    # n=4 frames at stride 2: span 7, window n*s = 8. Video 1 (7 frames) holds a clip: StyleInV keeps it,
    # StyleGAN-V drops it (>= n*s). StyleGAN-V takes the first 3 eligible by path.
    coll = VideoCollection(make_video_folder(tmp_path / "d", [12, 7, 8, 30, 9, 3], size=2))
    spec = parse_metric("fvd3_8f_subsample2f")
    assert _selected(protocols.real_fvd_plan(coll, spec, STYLEGAN_V, seed=0)) == [0, 2, 3]
    # StyleInV: a seeded random 3 of the 5 eligible videos (0-4), each equally likely; video 5 never.
    counts = np.zeros(6)
    for seed in range(300):
        chosen = _selected(protocols.real_fvd_plan(coll, spec, STYLEINV, seed))
        assert len(chosen) == len(set(chosen)) == 3 and chosen == sorted(chosen)
        counts[chosen] += 1
    assert counts[5] == 0 and np.all(np.abs(counts[:5] / 300 - 3 / 5) < 0.1)
    first = _selected(protocols.real_fvd_plan(coll, spec, STYLEINV, 1141514))
    assert first == _selected(protocols.real_fvd_plan(coll, spec, STYLEINV, 1141514))  # Seeded.
    # Fewer eligible videos than asked: all of them, in both protocols.
    many = parse_metric("fvd50_8f_subsample2f")
    assert _selected(protocols.real_fvd_plan(coll, many, STYLEINV, 0)) == [0, 1, 2, 3, 4]
    assert _selected(protocols.real_fvd_plan(coll, many, STYLEGAN_V, 0)) == [0, 2, 3, 4]


@pytest.mark.parametrize("protocol", [STYLEINV, STYLEGAN_V], ids=lambda p: p.name)
def test_real_fvd_offsets_uniform_over_valid_starts(tmp_path, protocol):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [12, 30], size=2))
    spec = parse_metric("fvd2_8f_subsample2f")  # span 7: L=12 -> starts 0..5 in both protocols.
    plan = protocols.real_fvd_plan(coll, spec, protocol, seed=0)
    for v, frames in plan:
        assert np.all(np.diff(frames) == 2) and len(frames) == 4 and 0 <= frames[0] <= coll.lengths[v] - 7
    assert plan[1][1].tolist() == protocols.real_fvd_plan(coll, spec, protocol, seed=0)[1][1].tolist()
    starts = [int(protocols.real_fvd_plan(coll, spec, protocol, seed=s)[0][1][0]) for s in range(600)]
    counts = np.bincount(starts, minlength=6)
    assert len(counts) == 6 and counts.min() > 60
    v, frames = plan[1]  # The clip read back holds exactly those frames.
    assert coll.read_frames(v, frames)[:, 0, 0, 0].tolist() == frames.tolist()


def test_real_fvd_plan_rejects_datasets_without_eligible_videos(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [15, 15], size=2))
    with pytest.raises(ValueError, match="no real video.*16 frames needed.*stylegan-v"):
        protocols.real_fvd_plan(coll, parse_metric("fvd4_16f"), STYLEGAN_V, seed=0)
    # 16 frames at stride 2: span 31 (StyleInV) vs n*s 32 (StyleGAN-V).
    coll = VideoCollection(make_video_folder(tmp_path / "e", [31], size=2))
    assert _selected(protocols.real_fvd_plan(coll, parse_metric("fvd1_32f_subsample2f"), STYLEINV, 0)) == [0]
    with pytest.raises(ValueError, match="32 frames needed"):
        protocols.real_fvd_plan(coll, parse_metric("fvd1_32f_subsample2f"), STYLEGAN_V, 0)


def test_fake_fvd_plans_start_at_zero(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [16, 3, 13, 16, 16], size=2))
    spec = parse_metric("fvd2_16f_subsample4f")  # span 13, window 16.
    plan = protocols.fake_fvd_plan(coll, spec, STYLEGAN_V, seed=0)
    assert [(v, f.tolist()) for v, f in plan] == [(0, [0, 4, 8, 12]), (3, [0, 4, 8, 12])]
    seen = set()
    for seed in range(40):  # StyleInV: 2 of the 4 videos with >= 13 frames (video 2 included), frames 0, 4, ...
        plan = protocols.fake_fvd_plan(coll, spec, STYLEINV, seed)
        assert len(plan) == 2 and all(f.tolist() == [0, 4, 8, 12] for _, f in plan)
        seen |= set(_selected(plan))
    assert seen == {0, 2, 3, 4}


def _frame_counts(plan, num_videos):
    return np.bincount([v for v, f in plan for _ in f], minlength=num_videos)


def test_real_fid_plans_per_protocol(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [3, 10, 5], size=2))
    # StyleGAN-V: the first min(#frames, K) frames by path; _full: every frame.
    first = protocols.real_fid_plan(coll, parse_metric("fid10"), STYLEGAN_V, seed=0)
    assert [(v, f.tolist()) for v, f in first] == [(0, [0, 1, 2]), (1, [0, 1, 2, 3, 4, 5, 6])]
    for name in ("fid100", "fid2k_full"):  # 18 frames in all: every frame once.
        plan = protocols.real_fid_plan(coll, parse_metric(name), STYLEGAN_V, seed=0)
        assert [f.tolist() for _, f in plan] == [list(range(3)), list(range(10)), list(range(5))]
    # StyleInV: min(#frames, K) draws, video-balanced (each video 18 / 3 = 6 times), uniform frames, seeded.
    for name in ("fid100", "fid2k_full"):
        plan = protocols.real_fid_plan(coll, parse_metric(name), STYLEINV, seed=0)
        assert _frame_counts(plan, 3).tolist() == [6, 6, 6]
        assert all(0 <= f.min() and f.max() < coll.lengths[v] for v, f in plan)
    plan = protocols.real_fid_plan(coll, parse_metric("fid100"), STYLEINV, seed=0)
    again = protocols.real_fid_plan(coll, parse_metric("fid100"), STYLEINV, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(plan, again, strict=True))
    seven = protocols.real_fid_plan(coll, parse_metric("fid7"), STYLEINV, seed=0)
    assert sorted(_frame_counts(seven, 3).tolist()) == [2, 2, 3]


def test_fake_fid_plans_per_protocol(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [4, 6, 2], size=2))
    first = protocols.fake_fid_plan(coll, parse_metric("fid5"), STYLEGAN_V, seed=1)
    assert [(v, f.tolist()) for v, f in first] == [(0, [0, 1, 2, 3]), (1, [0])]
    plan = protocols.fake_fid_plan(coll, parse_metric("fid5"), STYLEINV, seed=1)
    pairs = [(v, int(f)) for v, frames in plan for f in frames]
    assert len(pairs) == len(set(pairs)) == 5 and all(f < coll.lengths[v] for v, f in pairs)
    everything = protocols.fake_fid_plan(coll, parse_metric("fid50"), STYLEINV, seed=1)  # Fewer frames: all.
    assert sum(len(f) for _, f in everything) == 12
    hits = np.zeros(12)  # Uniform over the 12 frames: each drawn about 5/12 of the time.
    for s in range(400):
        hits[protocols.uniform_frame_choice(12, 5, s)] += 1
    assert np.all(np.abs(hits / 400 - 5 / 12) < 0.12)


def test_fake_generation_passes():
    passes = lambda *names: protocols.fake_generation_passes([parse_metric(m) for m in names])  # noqa: E731
    assert passes("fid50k") == {16: 3125}
    assert passes("fid50k", "fvd2048_16f") == {16: 3125}  # FVD16 takes the first 2048 of FID's videos.
    assert passes("fid50k", "fvd2048_16f", "fvd2048_128f") == {16: 3125, 128: 2048}
    assert passes("fvd2048_128f_subsample8f") == {128: 2048}
    assert passes("fvd2048_128f", "fvd2048_128f_subsample8f", "fvd2048_16f_videomae") == {16: 2048, 128: 2048}
    assert passes("fid100", "fvd3_9f") == {9: 3, 16: 7}
