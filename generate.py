"""Generate videos with a trained StyleInV model: random videos, animated images, re-rendered latents (Sec. 4.2).

All modes take the stage-3 snapshot written by train_styleinv.py (paper Sec. 3.5, 4.2 and App. A).

Examples:
  python generate.py videos --network SNAP.pt --seeds 0-7 --frames 128 --grid 2x4 --outdir out
  python generate.py videos --network SNAP.pt --seeds 0-3 --slowmo 2 --outdir out          # 2x frame rate
  python generate.py videos --network SNAP.pt --seeds 0 --frames 108000 --outdir out       # one hour at 30 fps
  python generate.py videos --network SNAP.pt --seeds 0-3 --transfer-network TUNED.pt --save-latents --outdir out
  python generate.py animate --network SNAP.pt --image face.png --outdir out
  python generate.py decode --latents out/latents.npz --network TUNED.pt --outdir out2
  python generate.py project --network SNAP.pt --video clip.mp4 --frames 32 --continue 32 --outdir out
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import PIL.Image
import PIL.ImageSequence
import torch
import tqdm

from dnnlib.errors import clean_errors
from training import projection
from training import video_generation as vgen
from training.dataset import IMAGE_EXTENSIONS, center_crop_resize
from training.image_utils import to_uint8

# ----------------------------------------------------------------------------------------------------------
# Rendering: latents of several videos -> output files, chunk by chunk.


# One output file: its name, the videos it shows (indices into the rendered set) and its grid (rows, cols).
@dataclass
class Output:
    name: str
    videos: list[int]
    grid: tuple[int, int] = (1, 1)


# Output options shared by every subcommand.
@dataclass
class WriteOptions:
    outdir: Path
    format: str = "mp4"
    quality: int = 95
    crf: int = 10
    frame_ext: str = "png"
    strip_every: int = 8

    def writer(self, name: str, fps: float) -> vgen.VideoWriter:
        return vgen.VideoWriter(vgen.output_path(self.outdir, name, self.format), self.format, fps, self.quality,
                                self.crf, self.frame_ext, self.strip_every)


# Group outputs so that each group renders at least `batch` videos together (whole outputs only).
def _groups(outputs: list[Output], batch: int) -> list[list[Output]]:
    groups, current = [], []
    for out in outputs:
        current.append(out)
        if sum(len(o.videos) for o in current) >= batch:
            groups.append(current)
            current = []
    return groups + ([current] if current else [])


# Write `outputs` showing videos given by latent chunks. `chunks_of(indices)` yields w_t [n, c, w_dim] chunks of
# those videos; each video is shown as [*stills | G(w_t) for G in generators] side by side (stills: uint8
# [V, C, H, W] per panel, e.g. the input image); grids tile the panels. Returns w_t of all videos when
# keep_latents (for --save-latents), else None.
def render(outputs: list[Output], chunks_of, generators: list, num_videos: int, num_frames: int,
           opts: WriteOptions, fps: float, batch: int, noise_mode: str, stills: list[torch.Tensor] = (),
           keep_latents: bool = False) -> np.ndarray | None:
    latents = None
    with tqdm.tqdm(total=num_videos * num_frames, unit="frame", desc="Generating", dynamic_ncols=True) as bar:
        for group in _groups(outputs, batch):
            indices = [i for out in group for i in out.videos]
            writers = [opts.writer(out.name, fps) for out in group]
            try:
                start = 0
                for w_t in chunks_of(indices):
                    if keep_latents:
                        if latents is None:
                            latents = np.zeros([num_videos, num_frames, w_t.shape[2]], np.float32)
                        latents[indices, start:start + w_t.shape[1]] = w_t.cpu().numpy()
                    start += w_t.shape[1]
                    panels = [s[indices] for s in stills]
                    for G in generators:
                        panels.append(torch.cat([vgen.decode_latents(G, w, noise_mode) for w in w_t.split(batch)]))
                    frames = vgen.side_by_side(panels)
                    offset = 0
                    for out, writer in zip(group, writers, strict=True):
                        cells = frames[offset:offset + len(out.videos)]
                        offset += len(out.videos)
                        writer.append(vgen.tile_videos(cells, *out.grid)[0] if out.grid != (1, 1) else cells[0])
                    bar.update(w_t.shape[0] * w_t.shape[1])
            except BaseException:
                for writer in writers:
                    writer.close(abort=True)
                raise
            for writer in writers:
                writer.close()
    return latents


# Save latents for `decode` (and any later re-rendering): one npz, arrays only (read with allow_pickle=False).
def write_latents(path: Path, w_t: np.ndarray, t: torch.Tensor, names: list[str], fps: float, grid=(1, 1),
                 **arrays) -> None:
    data = dict(w_t=w_t, t=t.numpy(), names=np.array(names), fps=np.float64(fps), grid=np.array(grid),
                **{k: (v.cpu().numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in arrays.items()})
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    print(f"Saved latents to {path}")


# ----------------------------------------------------------------------------------------------------------
# Command-line plumbing.


# "2x4" -> (2, 4).
def parse_grid(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    rows, sep, cols = text.lower().partition("x")
    if not (sep and rows.isdigit() and cols.isdigit() and int(rows) > 0 and int(cols) > 0):
        raise click.BadParameter(f"expected ROWSxCOLS like 2x4, got {text!r}", param_hint="--grid")
    return int(rows), int(cols)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# Options shared by all subcommands (output, speed, noise).
def common_options(fn):
    options = [
        click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Where to write the outputs"),
        click.option("--format", "fmt", default="mp4", type=click.Choice(vgen.VIDEO_FORMATS),
                     help="mp4 video, gif, folder of frames, or strip (one PNG of every k-th frame)"),
        click.option("--fps", default=None, type=click.FloatRange(min=0, min_open=True),
                     show_default="30; decode: the rate stored with the latents",
                     help="Frame rate of the source frames (videos and animate write fps * slowmo)"),
        click.option("--crf", default=10, type=click.IntRange(0, 51), help="mp4 quality: h264 CRF (0 = lossless)"),
        click.option("--quality", default=95, type=click.IntRange(1, 100), help="JPEG quality for --frame-ext jpg"),
        click.option("--frame-ext", default="png", type=click.Choice(vgen.FRAME_EXTENSIONS),
                     help="Image type for --format frames"),
        click.option("--strip-every", default=8, type=click.IntRange(min=1), help="Frame step for --format strip"),
        click.option("--noise-mode", default="const", type=click.Choice(vgen.NOISE_MODES),
                     help="StyleGAN2 noise for all frames and x0 (const: deterministic; none for no-noise G)"),
        click.option("--batch", default=4, type=click.IntRange(min=1), help="Videos per network call"),
        click.option("--chunk", default=32, type=click.IntRange(min=1), help="Frames per video per network call"),
        click.option("--device", default=default_device, show_default="cuda if available, else cpu",
                     help="Device to run on, e.g. cuda, cuda:1 or cpu"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def write_options(outdir, fmt, crf, quality, frame_ext, strip_every) -> WriteOptions:
    return WriteOptions(Path(outdir), fmt, quality, crf, frame_ext, strip_every)


# The fine-tuned generator for style transfer (Sec. 3.5): same W space and resolution as the parent.
def load_transfer(path: str | None, vg: vgen.VideoGenerator) -> list:
    if path is None:
        return []
    G = vgen.load_image_generator(path, vg.device)
    if G.w_dim != vg.G.w_dim or G.img_resolution != vg.resolution:
        raise ValueError(f"--transfer-network '{path}': its generator has w_dim={G.w_dim} at {G.img_resolution}px, "
                         f"the StyleInV model's has w_dim={vg.G.w_dim} at {vg.resolution}px; they must match")
    return [G]


@click.group(context_settings=dict(show_default=True, help_option_names=["-h", "--help"]))
def cli():
    """Generate videos with a trained StyleInV model (subcommands: videos, animate, decode, project)."""


# ----------------------------------------------------------------------------------------------------------
# videos: random videos from seeds.


# Outputs and (content seed, motion seed) per rendered video. Plain: one output per seed. Grid: pages of rows*cols
# seeds. Grid with same_motion: pages of max(rows, cols) seeds s; cell (r, c) has the content of s[c] and the
# motion of s[r], so rows share motion, columns share content and the diagonal shows the seeds' own videos.
def plan_videos(seeds: list[int], grid: tuple[int, int] | None, same_motion: bool):
    if grid is None:
        return [Output(f"seed{s:04d}", [i]) for i, s in enumerate(seeds)], list(seeds), list(seeds)
    rows, cols = grid
    outputs, content, motion = [], [], []
    per_page = max(rows, cols) if same_motion else rows * cols
    if same_motion and len(seeds) % per_page:
        raise ValueError(f"--same-motion with --grid {rows}x{cols} uses {per_page} seeds per grid; got "
                         f"{len(seeds)} seeds, not a multiple of {per_page}")
    for page, start in enumerate(range(0, len(seeds), per_page)):
        s = seeds[start:start + per_page]
        if same_motion:
            cells = [(s[c], s[r]) for r in range(rows) for c in range(cols)]
        else:
            cells = [(x, x) for x in s]
        outputs.append(Output(f"grid{page:03d}", list(range(len(content), len(content) + len(cells))), grid))
        content += [c for c, _ in cells]
        motion += [m for _, m in cells]
    return outputs, content, motion


@cli.command()
@click.option("--network", required=True, help="Stage-3 snapshot (train_styleinv.py)")
@click.option("--seeds", default=None, help="Seeds, e.g. 0-15 or 1,3,8-10")
@click.option("--num-videos", default=None, type=click.IntRange(min=1), help="Seeds 0..N-1 (instead of --seeds)")
@click.option("--frames", default=128, type=click.IntRange(min=1), help="Length in source frames")
@click.option("--time-offset", default=0.0, type=click.FloatRange(min=0), help="Time of the first frame (frames)")
@click.option("--slowmo", default=1, type=click.IntRange(min=1),
              help="K: frame times t = offset + i/K, i.e. K times the frame rate (App. A)")
@click.option("--trunc", default=1.0, type=float, help="Truncation psi for w0")
@click.option("--grid", default=None, help="Tile videos into ROWSxCOLS grids, e.g. 2x4")
@click.option("--same-motion", is_flag=True, help="With --grid: rows share motion noise, columns share content")
@click.option("--transfer-network", default=None, help="Fine-tuned generator (Sec. 3.5) shown beside the parent's")
@click.option("--save-latents", is_flag=True, help="Also write outdir/latents.npz (w0, motion noise, w_t)")
@click.option("--no-ema", is_flag=True, help="Use motion_generator instead of motion_generator_ema")
@common_options
@clean_errors
def videos(network, seeds, num_videos, frames, time_offset, slowmo, trunc, grid, same_motion, transfer_network,
           save_latents, no_ema, outdir, fmt, fps, crf, quality, frame_ext, strip_every, noise_mode, batch, chunk,
           device):
    """Random videos: one per seed, or grids of them."""
    fps = fps or 30.0
    if seeds is not None and num_videos is not None:
        raise click.UsageError("Give --seeds or --num-videos, not both")
    seeds = vgen.parse_seeds(seeds) if seeds is not None else list(range(num_videos or 4))
    grid = parse_grid(grid)
    if same_motion and grid is None:
        raise click.UsageError("--same-motion needs --grid ROWSxCOLS")
    outputs, content_seeds, motion_seeds = plan_videos(seeds, grid, same_motion)
    vg = vgen.load_video_generator(network, device, noise_mode, use_ema=not no_ema)
    generators = [vg.G] + load_transfer(transfer_network, vg)
    t = vgen.video_times(frames, time_offset, slowmo)
    w0, motion_z = vg.latents_for_seeds(content_seeds, float(t[-1]), trunc, motion_seeds)
    opts = write_options(outdir, fmt, crf, quality, frame_ext, strip_every)
    chunks_of = lambda idx: vg.iter_latent_chunks(w0[idx], motion_z[idx], t, chunk, batch)
    w_t = render(outputs, chunks_of, generators, len(content_seeds), len(t), opts, fps * slowmo, batch, noise_mode,
                 keep_latents=save_latents)
    if save_latents:
        names = [f"seed{c:04d}" if c == m else f"seed{c:04d}_motion{m:04d}"
                 for c, m in zip(content_seeds, motion_seeds, strict=True)]
        write_latents(opts.outdir / "latents.npz", w_t, t, names, fps * slowmo, grid or (1, 1), w0=w0,
                     motion_z=motion_z, seeds=content_seeds, motion_seeds=motion_seeds)
    print(f"Wrote {len(outputs)} {fmt} output(s) to {opts.outdir}")


# ----------------------------------------------------------------------------------------------------------
# animate: initial-frame conditioned generation from real images (Sec. 4.2, Fig. 10).


# Image files named by --image: files as given, folders expanded to their image files (sorted).
def list_images(paths: tuple[str, ...]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"Folder '{p}' holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"Image '{p}' does not exist")
    return files


# An image file as uint8 [3, R, R]: RGB, center-cropped to a square and resized to the generator's resolution.
def load_image(path: Path, resolution: int) -> torch.Tensor:
    return image_to_frame(open_rgb(path), resolution)


# An image file as an RGB PIL image.
def open_rgb(path: Path) -> PIL.Image.Image:
    try:
        with PIL.Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise ValueError(f"Cannot read image '{path}': {e}") from None


# A PIL image as uint8 [3, R, R]: RGB, center-cropped to a square and resized to `resolution`.
def image_to_frame(image: PIL.Image.Image, resolution: int) -> torch.Tensor:
    array = np.asarray(center_crop_resize(image.convert("RGB"), resolution), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


@cli.command()
@click.option("--network", required=True, help="Stage-3 snapshot (train_styleinv.py); its encoder inverts")
@click.option("--image", "images", required=True, multiple=True, help="Image file or folder (repeatable)")
@click.option("--seed", default=0, type=click.IntRange(min=0), help="Motion seed (the same motion for every image)")
@click.option("--frames", default=128, type=click.IntRange(min=1), help="Length in source frames")
@click.option("--time-offset", default=0.0, type=click.FloatRange(min=0), help="Time of the first frame (frames)")
@click.option("--slowmo", default=1, type=click.IntRange(min=1), help="K times the frame rate (App. A)")
@click.option("--transfer-network", default=None, help="Fine-tuned generator: adds a style-transferred panel")
@click.option("--save-latents", is_flag=True, help="Also write outdir/latents.npz")
@common_options
@clean_errors
def animate(network, images, seed, frames, time_offset, slowmo, transfer_network, save_latents, outdir, fmt, fps,
            crf, quality, frame_ext, strip_every, noise_mode, batch, chunk, device):
    """Animate real images: [input | inversion | animation (| style-transferred)] side by side."""
    fps = fps or 30.0
    files = list_images(images)
    vg = vgen.load_video_generator(network, device, noise_mode)
    if vg.encoder is None:
        raise ValueError(f"'{network}' has no 'encoder' network to invert images with")
    generators = [vg.G] + load_transfer(transfer_network, vg)
    inputs = torch.stack([load_image(f, vg.resolution) for f in files])
    from training.networks_encoder import invert
    w0 = torch.cat([invert(vg.encoder, vg.G, x.to(vg.device).float() / 127.5 - 1) for x in inputs.split(batch)])
    x0 = vg.first_frames(w0)
    t = vgen.video_times(frames, time_offset, slowmo)
    motion_z = vg.motion_z_for_seeds([seed], float(t[-1])).expand(len(files), -1, -1)
    names, outputs = [], []
    for i, f in enumerate(files):
        name = f.stem if f.stem not in names else f"{f.stem}_{i}"
        names.append(name)
        outputs.append(Output(name, [i]))
    opts = write_options(outdir, fmt, crf, quality, frame_ext, strip_every)
    chunks_of = lambda idx: vg.iter_latent_chunks(w0[idx], motion_z[idx], t, chunk, batch, x0=x0[idx])
    stills = [inputs.to(vg.device), to_uint8(x0)]
    w_t = render(outputs, chunks_of, generators, len(files), len(t), opts, fps * slowmo, batch, noise_mode,
                 stills=stills, keep_latents=save_latents)
    if save_latents:
        write_latents(opts.outdir / "latents.npz", w_t, t, names, fps * slowmo, w0=w0, motion_z=motion_z,
                     motion_seeds=[seed] * len(files))
    print(f"Wrote {len(outputs)} {fmt} output(s) to {opts.outdir}")


# ----------------------------------------------------------------------------------------------------------
# decode: re-render saved latents with any compatible generator (Sec. 3.5, 4.2).


# Arrays of a latents file written by --save-latents, checked.
def read_latents(path: str) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"Latents file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"Cannot read latents file '{path}': {e}") from None
    w_t, names = arrays.get("w_t"), arrays.get("names")
    if w_t is None or w_t.ndim != 3 or names is None or len(names) != w_t.shape[0]:
        raise ValueError(f"'{path}' is not a latents file of generate.py --save-latents (needs w_t [N, T, w_dim] "
                         "and one name per video)")
    return arrays


@cli.command()
@click.option("--latents", "latents_path", required=True, help="latents.npz written by --save-latents")
@click.option("--network", required=True, help="Any checkpoint with a compatible generator (G_ema or G)")
@common_options
@clean_errors
def decode(latents_path, network, outdir, fmt, fps, crf, quality, frame_ext, strip_every, noise_mode, batch, chunk,
           device):
    """Re-render saved latents w_t with another (e.g. fine-tuned) generator."""
    arrays = read_latents(latents_path)
    G = vgen.load_image_generator(network, device)
    w_t = torch.from_numpy(arrays["w_t"]).float()
    if w_t.shape[2] != G.w_dim:
        raise ValueError(f"'{latents_path}' holds {w_t.shape[2]}-d latents but '{network}' has w_dim={G.w_dim}")
    names = [str(n) for n in arrays["names"]]
    grid = tuple(int(g) for g in arrays.get("grid", (1, 1)))
    if grid == (1, 1):
        outputs = [Output(n, [i]) for i, n in enumerate(names)]
    else:
        per_page = grid[0] * grid[1]
        outputs = [Output(f"grid{p:03d}", list(range(s, min(s + per_page, len(names)))), grid)
                   for p, s in enumerate(range(0, len(names), per_page))]
    fps_out = fps or float(arrays.get("fps", 30.0))
    opts = write_options(outdir, fmt, crf, quality, frame_ext, strip_every)

    def chunks_of(idx):
        for start in range(0, w_t.shape[1], chunk):
            yield w_t[idx, start:start + chunk].to(device)

    render(outputs, chunks_of, [G], len(names), w_t.shape[1], opts, fps_out, batch, noise_mode)
    print(f"Wrote {len(outputs)} {fmt} output(s) to {opts.outdir}")


# ----------------------------------------------------------------------------------------------------------
# project: a real clip -> (w0, motion noise), then replayed, continued, re-animated or restyled.


# The frames of a video as PIL images, lazily: a folder of images (sorted by name), a GIF (every frame, through
# PIL) or any other file ffmpeg decodes (mp4, webm, avi, ...). Also returns the video's frame rate, if known.
def _video_images(path: Path):
    if path.is_dir():
        return (open_rgb(f) for f in list_images([str(path)])), None
    if path.suffix.lower() == ".gif":
        gif = PIL.Image.open(path)
        rate = 1000 / gif.info["duration"] if gif.info.get("duration") else None

        def gif_frames():
            with gif:
                yield from (frame.convert("RGB") for frame in PIL.ImageSequence.Iterator(gif))
        return gif_frames(), rate
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)

    def frames():
        try:
            for data in reader:
                yield PIL.Image.frombuffer("RGB", meta["size"], data, "raw", "RGB", 0, 1)
        finally:
            reader.close()
    return frames(), meta.get("fps")


# Frames start .. start+num_frames-1 of a video (see _video_images) as uint8 [num_frames, 3, R, R]: RGB,
# center-cropped and resized to `resolution`, saying so when that changes their size; and the video's frame rate.
def read_video(path: str, start: int, num_frames: int, resolution: int) -> tuple[torch.Tensor, float | None]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--video '{path}' does not exist")
    frames, size, count = [], None, 0
    try:
        images, rate = _video_images(path)
        for count, image in enumerate(images, 1):
            if count > start:
                size = size or image.size
                frames.append(image_to_frame(image, resolution))
            if len(frames) == num_frames:
                images.close()
                break
    except (OSError, RuntimeError, StopIteration, PIL.Image.DecompressionBombError) as e:
        raise ValueError(f"Cannot read --video '{path}' ({e}); give an mp4 (or another video ffmpeg reads), a "
                         "gif or a folder of frames") from None
    if len(frames) < num_frames:
        raise ValueError(f"--video '{path}' has {count} frames; --start {start} --frames {num_frames} needs "
                         f"{start + num_frames}")
    if size != (resolution, resolution):
        print(f"Frames of '{path}' are {size[0]}x{size[1]}: center-cropped to a square and resized to the model's "
              f"{resolution}x{resolution}")
    return torch.stack(frames), rate


# projection.json: what was projected, the per-frame PSNR (and LPIPS) curves of the reconstruction and of the
# baselines, the loss per step and the settings; written to a temporary file and renamed.
def write_projection_report(path: Path, result, baselines: dict, **info) -> None:
    curve = lambda x: dict(mean=float(x.mean()), per_frame=[round(float(v), 4) for v in x])
    report = dict(info, psnr=curve(result.psnr), lpips=None if result.lpips is None else curve(result.lpips),
                  baselines={f"{name}_psnr": curve(x) for name, x in baselines.items()}, losses=result.losses,
                  config=dataclasses.asdict(result.config))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(path)


@cli.command()
@click.option("--network", required=True, help="Stage-3 snapshot (train_styleinv.py); its encoder gives the first w0")
@click.option("--video", "video_path", required=True,
              help="The real clip: an mp4 (or another video ffmpeg reads), a gif or a folder of frames")
@click.option("--frames", default=32, type=click.IntRange(min=2), help="Number of frames to project")
@click.option("--start", default=0, type=click.IntRange(min=0), help="Index of the clip's first frame in the video")
@click.option("--continue", "continue_frames", default=0, type=click.IntRange(min=0),
              help="Render the projected video K frames past the clip's end")
@click.option("--remotion", default=None, help="Seeds, e.g. 0-3: also render the projected content with their motion")
@click.option("--slowmo", default=1, type=click.IntRange(min=1), help="K times the frame rate of the rendered videos")
@click.option("--transfer-network", default=None, help="Fine-tuned generator: adds a restyled panel (Sec. 3.5)")
@click.option("--w0-steps", default=projection.ProjectionConfig.w0_steps, type=click.IntRange(min=0),
              help="Steps fitting G(w0) to the first frame")
@click.option("--motion-steps", default=projection.ProjectionConfig.motion_steps, type=click.IntRange(min=0),
              help="Steps fitting the motion noise to the clip")
@click.option("--w0-lr", default=projection.ProjectionConfig.w0_lr, type=click.FloatRange(min=0, min_open=True),
              help="Adam learning rate of w0 (both stages; cosine decay)")
@click.option("--motion-lr", default=projection.ProjectionConfig.motion_lr,
              type=click.FloatRange(min=0, min_open=True), help="Adam learning rate of the motion noise")
@click.option("--joint-w0/--fixed-w0", default=projection.ProjectionConfig.joint_w0,
              help="Refine w0 while fitting the motion, or keep the w0 fitted to the first frame")
@click.option("--prior-weight", default=projection.ProjectionConfig.prior_weight, type=click.FloatRange(min=0),
              help="Weight of the prior keeping each motion noise row's mean square near 1, as N(0, I)'s")
@click.option("--lpips-weight", default=projection.ProjectionConfig.lpips_weight, type=click.FloatRange(min=0),
              help="Weight of LPIPS-Alex beside the MSE (0: MSE only); MSE only when its weight files are missing")
@click.option("--lpips-dir", default=None, type=click.Path(file_okay=False),
              help="Folder holding alexnet-owt-7be5be79.pth and alex.pth (else $STYLEINV_LPIPS_DIR, the caches)")
@click.option("--seed", default=projection.ProjectionConfig.seed, type=click.IntRange(min=0),
              help="Initial motion noise; with --continue, also the noise past the clip")
@click.option("--no-ema", is_flag=True, help="Use motion_generator instead of motion_generator_ema")
@common_options
@clean_errors
def project(network, video_path, frames, start, continue_frames, remotion, slowmo, transfer_network, w0_steps,
            motion_steps, w0_lr, motion_lr, joint_w0, prior_weight, lpips_weight, lpips_dir, seed, no_ema,
            outdir, fmt, fps, crf, quality, frame_ext, strip_every, noise_mode, batch, chunk, device):
    """Project a real clip into (w0, motion noise); write [real | reconstruction], the latents and the PSNR.

    Outputs in OUTDIR: projection.* ([real | reconstruction]), projected.* (the projected video, with --continue,
    --slowmo and --transfer-network), remotion_seedNNNN.* (--remotion), latents.npz (for decode) and
    projection.json (per-frame PSNR beside the static G(w0) and per-frame encoder baselines). --chunk is the
    projection's time window."""
    seeds = vgen.parse_seeds(remotion) if remotion is not None else []
    vg = vgen.load_video_generator(network, device, noise_mode, use_ema=not no_ema)
    generators = [vg.G] + load_transfer(transfer_network, vg)
    clip, source_fps = read_video(video_path, start, frames, vg.resolution)
    fps = fps or source_fps or 30.0
    config = projection.ProjectionConfig(w0_steps=w0_steps, motion_steps=motion_steps, w0_lr=w0_lr,
                                         motion_lr=motion_lr, joint_w0=joint_w0,
                                         lpips_weight=lpips_weight, prior_weight=prior_weight, window=chunk, seed=seed)
    lpips = projection.find_lpips(lpips_dir, vg.device) if lpips_weight > 0 else None
    result = projection.project_video(vg, clip, config, lpips)
    opts = write_options(outdir, fmt, crf, quality, frame_ext, strip_every)
    with opts.writer("projection", fps) as writer:
        writer.append(vgen.side_by_side([clip[None], result.reconstruction[None].to(clip.device)])[0])
    t = vgen.video_times(frames + continue_frames, 0, slowmo)
    motion_z = torch.cat([projection.extend_motion_z(result.motion_z, vg.num_anchors(float(t[-1])), seed),
                          vg.motion_z_for_seeds(seeds, float(t[-1])) if seeds else result.motion_z[:0]])
    names = ["projected"] + [f"remotion_seed{s:04d}" for s in seeds]
    w0, x0 = result.w0.expand(len(names), -1), vg.first_frames(result.w0).expand(len(names), -1, -1, -1)
    chunks_of = lambda idx: vg.iter_latent_chunks(w0[idx], motion_z[idx], t, chunk, batch, x0=x0[idx])
    w_t = render([Output(n, [i]) for i, n in enumerate(names)], chunks_of, generators, len(names), len(t), opts,
                 fps * slowmo, batch, noise_mode, keep_latents=True)
    write_latents(opts.outdir / "latents.npz", w_t, t, names, fps * slowmo, w0=w0, motion_z=motion_z,
                 remotion_seeds=np.array(seeds, dtype=np.int64))
    baselines = projection.baseline_psnr(vg, clip, result.w0, chunk)
    write_projection_report(opts.outdir / "projection.json", result, baselines, video=str(video_path),
                            network=str(network), start=start, frames=frames, fps=fps, resolution=vg.resolution)
    summary = ", ".join(f"{name} {float(x.mean()):.2f} dB" for name, x in baselines.items())
    print(f"Mean PSNR {float(result.psnr.mean()):.2f} dB (baselines: {summary}); wrote {len(names) + 1} {fmt} "
          f"output(s), latents.npz and projection.json to {opts.outdir}")


if __name__ == "__main__":
    cli()
