"""Moving-sprites synthetic video dataset (identity + smooth motion, with ground truth) and identity measurements.

Every video shows one sprite on a static background. Its identity (shape, colour, size, background) is constant;
its motion is smooth, with a constant spin and an optional gentle scale oscillation. Two kinds of trajectory
(`MOTIONS`): "wander" turns its heading slowly and bounces off the frame borders; "straight" starts near the
centre of the frame and moves on a straight line at constant speed in a uniformly random direction, reaching
STRAIGHT_TRAVEL of the free width at the clip's last frame (and bouncing after it). Because every direction is
equally likely from every start, the direction cannot be guessed from the first frame: a model that moves its
sprites only by their appearance cannot match it. Several videos may share one content and first frame (sprite,
size, colour, background, start) with their own motion (`videos_per_content`), so that a discriminator shown them
side by side can tell one motion per content from many. Everything is deterministic from (seed,
video index).

Coordinates are normalised: x, y in [0, 1] with (0, 0) the top-left corner of the top-left pixel, so pixel (row i,
column j) covers [j/R, (j+1)/R) x [i/R, (i+1)/R). Sizes are fractions of the frame size.

Dataset layout written by `write_synthetic_dataset`: `video_XXXXX/000000.png ...` plus, next to the frames of each
video, `video_XXXXX/sprite_gt.json` = {"params": identity and motion parameters, "trajectory": per-frame x, y,
angle, scale, "resolution", "num_frames", "seed", "video"}; and a root `dataset.json`.
"""

import colorsys
import json
import math
import os
from pathlib import Path

import numpy as np

SHAPES = ("disc", "square", "triangle", "plus")
MOTIONS = ("wander", "straight")
STRAIGHT_START, STRAIGHT_TRAVEL = 0.08, 0.42  # start radius around the centre and travel, fractions of the free width
GT_FILE = "sprite_gt.json"


def _hsv_to_rgb255(h: float, s: float, v: float) -> list[int]:
    return [int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v)]


# Identity and motion parameters of one video (plain JSON-able numbers). Sprites are saturated and bright
# (saturation >= 0.75, value >= 0.85) and large (circumradius 21-30% of the frame, so that a StyleGAN2 trained for
# a few minutes at 32 px can draw their shapes); backgrounds are dull (saturation <= 0.25, value <= 0.55), plain or
# a two-colour linear gradient, so the sprite stands out.
def _check_shapes(shapes) -> None:
    if not shapes or any(shape not in SHAPES for shape in shapes):
        raise ValueError(f"shapes must be a non-empty subset of {SHAPES}, got {tuple(shapes)}")


def _check_motion(motion: str) -> None:
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")


# `shapes` restricts the shapes drawn from (the demo uses discs only: see docs/PERFORMANCE.md). `motion` picks the
# trajectory kind; "straight" reaches its end point at frame num_frames - 1.
def sample_sprite_params(rng: np.random.Generator, scale_oscillation_prob: float = 0.5,
                         radius_range: tuple[float, float] = (0.21, 0.3), shapes: tuple[str, ...] = SHAPES,
                         motion: str = "wander", num_frames: int = 128) -> dict:
    if not 0 < radius_range[0] <= radius_range[1] < 0.45:
        raise ValueError(f"radius_range must satisfy 0 < min <= max < 0.45, got {radius_range}")
    _check_shapes(shapes)
    _check_motion(motion)
    radius = float(rng.uniform(*radius_range))
    scale_amp = float(rng.uniform(0.03, 0.1)) if rng.random() < scale_oscillation_prob else 0.0
    margin = radius * (1 + scale_amp) + 0.01
    bg_kind = "plain" if rng.random() < 0.5 else "gradient"
    bg_colors = [_hsv_to_rgb255(rng.random(), rng.uniform(0, 0.25), rng.uniform(0.1, 0.55)) for _ in range(2)]
    params = dict(
        shape=shapes[int(rng.integers(len(shapes)))],
        color=_hsv_to_rgb255(rng.random(), rng.uniform(0.75, 1.0), rng.uniform(0.85, 1.0)),
        radius=radius,  # circumradius, fraction of the frame size
        background=dict(kind=bg_kind, colors=bg_colors if bg_kind == "gradient" else bg_colors[:1],
                        direction=float(rng.uniform(0, 2 * math.pi))),
        start=[float(rng.uniform(margin, 1 - margin)), float(rng.uniform(margin, 1 - margin))],
        **_wander_motion(rng),
        angle=float(rng.uniform(0, 2 * math.pi)),
        spin=float(rng.uniform(-0.08, 0.08)),  # rad / frame
        scale_amp=scale_amp, scale_period=float(rng.uniform(24, 64)), scale_phase=float(rng.uniform(0, 2 * math.pi)),
    )
    if motion == "straight":
        params.update(_straight_motion(rng, margin, num_frames))
    return dict(params, motion=motion)


