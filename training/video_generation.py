"""StyleInV video generation (Eq. 2, Sec. 3.5, 4.2, App. A): seeds -> latents -> frames in chunks, streaming writers."""

import concurrent.futures
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from training import checkpoint
from training.image_utils import to_uint8

VIDEO_FORMATS = ("mp4", "gif", "frames", "strip")
FRAME_EXTENSIONS = ("png", "jpg")
NOISE_MODES = ("const", "none", "random")
MOTION_NETWORKS = ("motion_generator_ema", "motion_generator")  # Preferred first.
MOTION_BLOCK = 64  # Anchor rows of motion noise drawn per random stream (see seed_motion_z).

# ----------------------------------------------------------------------------------------------------------
# Seeds and timestamps.


# "0-15", "1,3,8-10" or "7" -> list of non-negative ints, in the order given.
def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in str(text).replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
        except ValueError:
            raise ValueError(f"Bad seed list {text!r}: expected numbers and ranges like '0-15' or '1,3,8-10'") \
                from None
        if sep and int(hi) < int(lo):
            raise ValueError(f"Bad seed range {part!r} in {text!r}: the end is below the start")
    if not seeds:
        raise ValueError(f"Bad seed list {text!r}: no seeds")
    return seeds


# A 64-bit integer seed for sub-stream (stream, index) of `seed`, independent across all three.
def _stream_seed(seed: int, stream: int, index: int = 0) -> int:
    if int(seed) < 0:
        raise ValueError(f"Seeds must be >= 0, got {seed}")
    hi, lo = np.random.SeedSequence([int(seed), stream, index]).generate_state(2, np.uint32)
    return (int(hi) << 31) ^ int(lo)


# Content noise z [1, z_dim] of a video seed: torch.Generator().manual_seed(seed), on the CPU.
def seed_z(seed: int, z_dim: int) -> torch.Tensor:
    if int(seed) < 0:
        raise ValueError(f"Seeds must be >= 0, got {seed}")
    return torch.randn([1, z_dim], generator=torch.Generator().manual_seed(int(seed)))


# Motion noise [1, num_anchors, z_dim] of a video seed, from a stream separate from z, drawn in blocks of
# MOTION_BLOCK anchor rows with one generator per block: a longer draw extends a shorter one, so the first frames
# of a long video equal the shorter video of the same seed (FFA-APE is causal over anchors).
def seed_motion_z(seed: int, num_anchors: int, z_dim: int) -> torch.Tensor:
    blocks = [torch.randn([MOTION_BLOCK, z_dim], generator=torch.Generator().manual_seed(_stream_seed(seed, 1, b)))
              for b in range(math.ceil(num_anchors / MOTION_BLOCK))]
    return torch.cat(blocks)[:num_anchors].unsqueeze(0)


# Seeds of the videos of a metric run: video i of run `seed` gets its own seed derived from (seed, i).
def clip_seeds(seed: int, num_videos: int, start: int = 0) -> list[int]:
    return [_stream_seed(seed, 2, i) % (2 ** 62) for i in range(start, start + num_videos)]


# Frame times t_i = time_offset + i / slowmo, i < num_frames * slowmo (App. A: slowmo=2 gives t = 0, 0.5, 1, ...
# over the same span, i.e. twice the frame rate). float64 [num_frames * slowmo], in frames.
def video_times(num_frames: int, time_offset: float = 0, slowmo: int = 1) -> torch.Tensor:
    if num_frames < 1 or int(slowmo) != slowmo or slowmo < 1 or not (math.isfinite(time_offset) and time_offset >= 0):
        raise ValueError(f"video_times: need num_frames >= 1, an integer slowmo >= 1 and a time_offset >= 0, got "
                         f"{num_frames}, {slowmo}, {time_offset}")
    return float(time_offset) + torch.arange(int(num_frames * slowmo), dtype=torch.float64) / int(slowmo)


# ----------------------------------------------------------------------------------------------------------
# Loading.


