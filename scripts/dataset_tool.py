"""Dataset tool: convert videos or frame folders to the per-video frame-folder layout, or write the synthetic set.

Examples:
  python scripts/dataset_tool.py synthetic --out data/sprites32 --num-videos 64 --num-frames 128 --resolution 32
  python scripts/dataset_tool.py from-videos --source raw/ --dest data/ffs256.zip --resolution 256 --fps 25
Output: `<video>/<frame:06d>.png` per video plus `dataset.json`, as a folder or an uncompressed zip (dest ending in
.zip). The dataset is written to a temporary name and renamed at the end, so an interrupted run leaves nothing.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dnnlib.errors import clean_errors  # noqa: E402
from training.dataset import IMAGE_EXTENSIONS, DatasetWriter, center_crop_resize  # noqa: E402

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".mkv")


# The videos under `source`: video files (by extension) and folders that directly hold image files, sorted by
# relative path. Returns [(relative path, kind 'file'|'frames', absolute path)].
def find_videos(source: Path) -> list[tuple[str, str, Path]]:
    found = []
    for root, _dirs, files in os.walk(source, followlinks=True):
        rel_root = Path(root).relative_to(source)
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            found.append((rel_root.as_posix(), "frames", Path(root)))
        for f in files:
            if f.lower().endswith(VIDEO_EXTENSIONS):
                found.append(((rel_root / f).as_posix(), "file", Path(root) / f))
    return sorted(found)


# Frames of a video file as uint8 [H, W, 3] arrays, decoded by imageio-ffmpeg, plus the file's fps.
def _video_file_frames(path: Path):
    import imageio_ffmpeg
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as e:
        raise click.ClickException(f"{path}: cannot decode video ({e})") from e
    w, h = meta["size"]

    def frames():
        try:
            for buf in reader:
                yield np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
        except (OSError, RuntimeError) as e:
            raise click.ClickException(f"{path}: cannot decode video ({e})") from e
        finally:
            reader.close()
    return frames(), meta.get("fps")


# Frames of a frame folder (sorted by name) as uint8 [H, W, 3] arrays.
def _folder_frames(path: Path):
    for f in sorted(p for p in path.iterdir() if p.name.lower().endswith(IMAGE_EXTENSIONS)):
        try:
            with PIL.Image.open(f) as img:
                yield np.asarray(img.convert("RGB"))
        except Exception as e:  # PIL raises many types for bad files
            raise click.ClickException(f"{f}: unreadable image ({type(e).__name__}: {e})") from e


# Paper Algorithm 1 (Appendix D): pad a box (xmin, ymin, xmax, ymax) to a square about its centre.
def square_box(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float, float, float]:
    w, h = xmax - xmin, ymax - ymin
    if w < h:
        d = h - w
        return xmin - d / 2, ymin, xmax + d / 2, ymax
    d = w - h
    return xmin, ymin - d / 2, xmax, ymax + d / 2


# Crop a frame to the square of Algorithm 1 around `box` (areas outside the frame are black) and resize.
def box_crop(frame: np.ndarray, box, resolution: int) -> np.ndarray:
    x0, y0, x1, y1 = (int(round(v)) for v in square_box(*box))
    img = PIL.Image.fromarray(frame).crop((x0, y0, x1, y1))
    return np.asarray(img.resize((resolution, resolution), PIL.Image.LANCZOS))


def _center_crop(frame: np.ndarray, resolution: int) -> np.ndarray:
    return np.asarray(center_crop_resize(PIL.Image.fromarray(frame), resolution, PIL.Image.LANCZOS))


# Indices kept when subsampling src_fps -> fps: for each output time j / fps, the first source frame at or after it.
def _subsample(frames, src_fps: float | None, fps: float | None):
    if fps is None or src_fps is None or fps >= src_fps:
        yield from enumerate(frames)
        return
    ratio, kept = src_fps / fps, 0
    for i, frame in enumerate(frames):
        if i >= kept * ratio - 1e-6:
            kept += 1
            yield i, frame


@click.group()
def cli():
    """Create StyleInV datasets (per-video folders of PNG frames, folder or uncompressed zip)."""


@cli.command("from-videos")
@click.option("--source", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of video files (mp4/avi/mov/webm/mkv) and/or folders of frames, searched recursively.")
@click.option("--dest", required=True, type=click.Path(path_type=Path), help="Output folder, or a file ending in .zip.")
@click.option("--resolution", required=True, type=click.IntRange(min=1), help="Output frames are N x N.")
@click.option("--boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON {video: [[xmin, ymin, xmax, ymax], ...] one per source frame}; video is the relative source "
                   "path with or without extension. Crops each frame to its box padded to a square (Algorithm 1).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Subsample to this frame rate (never upsamples).")
@click.option("--source-fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frame rate of frame-folder sources (video files report their own).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Keep at most N frames per video.")
@click.option("--max-videos", type=click.IntRange(min=1), default=None, help="Convert at most N videos.")
@click.option("--overwrite", is_flag=True, help="Replace an existing dest (only once the new dataset is complete).")
@clean_errors
def from_videos(source, dest, resolution, boxes, fps, source_fps, max_frames, max_videos, overwrite):
    """Convert videos or frame folders to the dataset layout (center crop, or per-frame box crop)."""
    videos = find_videos(source)[:max_videos]
    if not videos:
        raise click.ClickException(f"{source}: no video files ({', '.join(VIDEO_EXTENSIONS)}) or frame folders found")
    box_table = json.loads(boxes.read_text()) if boxes is not None else None
    names = [_video_name(rel, kind, source) for rel, kind, _ in videos]
    if len(set(names)) != len(names):
        raise click.ClickException(f"{source}: two sources map to the same video name; rename them")
    if dest.exists() and not overwrite:
        raise click.ClickException(f"{dest} already exists (pass --overwrite to replace it)")
    fps_seen, total = set(), 0
    with DatasetWriter(dest, overwrite=overwrite) as writer:
        bar = tqdm(list(zip(videos, names, strict=True)), desc="videos", unit="video", file=sys.stderr)
        for (rel, kind, path), name in bar:
            frames, src_fps = _video_file_frames(path) if kind == "file" else (_folder_frames(path), source_fps)
            if fps is not None and src_fps is None:
                raise click.ClickException(f"{path}: unknown source frame rate; pass --source-fps to use --fps")
            video_boxes = _boxes_for(box_table, rel, boxes) if box_table is not None else None
            count = 0
            for i, frame in _subsample(frames, src_fps, fps):
                if video_boxes is not None:
                    if i >= len(video_boxes):
                        raise click.ClickException(f"{boxes}: video {rel} has {len(video_boxes)} boxes but more "
                                                   f"frames")
                    frame = box_crop(frame, video_boxes[i], resolution)
                else:
                    frame = _center_crop(frame, resolution)
                writer.add_image(f"{name}/{count:06d}.png", frame)
                count += 1
                if max_frames is not None and count >= max_frames:
                    frames.close()
                    break
            if count == 0:
                raise click.ClickException(f"{path}: no frames decoded")
            total += count
            fps_seen.add(min(fps, src_fps) if fps and src_fps else src_fps)
            bar.set_postfix(frames=total)
        out_fps = fps_seen.pop() if len(fps_seen) == 1 else None
        writer.add_json("dataset.json", dict(kind="video", fps=out_fps, resolution=resolution, num_videos=len(videos),
                                             num_frames=total, source=str(source)))
    click.echo(f"Wrote {dest}: {len(videos)} videos, {total} frames at {resolution}x{resolution}, fps {out_fps}")


# Output folder name of a source: its relative path without a video extension, "/" -> "_".
def _video_name(rel: str, kind: str, source: Path) -> str:
    if rel == ".":
        return source.name
    return (Path(rel).with_suffix("").as_posix() if kind == "file" else rel).replace("/", "_")


def _boxes_for(table: dict, rel: str, boxes_path: Path) -> list:
    for key in (rel, str(Path(rel).with_suffix("")), Path(rel).name, Path(rel).stem):
        if key in table:
            return table[key]
    raise click.ClickException(f"{boxes_path}: no boxes for video {rel}")


@cli.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (or .zip with --zip).")
@click.option("--num-videos", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--num-frames", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--resolution", default=32, show_default=True, type=click.IntRange(min=8))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--zip", "as_zip", is_flag=True, help="Write an uncompressed zip instead of a folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (only once the new one is complete).")
@click.option("--shapes", default="disc,square,triangle,plus", show_default=True,
              help="Comma-separated sprite shapes to draw from.")
@clean_errors
def synthetic(out, num_videos, num_frames, resolution, seed, as_zip, overwrite, shapes):
    """Write the moving-sprites dataset, with per-video ground truth (sprite_gt.json next to the frames)."""
    from training.sprites import write_synthetic_dataset
    try:
        path = write_synthetic_dataset(out, num_videos=num_videos, num_frames=num_frames, resolution=resolution,
                                       seed=seed, zip=as_zip, overwrite=overwrite, progress=True,
                                       shapes=tuple(s.strip() for s in shapes.split(",") if s.strip()))
    except (FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Wrote {path}: {num_videos} videos x {num_frames} frames at {resolution}x{resolution}")


if __name__ == "__main__":
    cli()