# The "wander" motion parameters: speed, heading and its slow turning.
def _wander_motion(rng: np.random.Generator) -> dict:
    return dict(
        speed=float(rng.uniform(0.008, 0.02)),  # frame sizes per frame
        heading=float(rng.uniform(0, 2 * math.pi)),
        turn_rate=float(rng.uniform(-0.03, 0.03)),  # rad / frame
        turn_wiggle=float(rng.uniform(0, 0.03)),  # amplitude of a sinusoidal extra turn, rad / frame
        wiggle_period=float(rng.uniform(20, 60)),  # frames
    )


# The same sprite, background and size under a new draw of its kind of motion: from the same start position (the
# "same content, other motion noise" ground truth that motion diversity is compared with), or from a new one.
def resample_motion(params: dict, rng: np.random.Generator, num_frames: int = 128, keep_start: bool = True) -> dict:
    motion = params.get("motion", "wander")
    _check_motion(motion)
    margin = params["radius"] * (1 + params["scale_amp"]) + 0.01
    if motion == "wander":
        new = _wander_motion(rng)
        new["start"] = rng.uniform(margin, 1 - margin, size=2).tolist()
    else:
        new = _straight_motion(rng, margin, num_frames)
    if keep_start:
        new["start"] = params["start"]
    return dict(params, **new)


# Constant-velocity motion from a start within STRAIGHT_START of the free width around the centre, in a uniform
# random direction, covering STRAIGHT_TRAVEL of the free width in num_frames - 1 frames (so it stays inside).
def _straight_motion(rng: np.random.Generator, margin: float, num_frames: int) -> dict:
    width = 1 - 2 * margin
    r, a = STRAIGHT_START * width * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    return dict(start=[0.5 + r * math.cos(a), 0.5 + r * math.sin(a)], heading=float(rng.uniform(0, 2 * math.pi)),
                speed=STRAIGHT_TRAVEL * width / max(num_frames - 1, 1), turn_rate=0.0, turn_wiggle=0.0)


# Per-frame sprite state: x, y (centre, normalised), angle (rad) and scale (multiplies radius), as float64 [T]
# arrays. The centre moves `speed` per frame along a heading that turns by turn_rate + a sinusoidal wiggle, and
# bounces (mirror reflection) off the box that keeps the whole sprite inside the frame.
def sprite_trajectory(params: dict, num_frames: int) -> dict[str, np.ndarray]:
    margin = params["radius"] * (1 + params["scale_amp"]) + 0.01
    lo, hi = margin, 1 - margin
    pos = np.array(params["start"], dtype=np.float64)
    heading = params["heading"]
    xs, ys = np.zeros(num_frames), np.zeros(num_frames)
    for t in range(num_frames):
        xs[t], ys[t] = pos
        heading += params["turn_rate"] + params["turn_wiggle"] * math.sin(2 * math.pi * t / params["wiggle_period"])
        vel = params["speed"] * np.array([math.cos(heading), math.sin(heading)])
        pos = pos + vel
        for axis in range(2):
            if pos[axis] < lo or pos[axis] > hi:
                pos[axis] = 2 * (lo if pos[axis] < lo else hi) - pos[axis]
                vel[axis] = -vel[axis]
                heading = math.atan2(vel[1], vel[0])
    t = np.arange(num_frames)
    angle = params["angle"] + params["spin"] * t
    scale = 1 + params["scale_amp"] * np.sin(2 * math.pi * t / params["scale_period"] + params["scale_phase"])
    return dict(x=xs, y=ys, angle=angle, scale=scale)


# Inside test for a shape in local coordinates (q = rotated offset / (radius * scale)); every shape fits in the
# unit circle.
def _inside(shape: str, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    if shape == "disc":
        return qx**2 + qy**2 <= 1
    if shape == "square":
        return np.maximum(abs(qx), abs(qy)) <= 0.7
    if shape == "triangle":  # equilateral, circumradius 1, inradius 0.5, pointing up (-y)
        normals = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3,
                                                         math.pi / 2 + 4 * math.pi / 3)]
        return np.all([nx * qx + ny * qy <= 0.5 for nx, ny in normals], axis=0)
    if shape == "plus":
        return ((abs(qx) <= 0.4) & (abs(qy) <= 0.95)) | ((abs(qy) <= 0.4) & (abs(qx) <= 0.95))
    raise ValueError(f"unknown sprite shape {shape!r}; expected one of {SHAPES}")