# What a checkpoint with these network names looks like, and what to pass instead, for error messages.
def describe_stage(names: Iterable[str]) -> str:
    names = set(names)
    if names & set(MOTION_NETWORKS):
        return "a stage-3 StyleInV checkpoint (train_styleinv.py)"
    if "encoder" in names:
        return "a stage-2 encoder checkpoint (train_encoder.py)"
    if names & {"G", "G_ema"}:
        return "a stage-1 StyleGAN2 checkpoint (train_stylegan.py) or a fine-tuned generator"
    return "no checkpoint of this project's training stages"


# Names of the networks stored in a checkpoint (ours or an official .pkl, under the names load_networks gives them),
# without building them.
def network_names(path: str | os.PathLike) -> list[str]:
    return checkpoint.network_names(path)


# The image generator of any stage's checkpoint (ours or an official .pkl): G_ema if present, else G. Used for
# style transfer (--transfer-network) and for re-rendering saved latents.
def load_image_generator(path: str | os.PathLike, device: torch.device | str = "cpu") -> torch.nn.Module:
    names = network_names(path)
    name = next((n for n in ("G_ema", "G") if n in names), None)
    if name is None:
        raise ValueError(f"'{path}' holds no image generator (networks: {', '.join(names) or 'none'}); it looks "
                         f"like {describe_stage(names)}. Pass a checkpoint with 'G_ema' or 'G'.")
    G = checkpoint.load_networks(path, device="cpu", names=[name])[name]
    return G.eval().requires_grad_(False).to(device)


# The stage-3 networks of `path` as a VideoGenerator: G, motion_generator_ema (else motion_generator) and the
# stage-2 encoder when present (other networks, e.g. D, are not built). Missing files and checkpoints of another
# stage raise errors saying what to pass.
def load_video_generator(path: str | os.PathLike, device: torch.device | str = "cpu", noise_mode: str = "const",
                         use_ema: bool = True) -> "VideoGenerator":
    names = network_names(path)
    order = MOTION_NETWORKS if use_ema else MOTION_NETWORKS[::-1]
    motion_name = next((n for n in order if n in names), None)
    if motion_name is None or "G" not in names:
        raise ValueError(f"'{path}' holds networks {', '.join(names) or 'none'}: it looks like "
                         f"{describe_stage(names)}. Video generation needs the stage-3 snapshot written by "
                         "train_styleinv.py (networks 'G' and 'motion_generator_ema'), e.g. "
                         "<run dir of train_styleinv.py>/network-snapshot-*.pt")
    wanted = ["G", motion_name] + (["encoder"] if "encoder" in names else [])
    nets = checkpoint.load_networks(path, device="cpu", names=wanted)
    return VideoGenerator(nets["G"], nets[motion_name], nets.get("encoder"), noise_mode=noise_mode, device=device)


# ----------------------------------------------------------------------------------------------------------
# The generator.


