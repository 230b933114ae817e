"""Tests for metrics/metric_main.py and metrics/cache.py: fake generation plumbing, sharding, real-statistics cache."""

import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import dnnlib
from metrics import cache as stats_cache
from metrics import metric_main, protocols
from metrics.frechet import FeatureStats
from metrics.protocols import VideoCollection, parse_metric
from tests.metrics.test_protocols import make_video_folder


# Stub FVD detector: per clip [R of frame 0 (frame index), G (video id), R(frame 1) - R(frame 0) (stride)].
class ClipProbe(nn.Module):
    feature_dim = 3
    info = dict(name="probe", file="-", sha256="0" * 64, layout="stub", preprocess="none", published=None)

    def forward(self, x):  # [b, 3, T, H, W]
        px = x[:, :, :, 0, 0].float()
        return torch.stack([px[:, 0, 0], px[:, 1, 0], px[:, 0, 1] - px[:, 0, 0]], 1)


# Stub FID detector: per frame [R (frame index), G (video id)].
class FrameProbe(nn.Module):
    feature_dim = 2
    info = dict(ClipProbe.info)

    def forward(self, x):  # [b, 3, H, W]
        return x[:, :2, 0, 0].float()


def _opts(tmp_path, rank=0, world_size=1, seed=0, protocol="styleinv", allow_tf32=False, device="cpu"):
    return dnnlib.EasyDict(device=torch.device(device), rank=rank, world_size=world_size, seed=seed,
                           protocol=protocols.PROTOCOLS[protocol], batch_inception=3, batch_i3d_frames=20, batch_gen=2,
                           num_workers=0, use_cache=True, cache_dir=tmp_path / "cache", progress=False,
                           allow_tf32=allow_tf32, frozen_fakes=False, real_fingerprint=None)


DETS = {"i3d": ClipProbe(), "inception": FrameProbe()}


# Fake source (FakeClips protocol): video i of a call has R = t, G = i; 2 more frames than asked. Records calls.
def synthetic_fake_clips(size=4, extra_frames=2):
    calls = []

    def fake_clips(num_videos, num_frames, seed, batch_size):
        calls.append((num_videos, num_frames, seed, batch_size))
        for i in range(0, num_videos, batch_size):
            b = min(batch_size, num_videos - i)
            x = torch.zeros(b, num_frames + extra_frames, 3, size, size, dtype=torch.uint8)
            x[:, :, 0] = torch.arange(num_frames + extra_frames, dtype=torch.uint8)[None, :, None, None]
            x[:, :, 1] = torch.arange(i, i + b, dtype=torch.uint8)[:, None, None, None]
            yield x
    return fake_clips, calls