# Background image float [R, R, 3] in 0..255: plain colour, or a linear gradient between two colours along
# `direction`.
def _background(bg: dict, resolution: int) -> np.ndarray:
    c = (np.arange(resolution) + 0.5) / resolution - 0.5
    gy, gx = np.meshgrid(c, c, indexing="ij")
    c0 = np.array(bg["colors"][0], dtype=np.float64)
    if bg["kind"] == "plain":
        return np.broadcast_to(c0, (resolution, resolution, 3)).copy()
    s = np.clip(0.5 + (gx * math.cos(bg["direction"]) + gy * math.sin(bg["direction"])) / math.sqrt(2), 0, 1)
    return c0 + s[..., None] * (np.array(bg["colors"][1], dtype=np.float64) - c0)


# Render one video: uint8 [T, R, R, 3]. Coverage is anti-aliased by supersampling (4x4 samples per pixel up to
# 64 px, 2x2 from 128 px).
def render_sprites_video(params: dict, num_frames: int, resolution: int) -> np.ndarray:
    traj = sprite_trajectory(params, num_frames)
    ss = 4 if resolution <= 64 else 2
    n = resolution * ss
    c = (np.arange(n) + 0.5) / n
    py, px = np.meshgrid(c, c, indexing="ij")
    bg = _background(params["background"], resolution)
    color = np.array(params["color"], dtype=np.float64)
    video = np.empty([num_frames, resolution, resolution, 3], dtype=np.uint8)
    for t in range(num_frames):
        dx, dy = px - traj["x"][t], py - traj["y"][t]
        ca, sa = math.cos(traj["angle"][t]), math.sin(traj["angle"][t])
        r = params["radius"] * traj["scale"][t]
        inside = _inside(params["shape"], (ca * dx + sa * dy) / r, (-sa * dx + ca * dy) / r)
        alpha = inside.reshape(resolution, ss, resolution, ss).mean(axis=(1, 3))[..., None]
        video[t] = np.rint(bg * (1 - alpha) + color * alpha).clip(0, 255).astype(np.uint8)
    return video


# Ground truth of one video: its parameters and the per-frame trajectory (lists, JSON-able).
def sprite_ground_truth(params: dict, num_frames: int, resolution: int) -> dict:
    traj = sprite_trajectory(params, num_frames)
    return dict(params=params, trajectory={k: v.tolist() for k, v in traj.items()}, resolution=resolution,
                num_frames=num_frames)


