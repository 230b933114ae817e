"""Face crops for video datasets (paper App. D): FFHQ alignment from landmarks, the padded square of Algorithm 1,
stabilisation by jittered re-detection and temporal smoothing, and the per-video `crops.json`.

A crop is an oriented square, given per frame by four numbers `(cx, cy, ax, ay)`: the centre `c` and the half-side
vector `a` from the centre to the middle of the square's right edge. The downward half-side is `b = (-ay, ax)`, so
`2 |a|` is the side and `atan2(ay, ax)` the rotation. Pixel coordinates are continuous: pixel (row i, column j)
covers [j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5).

Stabilisation (App. D, after Naruniec et al. 2020): the landmarks of a frame are the mean of the landmarks predicted
from `jitter_count` copies of the face box, each shifted by a random distance, uniform in [0, jitter_shift * box
width], at a random angle, uniform in [0, 2 pi), drawn from a generator seeded per video. Then each crop parameter
is smoothed across frames with a Gaussian of standard deviation `smooth_sigma` frames (scipy's gaussian_filter1d,
truncated at 4 sigma), the track extended beyond its ends by point reflection so that steady motion is kept
without lag up to the first and last frame; frames where no face was found are first filled by linear
interpolation between their neighbours.
"""

import json
import math
from collections.abc import Callable, Iterable

import numpy as np
import PIL.Image
import scipy.ndimage

CROPS_FILE = "crops.json"
JITTER_COUNT = 8  # landmark predictions averaged per frame
JITTER_SHIFT = 0.05  # largest box shift, as a fraction of the box width
SMOOTH_SIGMA = 2.0  # standard deviation (frames) of the temporal Gaussian on the crop parameters


# Paper Algorithm 1 (Appendix D): pad a box (xmin, ymin, xmax, ymax) to a square about its centre.
def square_box(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float, float, float]:
    w, h = xmax - xmin, ymax - ymin
    if w < h:
        d = h - w
        return xmin - d / 2, ymin, xmax + d / 2, ymax
    d = w - h
    return xmin, ymin - d / 2, xmax, ymax + d / 2


# Crop parameters of Algorithm 1's square around `box` (axis-aligned).
def box_crop_params(box) -> np.ndarray:
    x0, y0, x1, y1 = square_box(*(float(v) for v in box))
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, 0.0])


# Eye centres and mouth corners (eye_left, eye_right, mouth_left, mouth_right; "left" = image left) from 68 points
# in the iBUG 300-W layout (dlib) or 5 points (left eye, right eye, nose, left and right mouth corner: RetinaFace,
# MTCNN).
def ffhq_key_points(landmarks) -> tuple[np.ndarray, ...]:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape == (68, 2):
        return lm[36:42].mean(0), lm[42:48].mean(0), lm[48], lm[54]
    if lm.shape == (5, 2):
        return lm[0], lm[1], lm[3], lm[4]
    raise ValueError(f"landmarks must be 68 x 2 (iBUG layout) or 5 x 2, got shape {lm.shape}")


# The FFHQ dataset's alignment (Karras et al. 2019, the published recreate-aligned-images recipe): the square's
# half-side vector points along eye-to-eye minus the 90-degree rotation of eye-to-mouth, with length
# max(2 * |eye_to_eye|, 1.8 * |eye_to_mouth|); the centre sits at eye_avg + 0.1 * eye_to_mouth.
def ffhq_crop_params(landmarks) -> np.ndarray:
    eye_left, eye_right, mouth_left, mouth_right = ffhq_key_points(landmarks)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / np.hypot(*x)
    c = eye_avg + eye_to_mouth * 0.1
    return np.array([c[0], c[1], x[0], x[1]])


# Corners [top-left, bottom-left, bottom-right, top-right] (4 x 2) of the square of crop parameters `p`.
def crop_quad(p) -> np.ndarray:
    c, a = np.asarray(p[:2], np.float64), np.asarray(p[2:4], np.float64)
    b = np.array([-a[1], a[0]])
    return np.stack([c - a - b, c - a + b, c + a + b, c + a - b])