def test_generations_are_shared_only_by_metrics_of_the_same_clip_length(tmp_path):
    specs = [parse_metric(m) for m in ("fvd5_8f", "fvd3_8f_subsample2f", "fid20")]
    fake_clips, calls = synthetic_fake_clips()
    stats = metric_main._generator_stats(fake_clips, specs, DETS, _opts(tmp_path), seed=7)
    assert calls == [(5, 8, 7, 2), (2, 16, 7, 2)]  # 5 x 8 frames for both FVDs (n*s = 8), 2 x 16 for FID.
    assert stats["fvd5_8f"].num == 5 and stats["fvd5_8f"].sum.tolist() == [0, 0 + 1 + 2 + 3 + 4, 5 * 1]
    assert stats["fvd3_8f_subsample2f"].num == 3 and stats["fvd3_8f_subsample2f"].sum.tolist() == [0, 3, 3 * 2]
    chosen = protocols.uniform_frame_choice(2 * 16, 20, 7)  # 20 of the 32 frames t = 0..15 of videos 0, 1.
    assert stats["fid20"].num == 20
    assert stats["fid20"].sum.tolist() == [float((chosen % 16).sum()), float((chosen // 16).sum())]


# Issue 17: FID's fakes are frames t = 0..15 of its own videos whatever else is asked; with 128-frame FVD the old
# code drew FID frames from all 128 frames of the FVD videos (mean t = 63.5).
def test_fid_fakes_do_not_depend_on_the_other_metrics(tmp_path):
    def fake_clips(num_videos, num_frames, seed, batch_size, start=0):  # Pixel = (t, video index, seed) mod 256.
        for i in range(start, start + num_videos, batch_size):
            b = min(batch_size, start + num_videos - i)
            x = torch.zeros(b, num_frames, 3, 2, 2, dtype=torch.uint8)
            x[:, :, 0] = torch.arange(num_frames, dtype=torch.uint8)[None, :, None, None]
            x[:, :, 1] = torch.arange(i, i + b, dtype=torch.uint8)[:, None, None, None]
            x[:, :, 2] = seed % 256
            yield x

    alone = metric_main._generator_stats(fake_clips, [parse_metric("fid50")], DETS, _opts(tmp_path), seed=3)
    with_fvd = metric_main._generator_stats(fake_clips, [parse_metric(m) for m in ("fid50", "fvd6_32f")], DETS,
                                            _opts(tmp_path), seed=3)
    a, b = alone["fid50"], with_fvd["fid50"]
    assert a.num == b.num == 50 and torch.equal(a.sum, b.sum) and torch.equal(a.sum_outer, b.sum_outer)
    assert a.sum[0] / a.num < 8  # Mean t of frames 0..15 is 7.5, not (32 - 1) / 2.
    assert with_fvd["fvd6_32f"].num == 6


# The same with the real video generator (tiny random-weight stage-3 checkpoint): FID's stats are bit-identical.
def test_fid_fakes_from_a_checkpoint_do_not_depend_on_the_other_metrics(tmp_path, tiny_stage3_dir):
    from training.video_generation import video_source_from_checkpoint

    class PixelProbe(nn.Module):  # Per frame: channel means and one pixel.
        feature_dim = 6
        info = ClipProbe.info

        def forward(self, x):
            return torch.cat([x.float().mean((2, 3)), x[:, :, 5, 7].float()], 1)

    fake_clips = video_source_from_checkpoint(tiny_stage3_dir / "stage3.pt", "cpu", chunk=16)
    dets = {"i3d": ClipProbe(), "inception": PixelProbe()}
    alone = metric_main._generator_stats(fake_clips, [parse_metric("fid24")], dets, _opts(tmp_path), seed=1)
    both = metric_main._generator_stats(fake_clips, [parse_metric(m) for m in ("fvd2_32f", "fid24")], dets,
                                        _opts(tmp_path), seed=1)
    assert alone["fid24"].num == 24 and torch.equal(alone["fid24"].sum_outer, both["fid24"].sum_outer)


def test_frozen_fakes_have_no_motion(tmp_path):
    opts = _opts(tmp_path)
    opts.frozen_fakes = True
    stats = metric_main._generator_stats(synthetic_fake_clips()[0], [parse_metric("fvd3_9f"), parse_metric("fid16")],
                                         DETS, opts, seed=0)
    assert stats["fvd3_9f"].sum.tolist() == [0, 0 + 1 + 2, 0]  # R(frame 1) - R(frame 0) = 0: no motion.
    assert stats["fid16"].sum[0] == 0  # Every FID frame is a t = 0 frame.
    real = make_video_folder(tmp_path / "fake", [10, 12], size=2)
    folder = metric_main._folder_stats(VideoCollection(real), [parse_metric("fvd2_9f")], DETS, opts, seed=0)
    assert folder["fvd2_9f"].sum[2] == 0


def test_generator_sharding_counts_match_single_rank(tmp_path):
    specs = [parse_metric(m) for m in ("fvd5_9f", "fid30")]
    single = metric_main._generator_stats(synthetic_fake_clips()[0], specs, DETS, _opts(tmp_path), 0)
    fake_clips, calls = synthetic_fake_clips()
    shards = [metric_main._generator_stats(fake_clips, specs, DETS, _opts(tmp_path, rank=r, world_size=2), 0)
              for r in range(2)]
    # Per pass (9 frames x 5 videos, 16 frames x 2 videos) contiguous blocks per rank, each rank its own seed.
    assert [c[:2] for c in calls] == [(2, 9), (1, 16), (3, 9), (1, 16)] and calls[0][2] != calls[2][2]
    for s in specs:
        assert shards[0][s.name].num + shards[1][s.name].num == single[s.name].num


def test_sources_with_start_give_the_same_fakes_on_any_number_of_ranks(tmp_path):
    def fake_clips(num_videos, num_frames, seed, batch_size, start=0):  # Video content = its global index.
        for i in range(start, start + num_videos, batch_size):
            b = min(batch_size, start + num_videos - i)
            x = torch.zeros(b, num_frames, 3, 2, 2, dtype=torch.uint8)
            x[:, :, 1] = torch.arange(i, i + b, dtype=torch.uint8)[:, None, None, None]
            x[:, :, 0] = torch.arange(num_frames, dtype=torch.uint8)[None, :, None, None]
            yield x

    specs = [parse_metric(m) for m in ("fvd5_9f", "fid30")]
    single = metric_main._generator_stats(fake_clips, specs, DETS, _opts(tmp_path), 0)
    for world in (2, 3):
        shards = [metric_main._generator_stats(fake_clips, specs, DETS, _opts(tmp_path, rank=r, world_size=world), 0)
                  for r in range(world)]
        for s in specs:
            merged = FeatureStats()
            for shard in shards:
                merged.merge(shard[s.name])
            assert merged.num == single[s.name].num and torch.equal(merged.sum_outer, single[s.name].sum_outer)


def test_fake_batch_validation(tmp_path):
    specs = [parse_metric("fvd2_9f")]

    def wrong_dtype(n, t, seed, b):
        yield torch.zeros(n, t, 3, 4, 4)

    def too_many(n, t, seed, b):
        yield torch.zeros(n + 1, t, 3, 4, 4, dtype=torch.uint8)

    def too_few(n, t, seed, b):
        yield torch.zeros(n - 1, t, 3, 4, 4, dtype=torch.uint8)

    for source, match in ((wrong_dtype, "uint8"), (too_many, "more videos"), (too_few, "were requested")):
        with pytest.raises(ValueError, match=match):
            metric_main._generator_stats(source, specs, DETS, _opts(tmp_path), 0)


def test_real_plan_sharded_over_two_ranks_equals_single_pass(tmp_path):
    coll = VideoCollection(make_video_folder(tmp_path / "d", [9, 12, 10, 15, 11], size=2))
    for name, det in (("fvd5_9f", ClipProbe()), ("fid40", FrameProbe())):
        spec = parse_metric(name)
        plan_fn = protocols.real_fvd_plan if spec.kind == "fvd" else protocols.real_fid_plan
        plan = plan_fn(coll, spec, protocols.PROTOCOLS["styleinv"], 3)
        single = metric_main._plan_stats(coll, plan, spec, det, _opts(tmp_path), "")
        merged = FeatureStats()
        for r in range(2):  # Without a process group all_reduce is a no-op: each call returns its shard.
            merged.merge(metric_main._plan_stats(coll, plan, spec, det, _opts(tmp_path, rank=r, world_size=2), ""))
        assert merged.num == single.num == (5 if spec.kind == "fvd" else 40)
        torch.testing.assert_close(merged.sum_outer, single.sum_outer)


def test_real_stats_cache_hit_miss_and_invalidation(tmp_path, monkeypatch):
    root = make_video_folder(tmp_path / "d", [10, 12], size=2)
    spec, det = parse_metric("fvd2_9f"), ClipProbe()
    first, state = metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path))
    assert state == "miss" and len(list((tmp_path / "cache").glob("d-fvd2_9f-*.pt"))) == 1
    again, state = metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path))
    assert state == "hit" and again.num == first.num and torch.equal(again.sum_outer, first.sum_outer)
    assert metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path, seed=1))[1] == "miss"
    frame = root / "video_001" / "00003.png"
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))  # Dataset changed.
    assert metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path))[1] == "miss"
    assert metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path))[1] == "hit"
    other = type("OtherProbe", (ClipProbe,), {"info": dict(ClipProbe.info, sha256="1" * 64)})()
    assert metric_main._real_stats(spec, VideoCollection(root), other, _opts(tmp_path))[1] == "miss"
    # Precision and protocol are part of the key: TF32 statistics are never reused by a reference-precision run.
    tf32 = _opts(tmp_path, allow_tf32=True)
    assert metric_main._real_stats(spec, VideoCollection(root), det, tf32)[1] == "miss"
    assert metric_main._real_stats(spec, VideoCollection(root), det, tf32)[1] == "hit"
    assert metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path, protocol="stylegan-v"))[1] \
        == "miss"
    assert metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path))[1] == "hit"
    record = metric_main._precision_record
    monkeypatch.setattr(metric_main, "_precision_record", lambda o: dict(record(o), device="cuda"))
    assert metric_main._real_stats(spec, VideoCollection(root), det, _opts(tmp_path))[1] == "miss"  # Device type.
    opts = _opts(tmp_path)
    opts.use_cache = False
    assert metric_main._real_stats(spec, VideoCollection(root), det, opts)[1] == "off"


