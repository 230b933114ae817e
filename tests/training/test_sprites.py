"""Tests for training/sprites.py: determinism, ground truth vs frames, and the identity measurements."""

import math

import numpy as np
import PIL.Image
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


def test_straight_motion_leaves_the_centre_in_any_direction():
    headings = []
    for v in range(64):
        params = sprites.sample_sprite_params(np.random.default_rng([0, v]), motion="straight", num_frames=64)
        traj = sprites.sprite_trajectory(params, 64)
        xy = np.stack([traj["x"], traj["y"]], axis=1)
        steps = np.diff(xy, axis=0)
        assert np.allclose(steps, steps[0], atol=1e-12)  # constant velocity: no turn, no bounce inside the clip
        width = 1 - 2 * (params["radius"] * (1 + params["scale_amp"]) + 0.01)
        assert np.linalg.norm(xy[0] - 0.5) <= 0.08 * width + 1e-12
        assert np.linalg.norm(xy[-1] - xy[0]) == pytest.approx(0.42 * width)
        assert np.all(np.abs(xy - 0.5) <= width / 2)  # inside the box that keeps the sprite in the frame
        headings.append(math.atan2(*steps[0][::-1]))
    counts = np.histogram(headings, bins=4, range=(-math.pi, math.pi))[0]
    assert counts.min() >= 8  # every quadrant of directions occurs (64 draws, 16 expected per quadrant)
    with pytest.raises(ValueError, match="motion"):
        sprites.sample_sprite_params(np.random.default_rng(0), motion="zigzag")


def test_videos_per_content_share_the_first_frame_but_not_the_motion(tmp_path):
    path = sprites.write_synthetic_dataset(tmp_path / "shared", num_videos=6, num_frames=8, resolution=16, seed=3,
                                           motion="straight", videos_per_content=3, radius_range=(0.15, 0.2))
    gts = [gt["params"] for _, gt in sorted(sprites.load_ground_truth(path).items())]
    identity = ("shape", "color", "radius", "background", "start", "angle")
    assert all(gts[i][k] == gts[j][k] for i, j in ((0, 1), (0, 2), (3, 4), (3, 5)) for k in identity)
    assert gts[3]["color"] != gts[0]["color"] and gts[3]["start"] != gts[0]["start"]
    assert 0.15 <= gts[3]["radius"] <= 0.2
    assert len({p["heading"] for p in gts}) == 6
    frames = [np.asarray(PIL.Image.open(path / f"video_{v:05d}" / f"{t:06d}.png")) for v in (0, 1) for t in (0, 7)]
    assert np.array_equal(frames[0], frames[2]) and not np.array_equal(frames[1], frames[3])
    with pytest.raises(ValueError, match="videos_per_content"):
        sprites.write_synthetic_dataset(tmp_path / "bad", num_videos=1, num_frames=1, videos_per_content=0)
    with pytest.raises(ValueError, match="radius_range"):
        sprites.write_synthetic_dataset(tmp_path / "bad", num_videos=1, num_frames=1, radius_range=(0.3, 0.2))
    assert not (tmp_path / "bad").exists()


def test_spread_headings_turn_a_contents_videos_apart(tmp_path):
    path = sprites.write_synthetic_dataset(tmp_path / "spread", num_videos=8, num_frames=12, resolution=16, seed=5,
                                           motion="straight", videos_per_content=4, spread_headings=True,
                                           radius_range=(0.15, 0.2))
    gts = [gt for _, gt in sorted(sprites.load_ground_truth(path).items())]
    for c in (0, 1):
        group = gts[4 * c:4 * c + 4]
        assert all(gt["params"]["start"] == group[0]["params"]["start"] for gt in group)
        # Directions of the rendered steps (not the stored parameter): 0, 90, 180, 270 degrees from the first video.
        steps = [np.array([gt["trajectory"]["x"][1] - gt["trajectory"]["x"][0],
                           gt["trajectory"]["y"][1] - gt["trajectory"]["y"][0]]) for gt in group]
        turns = [math.degrees(math.atan2(steps[0][0] * s[1] - steps[0][1] * s[0], steps[0] @ s)) % 360 for s in steps]
        assert np.allclose(turns, [0, 90, 180, 270], atol=1e-6)
    first_directions = [math.atan2(gts[4 * c]["trajectory"]["y"][1] - gts[4 * c]["trajectory"]["y"][0],
                                   gts[4 * c]["trajectory"]["x"][1] - gts[4 * c]["trajectory"]["x"][0]) for c in (0, 1)]
    assert abs(first_directions[0] - first_directions[1]) > 1e-3  # each content turns from its own direction
    with pytest.raises(ValueError, match="spread_headings"):
        sprites.write_synthetic_dataset(tmp_path / "bad", num_videos=4, num_frames=4, motion="wander",
                                        videos_per_content=4, spread_headings=True)
    assert not (tmp_path / "bad").exists()


def test_resample_motion_keeps_content_and_start():
    for motion in sprites.MOTIONS:
        params = sprites.sample_sprite_params(np.random.default_rng([3, 1]), motion=motion, num_frames=32)
        other = sprites.resample_motion(params, np.random.default_rng(9), num_frames=32)
        same = {k for k in params if params[k] == other[k]}
        assert {"shape", "color", "radius", "background", "start", "angle", "spin", "motion"} <= same
        assert other["heading"] != params["heading"]
        moved = sprites.resample_motion(params, np.random.default_rng(9), num_frames=32, keep_start=False)
        assert moved["start"] != params["start"] and moved["color"] == params["color"]
        a, b = (sprites.render_sprites_video(p, 32, 32) for p in (params, other))
        assert np.array_equal(a[0], b[0]) and not np.array_equal(a[-1], b[-1])


def test_travel_of_a_still_sprite_is_zero_and_of_real_clips_matches_the_ground_truth():
    params, video = _video(5, num_frames=64)
    still = np.repeat(video[:1], 64, axis=0)
    assert sprites.sprite_travel(still) == 0.0
    for v in range(6):
        for motion in sprites.MOTIONS:
            params = sprites.sample_sprite_params(np.random.default_rng([2, v]), motion=motion, num_frames=64)
            gt = sprites.sprite_ground_truth(params, 64, 32)
            traj = np.stack([gt["trajectory"]["x"], gt["trajectory"]["y"]], axis=1) * 32
            expected = np.linalg.norm(traj.max(0) - traj.min(0))  # written out: range of the true centre
            assert sprites.trajectory_travel(gt) == pytest.approx(expected)
            assert expected > 3
            measured = sprites.sprite_travel(sprites.render_sprites_video(params, 64, 32))
            assert abs(measured - expected) < 1.0  # centroid within a pixel of the truth
    blank = still.copy()
    blank[:] = blank[:, :1, :1]
    assert math.isnan(sprites.sprite_travel(blank))


def test_motion_diversity_is_the_last_frame_distance():
    params, video = _video(6, num_frames=40)
    assert sprites.motion_diversity([video], [video]) == 0.0
    other = sprites.resample_motion(params, np.random.default_rng(1), num_frames=40)
    video_b = sprites.render_sprites_video(other, 40, 32)
    ta, tb = sprites.sprite_trajectory(params, 40), sprites.sprite_trajectory(other, 40)
    expected = 32 * math.hypot(ta["x"][-1] - tb["x"][-1], ta["y"][-1] - tb["y"][-1])
    assert expected > 2
    assert sprites.motion_diversity([video, video], [video_b, video]) == pytest.approx(expected / 2, abs=0.5)
    with pytest.raises(ValueError, match="pairs"):
        sprites.motion_diversity([video], [])
