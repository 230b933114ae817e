"""Tests for training/sprites.py: determinism, ground truth vs frames, and the identity measurements."""

import math

import numpy as np
import pytest

from training import sprites
from training.dataset import VideoFrameDataset


def _video(v: int, seed: int = 0, num_frames: int = 48, resolution: int = 32):
    params = sprites.sample_sprite_params(np.random.default_rng([seed, v]))
    return params, sprites.render_sprites_video(params, num_frames, resolution)


def test_generator_is_deterministic():
    p1, v1 = _video(3)
    p2, v2 = _video(3)
    assert p1 == p2 and np.array_equal(v1, v2)
    assert not np.array_equal(v1, _video(4)[1]) and not np.array_equal(v1, _video(3, seed=1)[1])


@pytest.mark.parametrize("v", range(8))
def test_ground_truth_matches_frames(v):
    params, video = _video(v)
    gt = sprites.sprite_ground_truth(params, 48, 32)
    traj = gt["trajectory"]
    for t in range(0, 48, 5):  # the pixel under the recorded centre has the sprite's colour
        row, col = int(traj["y"][t] * 32), int(traj["x"][t] * 32)
        assert np.abs(video[t, row, col].astype(int) - params["color"]).max() <= 2
    x, y, r = np.array(traj["x"]), np.array(traj["y"]), params["radius"] * np.array(traj["scale"])
    assert np.all(x - r >= 0) and np.all(x + r <= 1) and np.all(y - r >= 0) and np.all(y + r <= 1)  # inside
    corner = video[:, 0, 0].astype(int)  # the corners are background: its colour (gradient: between the two)
    bg = np.array(params["background"]["colors"])
    assert np.all(corner >= bg.min(0) - 1) and np.all(corner <= bg.max(0) + 1)
    assert sprites.gt_trajectory_error(video, gt) < 0.75  # measured centroid within a pixel of the truth
    assert sprites.gt_identity_error(video, gt) < 0.01
    assert sprites.gt_trajectory_error(video.transpose(0, 3, 1, 2), gt) == sprites.gt_trajectory_error(video, gt)


def test_motion_is_smooth_and_moves():
    params, video = _video(1, num_frames=64)
    traj = sprites.sprite_trajectory(params, 64)
    steps = np.hypot(np.diff(traj["x"]), np.diff(traj["y"]))
    assert steps.max() <= params["speed"] + 1e-9  # constant speed; a bounce can only shorten a step
    assert steps.min() > 0.3 * params["speed"]  # always moving (bounces shorten at most one step)
    assert np.all(np.abs(np.diff(traj["angle"])) <= 0.08 + 1e-9)
    assert sprites.motion_smoothness(video) < 0.5  # px / frame^2


def test_identity_consistency_separates_real_and_swapped_identity():
    _, a = _video(0)
    _, b = _video(1)
    assert sprites.identity_consistency(a) < 0.02
    spliced = np.concatenate([a[:24], b[24:]])  # identity changes halfway
    expected = 0.5 * np.linalg.norm(np.subtract(_video(1)[0]["color"], _video(0)[0]["color"])) / (255 * math.sqrt(3))
    assert abs(sprites.identity_consistency(spliced) - expected * 48 / 47) < 0.03
    blank = a.copy()
    blank[10:] = blank[10:, :1, :1]  # sprite missing from frame 10 on: distance 1 per missing frame
    assert sprites.identity_consistency(blank) == pytest.approx(38 / 47, abs=0.02)
    stats = sprites.identity_stats(blank)
    assert stats["missing"] == pytest.approx(38 / 48)


def test_background_hint_mode():
    params, video = _video(2)
    if params["background"]["kind"] != "plain":
        params["background"] = dict(kind="plain", colors=params["background"]["colors"][:1], direction=0.0)
        video = sprites.render_sprites_video(params, 48, 32)
    m = sprites.sprite_measurements(video, background_hint=params["background"]["colors"][0])
    assert np.all(np.abs(m["color"] - params["color"]) <= 2)


def test_write_synthetic_dataset_folder_and_zip(tmp_path):
    folder = sprites.write_synthetic_dataset(tmp_path / "syn", num_videos=3, num_frames=6, resolution=16, seed=7)
    zipped = sprites.write_synthetic_dataset(tmp_path / "syn", num_videos=3, num_frames=6, resolution=16, seed=7,
                                             zip=True)
    assert zipped.name == "syn.zip"
    for path in (folder, zipped):
        ds = VideoFrameDataset(path, class_aware=False)
        assert (ds.num_videos, len(ds), ds.resolution, ds.fps) == (3, 18, 16, 16.0)
        gt = sprites.load_ground_truth(path)
        assert sorted(gt) == ["video_00000", "video_00001", "video_00002"]
        params = sprites.sample_sprite_params(np.random.default_rng([7, 1]))
        assert gt["video_00001"]["params"] == params
        video = ds.load_video(1).transpose(0, 2, 3, 1)
        assert np.array_equal(video, sprites.render_sprites_video(params, 6, 16))
    with pytest.raises(FileExistsError):
        sprites.write_synthetic_dataset(tmp_path / "syn", num_videos=1, num_frames=2, resolution=16)


def test_radius_range():
    radii = [sprites.sample_sprite_params(np.random.default_rng([0, v]))["radius"] for v in range(64)]
    assert 0.21 <= min(radii) and max(radii) <= 0.3 and max(radii) - min(radii) > 0.05
    small = sprites.sample_sprite_params(np.random.default_rng([0, 5]), radius_range=(0.1, 0.1))
    assert small["radius"] == 0.1
    with pytest.raises(ValueError, match="radius_range"):
        sprites.sample_sprite_params(np.random.default_rng(0), radius_range=(0.3, 0.2))


def test_shape_subset(tmp_path):
    only_discs = [sprites.sample_sprite_params(np.random.default_rng([0, v]), shapes=("disc",)) for v in range(8)]
    assert {p["shape"] for p in only_discs} == {"disc"}
    path = sprites.write_synthetic_dataset(tmp_path / "discs", num_videos=2, num_frames=2, resolution=16,
                                           shapes=("disc",))
    assert {gt["params"]["shape"] for gt in sprites.load_ground_truth(path).values()} == {"disc"}
    with pytest.raises(ValueError, match="shapes"):
        sprites.write_synthetic_dataset(tmp_path / "bad", num_videos=1, num_frames=1, resolution=16, shapes=("star",))
    assert not (tmp_path / "bad").exists()