# Cut the square `params` out of `frame` (uint8 H x W x 3) and resample it to resolution x resolution. As in the
# FFHQ script, a large square is first shrunk by an integer factor (box filter) so that at most 2 source pixels
# fall on an output pixel, then sampled bicubically at k times the output size and box-filtered down by k (k =
# remaining scale, rounded up), so downscaling does not alias and a square of exactly `resolution` source pixels
# is copied exactly. Outside the frame: mirrored content (`pad="reflect"`, FFHQ; without its blur of the padded
# area) or black (`pad="black"`).
def warp_crop(frame: np.ndarray, params, resolution: int, pad: str = "reflect") -> np.ndarray:
    quad = crop_quad(params)
    img = PIL.Image.fromarray(frame)
    scale = 2 * math.hypot(params[2], params[3]) / resolution  # source pixels per output pixel
    shrink = int(scale // 2)
    if shrink > 1:
        img, quad, scale = img.reduce(shrink), quad / shrink, scale / shrink
    if pad == "reflect":
        lo = np.maximum(0, np.ceil(-quad.min(0)) + 2).astype(int)
        hi = np.maximum(0, np.ceil(quad.max(0) - img.size) + 2).astype(int)
        if (lo > 0).any() or (hi > 0).any():
            arr = np.pad(np.asarray(img), ((lo[1], hi[1]), (lo[0], hi[0]), (0, 0)), mode="reflect")
            img, quad = PIL.Image.fromarray(arr), quad + lo
    elif pad != "black":
        raise ValueError(f"pad must be 'reflect' or 'black', got {pad!r}")
    k = max(1, math.ceil(scale - 1e-6))
    size = resolution * k
    (tlx, tly), (blx, bly), _, (trx, try_) = quad
    affine = ((trx - tlx) / size, (blx - tlx) / size, tlx, (try_ - tly) / size, (bly - tly) / size, tly)
    out = img.transform((size, size), PIL.Image.AFFINE, affine, resample=PIL.Image.BICUBIC)
    return np.asarray(out.reduce(k) if k > 1 else out)


# `count` copies of `box` shifted by a distance uniform in [0, shift * box width] at an angle uniform in [0, 2 pi).
def jitter_boxes(box, rng: np.random.Generator, count: int, shift: float) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    r = rng.uniform(0, shift * (box[2] - box[0]), count)
    theta = rng.uniform(0, 2 * np.pi, count)
    d = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    return box[None] + np.concatenate([d, d], 1)


# App. D stabilisation of one frame: the mean of `landmarker(box)` over `count` jittered copies of the face box
# (count=1, shift=0: the plain prediction from the box).
def stabilized_landmarks(landmarker: Callable, box, rng: np.random.Generator, count: int = JITTER_COUNT,
                         shift: float = JITTER_SHIFT) -> np.ndarray:
    return np.mean([np.asarray(landmarker(b), np.float64) for b in jitter_boxes(box, rng, count, shift)], axis=0)


# Temporal smoothing of per-frame crop parameters (T x 4; rows of NaN where no face was found): missing frames are
# filled by linear interpolation (the first / last detected value beyond the ends), then each parameter is
# filtered with a Gaussian of std `sigma` frames (0: no smoothing) over the track extended by point reflection
# (2 x[0] - x[k] before the start, likewise after the end), which keeps linear motion unchanged. At least one
# frame must be valid.
def smooth_crop_params(params, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    params = np.array(params, dtype=np.float64).reshape(-1, 4)
    valid = ~np.isnan(params).any(1)
    if not valid.any():
        raise ValueError("smooth_crop_params: no frame has crop parameters")
    t = np.arange(len(params))
    filled = np.stack([np.interp(t, t[valid], params[valid, j]) for j in range(params.shape[1])], 1)
    if sigma <= 0:
        return filled
    n = int(4 * sigma + 0.5)  # gaussian_filter1d's kernel radius
    padded = np.pad(filled, ((n, n), (0, 0)), mode="reflect", reflect_type="odd")
    return scipy.ndimage.gaussian_filter1d(padded, sigma, axis=0, mode="nearest")[n:n + len(filled)]


# Frame-to-frame jitter of a crop track: the RMS over frames of the change of the crop centre between consecutive
# frames, minus the change of a reference track (e.g. the true motion) when one is given.
def centre_jitter(params, reference=None) -> float:
    c = np.asarray(params, np.float64)[:, :2]
    d = np.diff(c, axis=0)
    if reference is not None:
        d = d - np.diff(np.asarray(reference, np.float64)[:, :2], axis=0)
    return float(np.sqrt((d**2).sum(1).mean()))


# The face to follow among `boxes` (N x 4, most confident first): the one overlapping `previous` most
# (intersection over union), else the first. Returns an index or None when there is no box.
def pick_face(boxes, previous=None) -> int | None:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    if previous is not None:
        p = np.asarray(previous, np.float64)
        iw = np.clip(np.minimum(boxes[:, 2], p[2]) - np.maximum(boxes[:, 0], p[0]), 0, None)
        ih = np.clip(np.minimum(boxes[:, 3], p[3]) - np.maximum(boxes[:, 1], p[1]), 0, None)
        inter = iw * ih
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        iou = inter / (area + (p[2] - p[0]) * (p[3] - p[1]) - inter)
        if iou.max() > 0:
            return int(iou.argmax())
    return 0


# Raw (unsmoothed) crop parameters of each frame (T x 4, NaN rows where no face was found) with `detector`
# (see training/face_detectors.py): the face is picked by `pick_face`, its landmarks stabilised by
# `stabilized_landmarks`, and turned into the FFHQ square (mode "ffhq") or Algorithm 1's square (mode "box")
# around the bounding box of the 68 landmarks (jaw, brows, eyes, nose, mouth: the face), or around the detected
# box for 5-landmark detectors. `progress(n)` is called after each frame.
def detect_crop_params(frames: Iterable[np.ndarray], detector, mode: str, rng: np.random.Generator,
                       jitter_count: int = JITTER_COUNT, jitter_shift: float = JITTER_SHIFT,
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
    if mode not in ("ffhq", "box"):
        raise ValueError(f"face crop mode must be 'ffhq' or 'box', got {mode!r}")
    rows, previous = [], None
    for frame in frames:
        boxes = np.asarray(detector.detect(frame), np.float64).reshape(-1, 4)
        i = pick_face(boxes, previous)
        if i is None:
            rows.append(np.full(4, np.nan))
        else:
            previous = boxes[i]
            lm = stabilized_landmarks(lambda b, f=frame: detector.landmarks(f, b), previous, rng, jitter_count,
                                      jitter_shift)
            if mode == "ffhq":
                rows.append(ffhq_crop_params(lm))
            else:
                rows.append(box_crop_params([*lm.min(0), *lm.max(0)] if len(lm) == 68 else previous))
        if progress is not None:
            progress(1)
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


# The crops.json record of one video: crop parameters per output frame and how they were made.
def crops_record(mode: str, frame_indices, params, raw, settings: dict, source: str, fps: float | None) -> dict:
    detected = ~np.isnan(np.asarray(raw, np.float64)).any(1)
    return dict(version=1, mode=mode, source=source, fps=fps, frame_indices=[int(i) for i in frame_indices],
                params=np.round(np.asarray(params, np.float64), 4).tolist(),
                detected=[bool(d) for d in detected], settings=settings)


# Validate a crops.json record read from `where`; returns (mode, frame indices, T x 4 parameters).
def parse_crops_record(record, where: str) -> tuple[str, list[int], np.ndarray]:
    try:
        mode, indices = record["mode"], [int(i) for i in record["frame_indices"]]
        params = np.asarray(record["params"], dtype=np.float64)
    except (TypeError, KeyError, ValueError) as e:
        raise ValueError(f"{where}: not a {CROPS_FILE} record ({type(e).__name__}: {e})") from e
    if mode not in ("ffhq", "box") or params.shape != (len(indices), 4) or not np.isfinite(params).all():
        raise ValueError(f"{where}: expected mode 'ffhq' or 'box' and one finite [cx, cy, ax, ay] per frame index")
    return mode, indices, params


def crops_json(record: dict) -> bytes:
    return json.dumps(record, indent=1).encode()
