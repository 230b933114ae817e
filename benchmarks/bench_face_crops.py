"""Jitter of stabilised face crops (paper App. D) with the dlib detector, on a clip with a known camera motion.

The clip is a slow pan (sinusoidal sideways, steady downwards) over scikit-image's astronaut.png, encoded as h264
and decoded again, so the true crop motion is known. For each setting (jittered boxes averaged per frame, temporal
Gaussian) it prints the RMS frame-to-frame change of the crop centre after removing the true motion (pixels of the
source, and of a 256 px crop), the same for the crop size, and the landmark time per frame. The detector's boxes
are computed once and shared by all settings. Needs requirements-faces.txt and scikit-image.
  python benchmarks/bench_face_crops.py --frames 100 --noise 0 (and --noise 8)
"""

import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402

from training import face_crops  # noqa: E402
from training.face_detectors import load_detector  # noqa: E402


# Frames of the pan (plus Gaussian pixel noise of std `noise` grey levels, like a sensor's), through an h264 round
# trip, and the true shift (x, y) of the content in each frame.
def pan_clip(num_frames: int, noise: float, size: int = 384) -> tuple[list[np.ndarray], np.ndarray]:
    import imageio_ffmpeg
    import skimage.data
    photo = PIL.Image.fromarray(skimage.data.astronaut())
    shifts = np.array([[30 * math.sin(2 * math.pi * t / 100), 0.4 * t] for t in range(num_frames)])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "pan.mp4")
        writer = imageio_ffmpeg.write_frames(path, (size, size), fps=25, quality=8, macro_block_size=16)
        writer.send(None)
        for dx, dy in shifts:
            frame = photo.transform((size, size), PIL.Image.AFFINE, (1, 0, 64 - dx, 0, 1, 32 - dy), PIL.Image.BICUBIC)
            frame = np.asarray(frame) + rng.normal(0, noise, (size, size, 3)) if noise else np.asarray(frame)
            writer.send(np.clip(np.rint(frame), 0, 255).astype(np.uint8).tobytes())
        writer.close()
        reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
        next(reader)
        frames = [np.frombuffer(buf, np.uint8).reshape(size, size, 3) for buf in reader]
    return frames, shifts


# The detector with its boxes looked up from a precomputed list (frames come in order).
class _SharedBoxes:
    def __init__(self, detector, boxes):
        self.detector, self.boxes, self.k = detector, boxes, 0

    def detect(self, frame):
        self.k += 1
        return self.boxes[self.k - 1]

    def landmarks(self, frame, box):
        return self.detector.landmarks(frame, box)


@click.command()
@click.option("--frames", "num_frames", default=100, show_default=True, type=click.IntRange(min=10))
@click.option("--mode", default="ffhq", show_default=True, type=click.Choice(["ffhq", "box"]))
@click.option("--settings", default="1:0,8:0,1:2,8:2,16:3", show_default=True,
              help="jitter_count:smooth_sigma pairs.")
@click.option("--jitter-shift", default=face_crops.JITTER_SHIFT, show_default=True, type=float)
@click.option("--noise", default=0.0, show_default=True, type=float, help="Pixel noise std (grey levels).")
def main(num_frames, mode, settings, jitter_shift, noise):
    frames, shifts = pan_clip(num_frames, noise)
    detector = load_detector("dlib")
    boxes = [detector.detect(f) for f in frames]
    print(f"{len(frames)} frames, noise {noise:g}, {mode} crops, faces found in {sum(len(b) > 0 for b in boxes)}; "
          f"jitter = RMS frame-to-frame change minus the true motion")
    print(f"{'count':>5} {'sigma':>5} | {'centre px':>9} {'@256 px':>7} {'ratio':>6} | {'size px':>7} | "
          f"{'landmarks ms/frame':>18}")
    base = None
    for item in settings.split(","):
        count, sigma = int(item.split(":")[0]), float(item.split(":")[1])
        start = time.perf_counter()
        raw = face_crops.detect_crop_params(frames, _SharedBoxes(detector, boxes), mode, np.random.default_rng(0),
                                            count, jitter_shift)
        ms = (time.perf_counter() - start) / len(frames) * 1e3
        p = face_crops.smooth_crop_params(raw, sigma)
        side = 2 * np.hypot(p[:, 2], p[:, 3])
        centre = face_crops.centre_jitter(p, shifts)
        size = float(np.sqrt(np.mean(np.diff(side) ** 2)))
        base = base or centre
        print(f"{count:>5} {sigma:>5g} | {centre:>9.3f} {centre * 256 / side.mean():>7.3f} {centre / base:>6.3f} | "
              f"{size:>7.3f} | {ms:>18.1f}")


if __name__ == "__main__":
    main()
