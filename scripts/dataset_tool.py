"""Dataset tool: convert videos or frame folders to the per-video frame-folder layout, or write the synthetic set.

Examples:
  python scripts/dataset_tool.py synthetic --out data/sprites32 --num-videos 64 --num-frames 128 --resolution 32
  python scripts/dataset_tool.py from-videos --source raw/ --dest data/ffs256.zip --resolution 256 --fps 25
  python scripts/dataset_tool.py from-videos --source raw/ --dest data/dfuf256 --resolution 256 --faces ffhq
Output: `<video>/<frame:06d>.png` per video plus `dataset.json` (and `<video>/crops.json` with --faces), as a folder
or an uncompressed zip (dest ending in .zip). Finished videos collect in a hidden folder next to dest and the
dataset appears at dest only when every video is done, so an interrupted run leaves no dataset and the same
command resumes it.
"""

import concurrent.futures
import json
import multiprocessing
import os
import shutil
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dnnlib.errors import clean_errors  # noqa: E402
from training import face_crops  # noqa: E402
from training.dataset import IMAGE_EXTENSIONS, DatasetError, DatasetWriter, _FileStore, center_crop_resize  # noqa: E402
from training.face_detectors import load_detector  # noqa: E402

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".mkv")
FACE_MODES = ("ffhq", "box")