def test_cache_ignores_corrupt_or_foreign_files(tmp_path):
    stats = FeatureStats()
    stats.append(torch.ones(3, 2))
    path = tmp_path / "x.pt"
    stats_cache.save_stats(path, "k1", stats, {"a": 1})
    assert stats_cache.load_stats(path, "k1").num == 3
    assert stats_cache.load_stats(path, "k2") is None
    path.write_bytes(b"garbage")
    assert stats_cache.load_stats(path, "k1") is None
    assert list(tmp_path.iterdir()) == [path]  # No temp files left behind.


def test_compute_metrics_folder_mode_with_stub_detectors(tmp_path, monkeypatch):
    real = make_video_folder(tmp_path / "real", [10, 12, 11], size=4)
    fake = make_video_folder(tmp_path / "fake", [10, 10, 10], size=4)
    monkeypatch.setattr(metric_main, "_load_detectors", lambda specs, *a: DETS)
    results = metric_main.compute_metrics(["fvd3_9f", "fid20"], str(fake), real, cache_dir=tmp_path / "c",
                                          device="cpu", num_workers=0)
    by_name = {r["metric"]: r for r in results}
    assert set(by_name) == {"fvd3_9f", "fid20"}
    fvd = by_name["fvd3_9f"]
    assert fvd["num_real"] == 3 and fvd["num_fake"] == 3 and fvd["real_stats_cache"] == "miss"
    assert by_name["fid20"]["num_fake"] == 20 and by_name["fid20"]["num_real"] == 20
    for r in results:
        assert np.isfinite(r["results"][r["metric"]]) and r["results"][r["metric"]] >= -1e-9
    # Everything that defines the number (issue 17, item 3).
    assert fvd["protocol"]["name"] == "styleinv" and fvd["protocol"]["version"] == protocols.PROTOCOL_VERSION
    assert fvd["seed"] == 1141514 and fvd["fake_seeds"] == [1141514]  # The StyleInV release's default seed.
    assert (fvd["num_frames"], fvd["stride"]) == (9, 1) and fvd["metric_spec"]["detector"] == "i3d"
    assert fvd["detector"]["sha256"] == "0" * 64 and fvd["detector"]["file"] == "-"
    assert fvd["preprocess"] == dict(detector="none", resolution=None) and fvd["covariance"] == "biased"
    assert fvd["precision"]["allow_tf32"] is False and fvd["precision"]["device"] == "cpu"
    assert fvd["real_fingerprint"] == stats_cache.dataset_fingerprint(VideoCollection(real).fingerprint_items)
    assert len(fvd["fake_fingerprint"]) == 64 and fvd["frozen_fakes"] is False