# Images float [N*T, C, H, W] (about [-1, 1], unclamped) of W latents w_t [N, T, w_dim], each broadcast to all of
# G's layers (W space, as StyleInV's outputs are; SPEC 0) and synthesised with `noise_mode`, on G's device.
# Differentiable in w_t (the projection optimises through it).
def synthesize_latents(G: torch.nn.Module, w_t: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
    N, T, w_dim = w_t.shape
    if w_dim != G.w_dim:
        raise ValueError(f"Latents have w_dim={w_dim} but the generator has w_dim={G.w_dim}")
    device = next(G.parameters()).device
    ws = w_t.reshape(N * T, 1, w_dim).expand(-1, G.num_ws, -1).to(device=device, dtype=torch.float32)
    return G.synthesis(ws, noise_mode=noise_mode)


# Frames uint8 [N, T, C, H, W] of W latents w_t [N, T, w_dim] (see synthesize_latents), on G's device.
@torch.no_grad()
def decode_latents(G: torch.nn.Module, w_t: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
    images = synthesize_latents(G, w_t, noise_mode)
    return to_uint8(images).reshape(*w_t.shape[:2], *images.shape[1:])


# A frozen StyleGAN2 generator G, a StyleInV motion generator and (optionally) the stage-2 inversion encoder,
# in eval mode on one device. Eq. 2: x_t = G(w_t), w_t = E(G(w0), MLP([w0, v_t])) + w0, v_t from FFA-APE.
# Every frame depends only on (w0, motion noise, t), not on the other videos or timestamps of a call (the encoder's
# BatchNorm is in eval mode), so videos can be made in any batch and chunk size: results agree up to float
# rounding (kernels sum in a batch-size dependent order; a uint8 pixel may differ by one level).
class VideoGenerator:
    def __init__(self, G: torch.nn.Module, motion_generator: torch.nn.Module, encoder: torch.nn.Module | None = None,
                 noise_mode: str = "const", device: torch.device | str = "cpu"):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        self.device = torch.device(device)
        self.G = G.eval().requires_grad_(False).to(self.device)
        self.motion_generator = motion_generator.eval().requires_grad_(False).to(self.device)
        self.encoder = None if encoder is None else encoder.eval().requires_grad_(False).to(self.device)
        self.noise_mode = noise_mode
        self.resolution = int(G.img_resolution)
        self.motion_generator.attach_generator(self.G, noise_mode)

    # Motion noise rows needed for frame times up to t_max.
    def num_anchors(self, t_max: float) -> int:
        return self.motion_generator.ffa_ape.num_anchors(float(t_max))

    # First-frame latents w0 = mapping(z)[:, 0] [N, w_dim] of seeds, with truncation psi (one seed per call, so a
    # video does not depend on which other seeds share its batch).
    @torch.no_grad()
    def w0_for_seeds(self, seeds: Sequence[int], trunc: float = 1.0) -> torch.Tensor:
        rows = []
        for seed in seeds:
            z = seed_z(seed, self.G.z_dim).to(self.device)
            c = torch.zeros([1, self.G.c_dim], device=self.device)
            rows.append(self.G.mapping(z, c, truncation_psi=trunc)[:, 0])
        return torch.cat(rows)

    # Motion noise [N, L, z_dim] of seeds covering frame times up to t_max.
    def motion_z_for_seeds(self, seeds: Sequence[int], t_max: float) -> torch.Tensor:
        L, z_dim = self.num_anchors(t_max), self.motion_generator.ffa_ape.z_dim
        return torch.cat([seed_motion_z(s, L, z_dim) for s in seeds]).to(self.device)

    # (w0 [N, w_dim], motion_z [N, L, z_dim]) of the given seeds; motion_seeds (default: the same) pick the motion.
    def latents_for_seeds(self, seeds: Sequence[int], t_max: float, trunc: float = 1.0,
                          motion_seeds: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        motion_seeds = seeds if motion_seeds is None else motion_seeds
        if len(motion_seeds) != len(seeds):
            raise ValueError(f"{len(seeds)} content seeds but {len(motion_seeds)} motion seeds")
        return self.w0_for_seeds(seeds, trunc), self.motion_z_for_seeds(motion_seeds, t_max)

    # x0 = G(w0) [N, C, H, W] in [-1, 1] (float), the encoder input and first frame (SPEC 2.5), one video per call.
    @torch.no_grad()
    def first_frames(self, w0: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.motion_generator.synthesize_first_frame(w) for w in w0.split(1)])

    # Eq. 2 latents w_t [N, T, w_dim] at frame times t ([T] shared, or [N, T]); x0 from first_frames (or computed).
    @torch.no_grad()
    def latents(self, w0: torch.Tensor, motion_z: torch.Tensor, t: torch.Tensor,
                x0: torch.Tensor | None = None) -> torch.Tensor:
        t = t.to(self.device)
        t = t.unsqueeze(0).expand(w0.shape[0], -1) if t.ndim == 1 else t
        x0 = self.first_frames(w0) if x0 is None else x0
        return self.motion_generator(w0, t, motion_z=motion_z, x0=x0)

    # Frames uint8 [N, T, C, H, W] of latents w_t [N, T, w_dim] decoded by G (default: this model's; any generator
    # with the same w_dim works, e.g. a fine-tuned one for style transfer, Sec. 3.5).
    def decode(self, w_t: torch.Tensor, G: torch.nn.Module | None = None) -> torch.Tensor:
        return decode_latents(self.G if G is None else G, w_t, self.noise_mode)

    # Frames uint8 [N, T, C, H, W] of videos (w0, motion_z) at frame times t.
    def frames(self, w0: torch.Tensor, motion_z: torch.Tensor, t: torch.Tensor,
               x0: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.latents(w0, motion_z, t, x0))

    # Latents of videos (w0, motion_z) in time chunks: yields w_t [N, <=chunk, w_dim] for t[i:i+chunk], computed
    # `batch` videos at a time (batch * chunk rows per network call); x0 is computed once per video.
    def iter_latent_chunks(self, w0: torch.Tensor, motion_z: torch.Tensor, t: torch.Tensor, chunk: int = 32,
                           batch: int | None = None, x0: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        if chunk < 1 or (batch is not None and batch < 1):
            raise ValueError(f"chunk and batch must be >= 1, got {chunk}, {batch}")
        batch = batch or w0.shape[0]
        x0 = self.first_frames(w0) if x0 is None else x0
        for start in range(0, t.shape[-1], chunk):
            t_chunk = t[..., start:start + chunk]
            parts = [self.latents(w0[i:i + batch], motion_z[i:i + batch],
                                  t_chunk if t.ndim == 1 else t_chunk[i:i + batch], x0[i:i + batch])
                     for i in range(0, w0.shape[0], batch)]
            yield torch.cat(parts)

    # Decode w_t [N, T, w_dim] `batch` videos at a time (same row grouping as iter_latent_chunks).
    def decode_batched(self, w_t: torch.Tensor, G: torch.nn.Module | None = None,
                       batch: int | None = None) -> torch.Tensor:
        batch = batch or w_t.shape[0]
        return torch.cat([self.decode(w_t[i:i + batch], G) for i in range(0, w_t.shape[0], batch)])

    # Frames of the videos of `seeds` at t = time_offset + i/slowmo, i < num_frames*slowmo, in time chunks: yields
    # uint8 [N, <=chunk, C, H, W] (on this device), with one motion noise per video for the whole length, so the
    # chunks join into one continuous video (App. A).
    def iter_video_chunks(self, seeds: Sequence[int], num_frames: int, chunk: int = 32, batch: int | None = None,
                          time_offset: float = 0, slowmo: int = 1, trunc: float = 1.0) -> Iterator[torch.Tensor]:
        t = video_times(num_frames, time_offset, slowmo)
        w0, motion_z = self.latents_for_seeds(seeds, float(t[-1]), trunc)
        for w_t in self.iter_latent_chunks(w0, motion_z, t, chunk, batch):
            yield self.decode_batched(w_t, batch=batch)


# For metrics (calc_metrics.py --network): fake_clips(num_videos, num_frames, seed, batch_size) yields uint8
# [b, num_frames, C, H, W] clips from t = 0, in order, on `device`; video i of a run has seed clip_seeds(seed)[i],
# so the clips do not depend on batch_size. kw: chunk (frames per network call, default 32), trunc (default 1).
def video_source_from_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu",
                                 noise_mode: str = "const", chunk: int = 32, trunc: float = 1.0, **kw):
    return video_source(load_video_generator(path, device, noise_mode, **kw), chunk, trunc)


# The metrics' fake source over a VideoGenerator: fake_clips(num_videos, num_frames, seed, batch_size) yields
# uint8 [b, num_frames, 3, H, W] on the generator's device, videos from t = 0 with per-video seeds. `start` is the
# index of the first video, so ranks generating blocks of one sequence give results independent of the GPU count.
def video_source(generator: "VideoGenerator", chunk: int = 32, trunc: float = 1.0):
    def fake_clips(num_videos: int, num_frames: int, seed: int, batch_size: int,
                   start: int = 0) -> Iterator[torch.Tensor]:
        for offset in range(0, num_videos, batch_size):
            seeds = clip_seeds(seed, min(batch_size, num_videos - offset), start + offset)
            chunks = generator.iter_video_chunks(seeds, num_frames, chunk=chunk, trunc=trunc)
            yield torch.cat(list(chunks), dim=1)

    fake_clips.generator = generator
    fake_clips.resolution = generator.resolution
    return fake_clips


# ----------------------------------------------------------------------------------------------------------
# Layouts.


# Tile videos uint8 [N, T, C, H, W] into grids [ceil(N / (rows*cols)) grids, T, C, rows*H, cols*W], row-major;
# empty cells are black.
def tile_videos(videos: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    N, T, C, H, W = videos.shape
    cells = rows * cols
    pad = -N % cells
    if pad:
        videos = torch.cat([videos, videos.new_zeros([pad, T, C, H, W])])
    grids = videos.reshape(-1, rows, cols, T, C, H, W).permute(0, 3, 4, 1, 5, 2, 6)
    return grids.reshape(-1, T, C, rows * H, cols * W)


# Panels side by side: each uint8 [N, T, C, H, W], or [N, C, H, W] for a still shown on every frame.
def side_by_side(panels: Sequence[torch.Tensor]) -> torch.Tensor:
    T = max(p.shape[1] for p in panels if p.ndim == 5)
    panels = [p.unsqueeze(1).expand(-1, T, -1, -1, -1) if p.ndim == 4 else p for p in panels]
    return torch.cat([p.to(panels[0].device) for p in panels], dim=-1)


# ----------------------------------------------------------------------------------------------------------
# Writers.


# Output path of a video named `name` in `outdir`: name.mp4, name.gif, folder name/, or name.png for a strip.
def output_path(outdir: str | os.PathLike, name: str, format: str) -> Path:
    suffix = {"mp4": ".mp4", "gif": ".gif", "frames": "", "strip": ".png"}
    if format not in suffix:
        raise ValueError(f"Unknown video format {format!r}; choose one of {VIDEO_FORMATS}")
    return Path(outdir) / f"{name}{suffix[format]}"


# A temporary file beside `path` with the same extension (ffmpeg and PIL choose the container by extension).
def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


# Save one uint8 HWC image atomically (PNG, or JPEG at `quality`).
def save_image(array: np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    path = Path(path)
    tmp = _temp_path(path)  # Not mkstemp: that would leave the file readable by its owner only.
    try:
        image = PIL.Image.fromarray(array)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            image.save(tmp, quality=int(quality))
        else:
            image.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# Streaming writer of one video. append() takes uint8 frames [T, C, H, W] (tensor, any device) or [T, H, W, C]
# numpy; close() finishes the file. Formats:
#   mp4: h264 (libx264, yuv420p) through imageio-ffmpeg at `fps`, constant quality `crf` (0 lossless .. 51);
#        frames are piped to ffmpeg as they come, so memory does not grow with the length. Odd sizes are padded
#        to even with black (yuv420p needs even sizes).
#   gif: PIL, frame duration round(1000 / fps) ms (GIF stores 10 ms units); frames are kept until close().
#   frames: folder of {index:06d}.png or .jpg (JPEG at `quality`), written by `threads` threads.
#   strip: one PNG of every `strip_every`-th frame side by side (frames 0, k, 2k, ...).
# mp4, gif and strip are written to a temporary file and renamed at close; each frame file is written atomically.
class VideoWriter:
    def __init__(self, path: str | os.PathLike, format: str = "mp4", fps: float = 30, quality: int = 95,
                 crf: int = 10, frame_ext: str = "png", strip_every: int = 8, threads: int = 4):
        if format not in VIDEO_FORMATS:
            raise ValueError(f"Unknown video format {format!r}; choose one of {VIDEO_FORMATS}")
        if not (fps > 0 and 1 <= quality <= 100 and 0 <= crf <= 51 and strip_every >= 1):
            raise ValueError(f"VideoWriter: need fps > 0, 1 <= quality <= 100, 0 <= crf <= 51, strip_every >= 1; "
                             f"got {fps}, {quality}, {crf}, {strip_every}")
        if frame_ext not in FRAME_EXTENSIONS:
            raise ValueError(f"frame_ext must be one of {FRAME_EXTENSIONS}, got {frame_ext!r}")
        self.path, self.format, self.fps = Path(path), format, float(fps)
        self.quality, self.crf, self.frame_ext, self.strip_every = int(quality), int(crf), frame_ext, int(strip_every)
        self.num_frames = 0
        self.closed = False
        self._tmp = None
        self._ffmpeg = None
        self._kept = []  # gif / strip frames
        self._pool = self._pending = None
        (self.path if format == "frames" else self.path.parent).mkdir(parents=True, exist_ok=True)
        if format == "frames":
            self._pool = concurrent.futures.ThreadPoolExecutor(max(1, threads))
            self._pending = []
        else:
            self._tmp = _temp_path(self.path)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(abort=exc_type is not None)

    # Start ffmpeg for frames of size (h, w).
    def _open_ffmpeg(self, h: int, w: int) -> None:
        import imageio_ffmpeg
        self._ffmpeg = imageio_ffmpeg.write_frames(
            str(self._tmp), (w + w % 2, h + h % 2), fps=self.fps, codec="libx264", pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p", quality=None, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-crf", str(self.crf)])
        self._ffmpeg.send(None)

    # Add frames: uint8 [T, C, H, W] tensor or [T, H, W, C] array (C = 3, or 1 for gray).
    def append(self, frames) -> None:
        if torch.is_tensor(frames):
            frames = frames.permute(0, 2, 3, 1).cpu().numpy()
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.dtype != np.uint8:
            raise ValueError(f"VideoWriter.append: expected uint8 frames [T, H, W, C], got {frames.dtype} "
                             f"{frames.shape}")
        if frames.shape[3] == 1:
            frames = np.repeat(frames, 3, axis=3)
        for frame in frames:
            self._append_one(np.ascontiguousarray(frame))

    def _append_one(self, frame: np.ndarray) -> None:
        index = self.num_frames
        self.num_frames += 1
        if self.format == "mp4":
            h, w = frame.shape[:2]
            if self._ffmpeg is None:
                self._open_ffmpeg(h, w)
            if h % 2 or w % 2:
                frame = np.pad(frame, [(0, h % 2), (0, w % 2), (0, 0)])
            self._ffmpeg.send(frame)
        elif self.format == "gif" or (self.format == "strip" and index % self.strip_every == 0):
            self._kept.append(frame)
        elif self.format == "frames":
            path = self.path / f"{index:06d}.{self.frame_ext}"
            self._pending.append(self._pool.submit(save_image, frame, path, self.quality))
            if len(self._pending) > 64:  # Bounded: wait for the oldest writes.
                for future in self._pending[:32]:
                    future.result()
                del self._pending[:32]

    # Finish the file (or, with abort, drop the partial output). Returns the path written.
    def close(self, abort: bool = False) -> Path:
        if self.closed:
            return self.path
        self.closed = True
        try:
            if self.format == "frames":
                for future in self._pending:
                    future.result()
                self._pool.shutdown()
            elif self.format == "mp4" and self._ffmpeg is not None:
                self._ffmpeg.close()
                self._ffmpeg = None
            elif not abort and self._kept:
                self._write_kept()
            if not abort and self._tmp is not None:
                if not self._tmp.exists():
                    raise ValueError(f"No frames were written to '{self.path}'")
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()
            self._kept = []
        return self.path

    def _write_kept(self) -> None:
        if self.format == "gif":
            images = [PIL.Image.fromarray(f) for f in self._kept]
            images[0].save(self._tmp, save_all=True, append_images=images[1:], loop=0,
                           duration=max(1, round(1000 / self.fps)), optimize=False)
        else:
            PIL.Image.fromarray(np.concatenate(self._kept, axis=1)).save(self._tmp)


# Write one video from an iterable of uint8 frame chunks [T, C, H, W]; returns the path written.
def write_video(path: str | os.PathLike, frames_iter: Iterable, fps: float = 30, format: str = "mp4",
                quality: int = 95, **writer_kwargs) -> Path:
    with VideoWriter(path, format, fps, quality, **writer_kwargs) as writer:
        for frames in frames_iter:
            writer.append(frames)
    return writer.path