# The videos under `source`: video files (by extension) and folders that directly hold image files, sorted by
# relative path. Returns [(relative path, kind 'file'|'frames', absolute path)].
def find_videos(source: Path) -> list[tuple[str, str, Path]]:
    found = []
    for root, dirs, files in os.walk(source, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden folders, e.g. an unfinished run's .partial
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


# Source frames of one video kept for the dataset, as (source frame index, uint8 frame): every frame, subsampled to
# `fps`, at most `max_frames`; or exactly the source frames `indices` (from a crops.json). Returns (iterator, fps of
# the source).
def _kept_frames(kind: str, path: Path, fps, source_fps, max_frames, indices=None):
    frames, src_fps = _video_file_frames(path) if kind == "file" else (_folder_frames(path), source_fps)
    if fps is not None and src_fps is None and indices is None:
        raise click.ClickException(f"{path}: unknown source frame rate; pass --source-fps to use --fps")

    def kept():
        try:
            if indices is not None:
                wanted, last = set(indices), max(indices, default=-1)
                for i, frame in enumerate(frames):
                    if i in wanted:
                        yield i, frame
                    if i >= last:
                        break
            else:
                for count, (i, frame) in enumerate(_subsample(frames, src_fps, fps)):
                    if max_frames is not None and count >= max_frames:
                        break
                    yield i, frame
        finally:
            frames.close()
    return kept(), src_fps


# Face crop parameters (T x 4) of one video with --faces, from the stabilised detections, or a skip reason (str)
# when no face is found in more than --max-missing of its frames. Returns (params or reason, source indices, raw).
def _detect_video_crops(frames, name: str, o: dict, progress):
    detector = load_detector(o["detector"], o["detector_weights"])
    indices = []

    def tapped():
        for i, frame in frames:
            indices.append(i)
            yield frame
    rng = np.random.default_rng([o["seed"], zlib.crc32(name.encode())])
    raw = face_crops.detect_crop_params(tapped(), detector, o["faces"], rng, o["jitter_count"], o["jitter_shift"],
                                        progress=lambda n: progress("detected", n))
    missing = int(np.isnan(raw).any(1).sum())
    if len(raw) and missing > o["max_missing"] * len(raw):
        return f"no face in {missing} of {len(raw)} frames", indices, raw
    return (face_crops.smooth_crop_params(raw, o["smooth_sigma"]) if len(raw) else raw), indices, raw


# Convert one source video into `partial/<name>/` (its frames, plus crops.json with --faces or --crops); returns
# {"frames": n, "fps": f} or {"skipped": reason}. Runs in a worker process when --workers > 1. `progress(stage, n)`
# counts frames ("detected" in the detection pass of --faces, "written").
def _convert_video(job: dict, progress=lambda stage, n: None) -> dict:
    o, path, name, record = job["options"], Path(job["path"]), job["name"], job.get("crops")  # crops.json of --crops
    crops = face_crops.parse_crops_record(record, name) if record else None  # (mode, source indices, params)
    frames, src_fps = _kept_frames(job["kind"], path, o["fps"], o["source_fps"], o["max_frames"],
                                   crops[1] if crops else None)
    out_fps = record.get("fps") if record else (min(o["fps"], src_fps) if o["fps"] and src_fps else src_fps)
    mode = crops[0] if crops else o["faces"]
    if o["faces"]:
        params, indices, raw = _detect_video_crops(frames, name, o, progress)
        if isinstance(params, str):
            return dict(skipped=params)
        settings = {k: o[k] for k in ("detector", "jitter_count", "jitter_shift", "smooth_sigma", "seed")}
        record = face_crops.crops_record(mode, indices, params, raw, settings, job["rel"], out_fps)
        crops = (mode, indices, params)
        frames, _ = _kept_frames(job["kind"], path, None, None, None, indices)  # second pass: crop and write
    param_of = dict(zip(crops[1], crops[2])) if crops else None
    boxes, count, pad = job.get("boxes"), 0, "reflect" if mode == "ffhq" else "black"
    with DatasetWriter(Path(job["partial"]) / name, overwrite=True) as writer:
        for i, frame in frames:
            if param_of is not None:
                frame = face_crops.warp_crop(frame, param_of[i], o["resolution"], pad)
            elif boxes is not None:
                if i >= len(boxes):
                    raise click.ClickException(f"{o['boxes']}: video {job['rel']} has {len(boxes)} boxes but more "
                                               f"frames")
                frame = face_crops.warp_crop(frame, face_crops.box_crop_params(boxes[i]), o["resolution"], pad)
            else:
                frame = _center_crop(frame, o["resolution"])
            writer.add_image(f"{count:06d}.png", frame)
            count += 1
            progress("written", 1)
        if count == 0:
            raise click.ClickException(f"{path}: no frames decoded")
        if crops and count < len(crops[1]):
            raise ValueError(f"{path}: fewer frames than its {face_crops.CROPS_FILE} lists ({count} < {len(crops[1])})")
        if record is not None:
            writer.add(face_crops.CROPS_FILE, face_crops.crops_json(record))
    return dict(frames=count, fps=out_fps)


# _convert_video in a worker process, reporting progress through a queue.
def _convert_video_queued(job: dict, queue) -> dict:
    return _convert_video(job, lambda stage, n: queue.put((stage, n)))


# Run the jobs, in this process or in `workers` spawned processes, with progress bars for videos and frames;
# `on_done(job, result)` is called in this process as each video finishes. Pending jobs are cancelled on an error.
def _run_jobs(jobs: list[dict], workers: int, bars: dict, on_done) -> None:
    def progress(stage, n):
        bars[stage].update(n)
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            on_done(job, _convert_video(job, progress))
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        queue = manager.Queue()
        pool = concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx)
        try:
            futures = {pool.submit(_convert_video_queued, job, queue): job for job in jobs}
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(pending, timeout=0.2,
                                                        return_when=concurrent.futures.FIRST_COMPLETED)
                while not queue.empty():
                    progress(*queue.get())
                for future in done:
                    on_done(futures[future], future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


STATE_FILE = ".state.json"  # in the partial folder: options of the run, finished and skipped videos


# The unfinished run in `partial` (dest's hidden sibling): resumed when it was started with the same `settings`,
# otherwise an error (or discarded with --overwrite). Entries of videos it did not finish are removed.
def _open_partial(partial: Path, settings: dict, overwrite: bool) -> dict:
    state = dict(settings=settings, done={}, skipped={})
    if partial.exists():
        try:
            old = json.loads((partial / STATE_FILE).read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("settings") == settings:
            state = old
            click.echo(f"Resuming the unfinished run in {partial}: {len(old['done'])} videos done, "
                       f"{len(old['skipped'])} skipped", err=True)
        elif not overwrite:
            raise ValueError(f"{partial} holds an unfinished run with other options; rerun that command to resume "
                             f"it, or pass --overwrite to discard it")
        else:
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    for entry in partial.iterdir():
        if entry.name != STATE_FILE and entry.name not in state["done"]:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    _save_state(partial, state)
    return state


def _save_state(partial: Path, state: dict) -> None:
    tmp = partial / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, partial / STATE_FILE)


# Move the finished run into `dest`: a folder is renamed into place, a zip is written from it (atomically, by
# DatasetWriter), then the partial folder is removed.
def _finish(partial: Path, dest: Path, names: list[str], meta: dict, overwrite: bool) -> None:
    if dest.suffix.lower() == ".zip":
        with DatasetWriter(dest, overwrite=overwrite) as writer:
            for name in names:
                for f in sorted((partial / name).iterdir()):
                    writer.add(f"{name}/{f.name}", f.read_bytes())
            writer.add_json("dataset.json", meta)
        shutil.rmtree(partial)
        return
    (partial / STATE_FILE).unlink()
    (partial / "dataset.json").write_text(json.dumps(meta, indent=1))
    if dest.exists():  # --overwrite: the old dataset goes only now that the new one is complete
        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
    os.replace(partial, dest)


# --crops: the crops.json records of a dataset made with --faces (folder or zip), {video name: record}, for those
# of the videos `names` that it has (the others were skipped when it was made, or are new).
def _read_crops(path: Path, names: list[str]) -> dict:
    store, table = _FileStore(path), {}
    for name in names:
        where = store.describe(f"{name}/{face_crops.CROPS_FILE}")
        if f"{name}/{face_crops.CROPS_FILE}" not in store.names:
            continue
        try:
            record = json.loads(store.read(f"{name}/{face_crops.CROPS_FILE}"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{where}: invalid JSON ({e})") from e
        face_crops.parse_crops_record(record, where)  # check every record before any work
        table[name] = record
    return table


@cli.command("from-videos")
@click.option("--source", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of video files (mp4/avi/mov/webm/mkv) and/or folders of frames, searched recursively.")
@click.option("--dest", required=True, type=click.Path(path_type=Path), help="Output folder, or a file ending in .zip.")
@click.option("--resolution", required=True, type=click.IntRange(min=1), help="Output frames are N x N.")
@click.option("--boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON {video: [[xmin, ymin, xmax, ymax], ...] one per source frame}; video is the relative source "
                   "path with or without extension. Crops each frame to its box padded to a square (Algorithm 1).")
@click.option("--faces", type=click.Choice(FACE_MODES), default=None,
              help="Detect the face in every frame and crop it, stabilised (paper App. D): 'ffhq' = FFHQ alignment "
                   "from eye and mouth landmarks (DeeperForensics, CelebV-HQ); 'box' = Algorithm 1's square around "
                   "the 68 landmarks' bounding box (the detected box for 5-landmark detectors). Writes "
                   "<video>/crops.json. Needs requirements-faces.txt.")
@click.option("--crops", type=click.Path(exists=True, path_type=Path), default=None,
              help="A dataset made with --faces (folder or zip): crop again with its <video>/crops.json, without "
                   "detecting (e.g. at another --resolution); its frame indices replace --fps and --max-frames.")
@click.option("--detector", default="dlib", show_default=True,
              help="Face detector of --faces: 'dlib' (HOG boxes + 68 landmarks), 'retinaface' (the paper's; "
                   "needs batch-face and --detector-weights) or package.module:factory (training/face_detectors.py).")
@click.option("--detector-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Model file of the detector: dlib, a shape predictor .dat (default: the packaged one); "
                   "retinaface, mobilenet0.25_Final.pth or Resnet50_Final.pth of Pytorch_Retinaface.")
@click.option("--jitter-count", type=click.IntRange(min=1), default=face_crops.JITTER_COUNT, show_default=True,
              help="--faces: landmark predictions from randomly shifted face boxes averaged per frame.")
@click.option("--jitter-shift", type=click.FloatRange(min=0), default=face_crops.JITTER_SHIFT, show_default=True,
              help="--faces: largest shift of those boxes, as a fraction of the box width.")
@click.option("--smooth-sigma", type=click.FloatRange(min=0), default=face_crops.SMOOTH_SIGMA, show_default=True,
              help="--faces: std in frames of the temporal Gaussian on the crop parameters (0: none).")
@click.option("--max-missing", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="--faces: skip (and list) a video when no face is found in more than this fraction of frames.")
@click.option("--seed", type=int, default=0, show_default=True, help="--faces: seed of the box shifts.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Subsample to this frame rate (never upsamples).")
@click.option("--source-fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frame rate of frame-folder sources (video files report their own).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Keep at most N frames per video.")
@click.option("--max-videos", type=click.IntRange(min=1), default=None, help="Convert at most N videos.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Convert this many videos at once (processes).")
@click.option("--overwrite", is_flag=True, help="Replace an existing dest (only once the new dataset is complete); "
                                                "discard an unfinished run made with other options.")
@clean_errors
def from_videos(source, dest, resolution, boxes, faces, crops, detector, detector_weights, jitter_count,
                jitter_shift, smooth_sigma, max_missing, seed, fps, source_fps, max_frames, max_videos, workers,
                overwrite):
    """Convert videos or frame folders to the dataset layout (center crop, box crop or stabilised face crop).

    Finished videos are kept in a hidden folder next to dest (.<dest name>.partial) until all are done, so an
    interrupted run resumes when the same command is run again."""
    try:
        options = dict(source=str(source.resolve()), resolution=resolution, boxes=boxes and str(boxes), faces=faces,
                       crops=crops and str(crops), detector=detector,
                       detector_weights=detector_weights and str(detector_weights), jitter_count=jitter_count,
                       jitter_shift=jitter_shift, smooth_sigma=smooth_sigma, max_missing=max_missing, seed=seed,
                       fps=fps, source_fps=source_fps, max_frames=max_frames, max_videos=max_videos)
        _from_videos(source, dest, options, workers, overwrite)
    except (ValueError, FileNotFoundError, ImportError) as e:  # user errors: one line
        raise click.ClickException(str(e)) from e


def _from_videos(source: Path, dest: Path, o: dict, workers: int, overwrite: bool) -> None:
    videos = find_videos(source)[:o["max_videos"]]
    if not videos:
        raise click.ClickException(f"{source}: no video files ({', '.join(VIDEO_EXTENSIONS)}) or frame folders found")
    if sum(o[k] is not None for k in ("boxes", "faces", "crops")) > 1:
        raise ValueError("--boxes, --faces and --crops exclude each other: pass one")
    names = [_video_name(rel, kind, source) for rel, kind, _ in videos]
    if len(set(names)) != len(names):
        raise click.ClickException(f"{source}: two sources map to the same video name; rename them")
    if dest.exists() and not overwrite:
        raise click.ClickException(f"{dest} already exists (pass --overwrite to replace it)")
    box_table = json.loads(Path(o["boxes"]).read_text()) if o["boxes"] else None
    crops_table = _read_crops(Path(o["crops"]), names) if o["crops"] else None
    if o["faces"]:
        load_detector(o["detector"], o["detector_weights"])  # a missing package or file fails here, before any work
    if crops_table is not None and not crops_table:
        raise FileNotFoundError(f"{o['crops']}: no <video>/{face_crops.CROPS_FILE} for these sources; --crops needs "
                                f"a dataset made with --faces from them")
    partial = dest.parent / f".{dest.name}.partial"
    state = _open_partial(partial, json.loads(json.dumps(o)), overwrite)
    for (rel, _, _), name in zip(videos, names):
        if crops_table is not None and name not in crops_table:
            state["skipped"][name] = dict(video=rel, reason=f"no {face_crops.CROPS_FILE} in {o['crops']}")
    jobs = [dict(rel=rel, kind=kind, path=str(path), name=name, options=o, partial=str(partial),
                 boxes=_boxes_for(box_table, rel, o["boxes"]) if box_table is not None else None,
                 crops=crops_table[name] if crops_table else None)
            for (rel, kind, path), name in zip(videos, names) if name not in state["done"] and name not in
            state["skipped"]]
    bar = dict(file=sys.stderr, dynamic_ncols=True)
    with tqdm(total=len(videos), initial=len(videos) - len(jobs), desc="videos", unit="video", **bar) as videos_bar, \
            tqdm(desc="frames detected", unit="frame", disable=not o["faces"], **bar) as detected_bar, \
            tqdm(desc="frames written", unit="frame", **bar) as written_bar:
        def on_done(job, result):
            if "skipped" in result:
                state["skipped"][job["name"]] = dict(video=job["rel"], reason=result["skipped"])
            else:
                state["done"][job["name"]] = result
            _save_state(partial, state)
            videos_bar.update(1)
        try:
            _run_jobs(jobs, workers, dict(detected=detected_bar, written=written_bar), on_done)
        except BaseException:
            click.echo(f"\nStopped; the {len(state['done'])} finished videos are kept in {partial}: run the same "
                       f"command again to resume", err=True)
            raise
    done, skipped = sorted(state["done"]), [state["skipped"][k] for k in sorted(state["skipped"])]
    for s in skipped:
        click.echo(f"Skipped {s['video']}: {s['reason']}", err=True)
    if not done:
        raise DatasetError(f"{source}: every video was skipped (no face in more than {o['max_missing']:.0%} of "
                           f"their frames); nothing written")
    fps_seen = {state["done"][k]["fps"] for k in done}
    out_fps = fps_seen.pop() if len(fps_seen) == 1 else None
    total = sum(state["done"][k]["frames"] for k in done)
    meta = dict(kind="video", fps=out_fps, resolution=o["resolution"], num_videos=len(done), num_frames=total,
                source=str(source), skipped=skipped,
                crop=o["faces"] or ("crops.json" if o["crops"] else "boxes" if o["boxes"] else "center"))
    _finish(partial, dest, done, meta, overwrite)
    click.echo(f"Wrote {dest}: {len(done)} videos, {total} frames at {o['resolution']}x{o['resolution']}, "
               f"fps {out_fps}" + (f"; skipped {len(skipped)} videos (listed above and in dataset.json)"
                                   if skipped else ""))


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


# "0.2,0.3" -> (0.2, 0.3), or a click error naming the option.
def _float_pair(text: str, option: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected MIN,MAX like 0.21,0.3, got {text!r}", param_hint=option) from None
    return lo, hi


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
@click.option("--motion", default="wander", show_default=True, type=click.Choice(["wander", "straight"]),
              help="wander: slowly turning, bouncing paths; straight: from near the centre in a random direction.")
@click.option("--videos-per-content", default=1, show_default=True, type=click.IntRange(min=1),
              help="Videos sharing one sprite, background and start, each with its own motion.")
@click.option("--spread-headings", is_flag=True,
              help="Straight motion: a content's videos leave in directions 360/k degrees apart.")
@click.option("--radius-range", default="0.21,0.3", show_default=True, metavar="MIN,MAX",
              help="Sprite circumradius range, fractions of the frame size.")
@clean_errors
def synthetic(out, num_videos, num_frames, resolution, seed, as_zip, overwrite, shapes, motion, videos_per_content,
              spread_headings, radius_range):
    """Write the moving-sprites dataset, with per-video ground truth (sprite_gt.json next to the frames)."""
    from training.sprites import write_synthetic_dataset
    try:
        path = write_synthetic_dataset(out, num_videos=num_videos, num_frames=num_frames, resolution=resolution,
                                       seed=seed, zip=as_zip, overwrite=overwrite, progress=True,
                                       shapes=tuple(s.strip() for s in shapes.split(",") if s.strip()),
                                       motion=motion, videos_per_content=videos_per_content,
                                       spread_headings=spread_headings,
                                       radius_range=_float_pair(radius_range, "--radius-range"))
    except (FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Wrote {path}: {num_videos} videos x {num_frames} frames at {resolution}x{resolution}")


if __name__ == "__main__":
    cli()