def test_num_runs_fix_the_real_statistics_and_report_population_std(tmp_path, monkeypatch):
    real = make_video_folder(tmp_path / "real", [10, 12, 11, 10], size=4)
    fake = make_video_folder(tmp_path / "fake", [10, 10, 10, 10, 9, 12], size=4)
    monkeypatch.setattr(metric_main, "_load_detectors", lambda specs, *a: DETS)
    real_calls = []
    original = metric_main._real_stats
    monkeypatch.setattr(metric_main, "_real_stats", lambda *a: real_calls.append(a[0].name) or original(*a))
    (fvd,) = metric_main.compute_metrics(["fvd3_9f"], str(fake), real, num_runs=3, seed=5, use_cache=False,
                                         device="cpu", num_workers=0)
    runs = fvd["runs"]
    assert real_calls == ["fvd3_9f"] and fvd["fake_seeds"] == [5, 6, 7] and len(set(runs)) > 1
    mean = sum(runs) / 3
    assert fvd["results"]["fvd3_9f"] == pytest.approx(mean)
    assert fvd["results"]["fvd3_9f_std"] == pytest.approx((sum((r - mean) ** 2 for r in runs) / 3) ** 0.5)
    assert "ddof=0" in fvd["runs_note"] and set(fvd["results"]) == {"fvd3_9f", "fvd3_9f_std"}