# Write N videos x T frames at R px (PNG) as a folder, or an uncompressed zip with zip=True (".zip" is appended to
# out_dir when missing). Video v uses np.random.default_rng([seed, v]), so the first videos do not depend on N.
# With videos_per_content = k > 1, videos v = k*c .. k*c + k-1 share content c and its first frame (drawn from
# [seed, c]) and each draws its own motion from [seed, v, 1]. spread_headings=True (straight motion) instead turns a
# content's k directions 360/k degrees apart from a uniformly random one: every video's direction is still uniform,
# but a content's k videos always leave in k different ways. Returns the path written. `progress` shows a tqdm bar.
def write_synthetic_dataset(out_dir, num_videos: int = 64, num_frames: int = 128, resolution: int = 32,
                            seed: int = 0, zip: bool = False, overwrite: bool = False, progress: bool = False,
                            fps: float = 16.0, shapes: tuple[str, ...] = SHAPES, motion: str = "wander",
                            videos_per_content: int = 1, radius_range: tuple[float, float] = (0.21, 0.3),
                            spread_headings: bool = False) -> Path:
    from training.dataset import DatasetWriter
    _check_shapes(shapes)
    _check_motion(motion)
    if videos_per_content < 1:
        raise ValueError(f"videos_per_content must be >= 1, got {videos_per_content}")
    if spread_headings and (motion != "straight" or videos_per_content < 2):
        raise ValueError("spread_headings needs motion='straight' and videos_per_content >= 2")
    sample = dict(shapes=tuple(shapes), motion=motion, num_frames=num_frames, radius_range=tuple(radius_range))
    sample_sprite_params(np.random.default_rng(0), **sample)  # bad arguments fail before anything is written
    dest = Path(out_dir)
    if zip and dest.suffix.lower() != ".zip":
        dest = dest.with_name(dest.name + ".zip")
    if not zip and dest.suffix.lower() == ".zip":
        raise ValueError(f"{dest}: a .zip name needs zip=True")
    with DatasetWriter(dest, overwrite=overwrite) as writer:
        videos = range(num_videos)
        if progress:
            from tqdm import tqdm
            videos = tqdm(videos, desc="synthetic videos", unit="video")
        for v in videos:
            k = videos_per_content
            content = sample_sprite_params(np.random.default_rng([seed, v // k]), **sample)
            params = resample_motion(content, np.random.default_rng([seed, v, 1]), num_frames) if k > 1 else content
            if spread_headings:
                params["heading"] = (content["heading"] + 2 * math.pi * (v % k) / k) % (2 * math.pi)
            name = f"video_{v:05d}"
            for t, frame in enumerate(render_sprites_video(params, num_frames, resolution)):
                writer.add_image(f"{name}/{t:06d}.png", frame)
            writer.add_json(f"{name}/{GT_FILE}", dict(sprite_ground_truth(params, num_frames, resolution),
                                                      seed=seed, video=v), indent=None)
        writer.add_json("dataset.json", dict(kind="video", fps=fps, resolution=resolution, num_videos=num_videos,
                                             num_frames=num_videos * num_frames, source="synthetic moving sprites",
                                             synthetic=dict(seed=seed, num_frames_per_video=num_frames,
                                                            shapes=list(shapes), motion=motion,
                                                            videos_per_content=videos_per_content,
                                                            spread_headings=spread_headings,
                                                            radius_range=list(radius_range))))
    return dest


# Ground truth of every video of a synthetic dataset (folder or zip): {video folder name: ground-truth dict}.
def load_ground_truth(path) -> dict[str, dict]:
    from training.dataset import _FileStore
    store = _FileStore(path)
    return {os.path.dirname(n): json.loads(store.read(n)) for n in store.names if n.endswith("/" + GT_FILE)}


# A video as [T, H, W, 3]; [T, 3, H, W] (the datasets' layout) is transposed.
def _as_thwc(video) -> np.ndarray:
    video = np.asarray(video)
    if video.ndim == 4 and video.shape[1] == 3 and video.shape[-1] != 3:
        video = video.transpose(0, 2, 3, 1)
    return video


# Per-frame sprite measurements of a video uint8 [T, H, W, 3] (or [T, 3, H, W]), valid for real and generated videos:
#   mask: sprite pixels = saturation (max-min)/max > 0.5 and value max > 0.45 (sprites are saturated and bright,
#         backgrounds dull); with background_hint (an RGB colour), pixels farther than 80 (RGB distance) from it.
#   color [T, 3]: median RGB of the mask; area [T]: mask fraction of the frame; center [T, 2]: mask centroid in
#   normalised (x, y). Frames with fewer than 2 mask pixels have NaN colour/centre and area 0.
def sprite_measurements(video: np.ndarray, background_hint=None) -> dict[str, np.ndarray]:
    video = _as_thwc(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected a video uint8 [T, H, W, 3], got shape {video.shape}")
    x = video.astype(np.float32)
    if background_hint is None:
        vmax, vmin = x.max(-1), x.min(-1)
        mask = ((vmax - vmin) > 0.5 * vmax) & (vmax > 0.45 * 255)
    else:
        mask = np.linalg.norm(x - np.asarray(background_hint, dtype=np.float32), axis=-1) > 80
    num_t, h, w = mask.shape
    color = np.full([num_t, 3], np.nan)
    center = np.full([num_t, 2], np.nan)
    area = mask.reshape(num_t, -1).mean(1)
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    for t in range(num_t):
        if mask[t].sum() >= 2:
            color[t] = np.median(x[t][mask[t]], axis=0)
            rows, cols = np.nonzero(mask[t])
            center[t] = [xs[cols].mean(), ys[rows].mean()]
    return dict(color=color, area=area, center=center)


# Colour distance normalised to [0, 1] (RGB Euclidean / (255 sqrt 3)); a missing sprite (NaN) counts as 1.
def _color_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(a - b, axis=-1) / (255 * math.sqrt(3))
    return np.where(np.isnan(d), 1.0, d)


# Identity consistency of a video uint8 [T, H, W, 3] (lower is better, 0 = perfect): the mean over frames t >= 1
# of the normalised colour distance between the sprite in frame t and in frame 0 (see `sprite_measurements`).
# A frame without a sprite counts as distance 1; a video whose frame 0 has no sprite scores 1. Motion, rotation
# and the gentle scale change of real videos do not change the sprite's median colour.
def identity_consistency(video: np.ndarray, background_hint=None) -> float:
    m = sprite_measurements(video, background_hint)
    if len(m["color"]) < 2:
        return 0.0
    return float(_color_distance(m["color"][1:], m["color"][0]).mean())


# Identity drift statistics: colour drift (= identity_consistency), area drift (mean |log(area_t / area_0)| over
# frames with a sprite) and the fraction of frames without a sprite.
def identity_stats(video: np.ndarray, background_hint=None) -> dict[str, float]:
    m = sprite_measurements(video, background_hint)
    present = m["area"] > 0
    area_drift = float(np.abs(np.log(m["area"][present] / m["area"][0])).mean()) if present[0] else float("nan")
    return dict(color_drift=float(_color_distance(m["color"][1:], m["color"][0]).mean()) if len(present) > 1
                else 0.0, area_drift=area_drift, missing=float(1 - present.mean()))


# Error against the ground truth identity: mean over frames of the normalised colour distance between the measured
# sprite colour and the ground-truth colour (`gt` is a ground-truth dict or its "params").
def gt_identity_error(video: np.ndarray, gt: dict) -> float:
    params = gt.get("params", gt)
    m = sprite_measurements(video)
    return float(_color_distance(m["color"], np.array(params["color"], dtype=np.float64)).mean())


# Mean distance in pixels between the measured sprite centroid and the ground-truth trajectory (missing frames
# count as the frame diagonal).
def gt_trajectory_error(video: np.ndarray, gt: dict) -> float:
    m = sprite_measurements(video)
    res = _as_thwc(video).shape[1]
    true = np.stack([gt["trajectory"]["x"], gt["trajectory"]["y"]], axis=1)
    d = np.linalg.norm(m["center"] - true, axis=1) * res
    return float(np.where(np.isnan(d), math.sqrt(2) * res, d).mean())


# Motion smoothness (lower is smoother): mean norm of the second difference of the sprite centroid, in pixels per
# frame^2, over frames where three consecutive centroids exist (NaN if none).
def motion_smoothness(video: np.ndarray, background_hint=None) -> float:
    c = sprite_measurements(video, background_hint)["center"] * _as_thwc(video).shape[1]
    acc = np.linalg.norm(c[2:] - 2 * c[1:-1] + c[:-2], axis=1)
    acc = acc[~np.isnan(acc)]
    return float(acc.mean()) if len(acc) else float("nan")


# ----------------------------------------------------------------------------------------------------------
# Motion measures (the demo's report): a still sprite scores 0 on both; frames without a sprite are left out.


# Length in pixels of the range (per-axis max - min) of points [T, 2] in pixels, NaN rows ignored (NaN if < 2).
def _range_length(points: np.ndarray) -> float:
    points = points[~np.isnan(points).any(axis=1)]
    return float(np.linalg.norm(points.max(0) - points.min(0))) if len(points) >= 2 else float("nan")


# Sprite centroid per frame of a video, in pixels [T, 2] (x, y; NaN where no sprite is found).
def centroid_track(video: np.ndarray, background_hint=None) -> np.ndarray:
    return sprite_measurements(video, background_hint)["center"] * _as_thwc(video).shape[2]


# Travel of a video: the length in pixels of the range of its sprite centroid over all frames (max - min per
# axis); 0 for a sprite held still. NaN if fewer than two frames show a sprite.
def sprite_travel(video: np.ndarray, background_hint=None) -> float:
    return _range_length(centroid_track(video, background_hint))


# Travel of a ground-truth trajectory (a ground-truth dict of `sprite_ground_truth`), in pixels.
def trajectory_travel(gt: dict) -> float:
    traj = gt["trajectory"]
    return _range_length(np.stack([traj["x"], traj["y"]], axis=1) * gt["resolution"])


# Motion diversity: for pairs of videos with the same content (first frame) and different motion noise, the mean
# distance in pixels between their sprite centroids in the last frame; pairs missing a sprite there are left out.
def motion_diversity(videos_a, videos_b) -> float:
    if len(videos_a) != len(videos_b):
        raise ValueError(f"motion_diversity needs pairs of videos, got {len(videos_a)} and {len(videos_b)}")
    ends = [(centroid_track(a[-1:])[0], centroid_track(b[-1:])[0]) for a, b in zip(videos_a, videos_b)]
    d = np.array([np.linalg.norm(p - q) for p, q in ends])
    d = d[~np.isnan(d)]
    return float(d.mean()) if len(d) else float("nan")
