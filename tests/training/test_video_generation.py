"""Tests for the video generation core: seeding, chunked generation (App. A), layouts and the streaming writers."""

import numpy as np
import PIL.Image
import pytest
import torch

from training import video_generation as vgen
from training.checkpoint import load_networks

RES = 32


@pytest.fixture(scope="module")
def ckpt_dir(tiny_stage3_dir):
    return tiny_stage3_dir


@pytest.fixture(scope="module")
def vg(ckpt_dir):
    return vgen.load_video_generator(ckpt_dir / "stage3.pt")


# uint8 videos equal up to float rounding: at most 1 level apart, in a tiny fraction of the values. (CPU kernels
# sum in a batch-size dependent order, so exact equality across batch/chunk sizes is not guaranteed.)
def assert_same_pixels(a: torch.Tensor, b: torch.Tensor):
    assert a.shape == b.shape and a.dtype == b.dtype == torch.uint8
    diff = (a.int() - b.int()).abs()
    assert diff.max() <= 1, f"max difference {int(diff.max())} levels"
    assert (diff > 0).float().mean() < 1e-3


# ----------------------------------------------------------------------------------------------------------
# Seeds and timestamps.


def test_parse_seeds():
    assert vgen.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert vgen.parse_seeds("5") == [5]
    for bad in ("a", "5-2", "", "1,,x"):
        with pytest.raises(ValueError, match="seed"):
            vgen.parse_seeds(bad)


def test_video_times_slowmo_and_offset():
    t = vgen.video_times(4, time_offset=10, slowmo=2)
    assert t.tolist() == [10, 10.5, 11, 11.5, 12, 12.5, 13, 13.5]
    assert vgen.video_times(3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        vgen.video_times(3, slowmo=1.5)
    with pytest.raises(ValueError):
        vgen.video_times(3, time_offset=-1)


def test_seed_z_matches_torch_generator():
    expected = torch.randn([1, 32], generator=torch.Generator().manual_seed(7))
    assert torch.equal(vgen.seed_z(7, 32), expected)


def test_motion_noise_extends_and_is_separate_from_z():
    short, long = vgen.seed_motion_z(3, 10, 16), vgen.seed_motion_z(3, 200, 16)
    assert short.shape == (1, 10, 16) and long.shape == (1, 200, 16)
    assert torch.equal(long[:, :10], short)
    assert not torch.equal(vgen.seed_motion_z(4, 10, 16), short)
    assert not torch.allclose(short[0, 0], vgen.seed_z(3, 16)[0])
    assert abs(float(long.std()) - 1) < 0.1 and abs(float(long.mean())) < 0.1


def test_clip_seeds_deterministic_and_distinct():
    a = vgen.clip_seeds(0, 6)
    assert a == vgen.clip_seeds(0, 6) and a[2:] == vgen.clip_seeds(0, 4, start=2)
    assert len(set(a + vgen.clip_seeds(1, 6))) == 12


# ----------------------------------------------------------------------------------------------------------
# Generation against a direct per-frame reference.


# The slow obvious path: per video and per frame, z from the seed, w0 = mapping(z)[:, 0], x0 = G(w0), w_t from
# the motion generator at one timestamp, frame = G(w_t) -> uint8 as (x + 1) * 127.5 rounded.
def reference_video(ckpt_path, seed, t, motion_seed=None):
    nets = load_networks(ckpt_path, names=["G", "motion_generator_ema"])
    G, M = nets["G"], nets["motion_generator_ema"]
    with torch.no_grad():
        z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(seed))
        w0 = G.mapping(z, None)[:, 0]
        x0 = G.synthesis(w0.unsqueeze(1).repeat(1, G.num_ws, 1), noise_mode="const")
        L = M.ffa_ape.num_anchors(float(max(t)))
        motion_z = vgen.seed_motion_z(seed if motion_seed is None else motion_seed, L, M.ffa_ape.z_dim)
        frames = []
        for ti in t:
            w = M(w0, torch.tensor([[float(ti)]]), motion_z=motion_z, x0=x0)
            img = G.synthesis(w.reshape(1, 1, -1).repeat(1, G.num_ws, 1), noise_mode="const")[0]
            frames.append(torch.floor((img * 127.5 + 128).clamp(0, 255)).to(torch.uint8))
    return torch.stack(frames)


def test_video_matches_per_frame_reference(vg, ckpt_dir):
    t = vgen.video_times(6, time_offset=3, slowmo=2)
    video = torch.cat(list(vg.iter_video_chunks([5], 6, chunk=5, time_offset=3, slowmo=2)), dim=1)[0]
    assert video.shape == (12, 3, RES, RES)
    assert_same_pixels(video, reference_video(ckpt_dir / "stage3.pt", 5, t.tolist()))
    assert (video[1:].int() - video[:-1].int()).abs().float().mean() > 0.05  # It moves.


def test_same_seed_same_video_any_batch_and_chunk(vg):
    seeds = [0, 1, 2]
    ref = torch.cat(list(vg.iter_video_chunks(seeds, 20)), dim=1)  # One chunk of 20 frames, all videos at once.
    for batch, chunk in [(1, 3), (2, 7), (3, 20)]:
        video = torch.cat(list(vg.iter_video_chunks(seeds, 20, chunk=chunk, batch=batch)), dim=1)
        assert_same_pixels(video, ref)
    alone = torch.cat(list(vg.iter_video_chunks([1], 20, chunk=6)), dim=1)
    assert_same_pixels(alone[0], ref[1])
    again = torch.cat(list(vg.iter_video_chunks(seeds, 20, chunk=7, batch=2)), dim=1)
    assert torch.equal(again, torch.cat(list(vg.iter_video_chunks(seeds, 20, chunk=7, batch=2)), dim=1))
    assert not torch.equal(ref[0], ref[1])


def test_long_video_in_chunks_equals_one_chunk_and_extends_short_video(vg):
    # 100 frames > max_num_frames (32) of the tiny model: the motion noise covers the whole length.
    chunks = list(vg.iter_video_chunks([4], 100, chunk=16))
    assert [c.shape[1] for c in chunks] == [16] * 6 + [4]
    chunked = torch.cat(chunks, dim=1)
    assert_same_pixels(chunked, next(vg.iter_video_chunks([4], 100, chunk=100)))
    short = next(vg.iter_video_chunks([4], 24, chunk=24))
    assert_same_pixels(chunked[:, :24], short)  # FFA-APE is causal over anchors: a longer video extends it.


def test_slowmo_even_frames_equal_normal_video(vg):
    normal = next(vg.iter_video_chunks([2], 10, chunk=10, time_offset=5))
    slow = torch.cat(list(vg.iter_video_chunks([2], 10, chunk=8, time_offset=5, slowmo=2)), dim=1)
    assert slow.shape[1] == 20
    assert_same_pixels(slow[:, ::2], normal)
    assert not torch.equal(slow[:, 1], slow[:, 0]) and not torch.equal(slow[:, 1], slow[:, 2])


# FFA-APE (Sec. 3.3): v_0 does not depend on the motion noise, so frame 0 of a content is the same under any
# motion, while later frames differ.
def test_motion_seeds_share_first_frame(vg):
    t = vgen.video_times(8)
    w0, motion_z = vg.latents_for_seeds([3, 3], 7, motion_seeds=[10, 11])
    video = vg.frames(w0, motion_z, t)
    assert torch.equal(video[0, 0], video[1, 0])
    assert not torch.equal(video[0, 7], video[1, 7])


def test_trunc_zero_gives_average_content(vg):
    w0 = vg.w0_for_seeds([0, 1], trunc=0.0)
    expected = vg.G.mapping.w_avg.expand(2, -1)
    assert torch.allclose(w0, expected, atol=1e-6)


def test_video_source_for_metrics(ckpt_dir):
    fake_clips = vgen.video_source_from_checkpoint(ckpt_dir / "stage3.pt", "cpu", chunk=5)
    clips = list(fake_clips(5, 6, seed=3, batch_size=2))
    assert [c.shape for c in clips] == [(2, 6, 3, RES, RES)] * 2 + [(1, 6, 3, RES, RES)]
    assert all(c.dtype == torch.uint8 for c in clips)
    one_batch = next(fake_clips(5, 6, seed=3, batch_size=5))
    assert_same_pixels(torch.cat(clips), one_batch)
    assert not torch.equal(next(fake_clips(1, 6, seed=4, batch_size=1))[0], clips[0][0])
    direct = next(fake_clips.generator.iter_video_chunks(vgen.clip_seeds(3, 1), 6, chunk=6))
    assert_same_pixels(clips[0][:1], direct)


# ----------------------------------------------------------------------------------------------------------
# Loading.


def test_loader_uses_ema_and_attaches_generator(vg, ckpt_dir):
    ema = load_networks(ckpt_dir / "stage3.pt", names=["motion_generator_ema"])["motion_generator_ema"]
    for k, v in ema.state_dict().items():
        assert torch.equal(vg.motion_generator.state_dict()[k], v), k
    assert vg.motion_generator.generator is vg.G and vg.encoder is not None and vg.resolution == RES
    raw = vgen.load_video_generator(ckpt_dir / "stage3.pt", use_ema=False)
    assert not torch.equal(raw.motion_generator.ffa_ape.c0, vg.motion_generator.ffa_ape.c0)


def test_loader_errors_name_file_and_stage(ckpt_dir, tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        vgen.load_video_generator(missing)
    with pytest.raises(ValueError, match=r"stage-1 .*train_styleinv\.py"):
        vgen.load_video_generator(ckpt_dir / "tuned.pt")
    with pytest.raises(ValueError, match=r"stage-2 .*train_styleinv\.py"):
        vgen.load_video_generator(ckpt_dir / "stage2.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="junk.pt"):
        vgen.load_video_generator(junk)


def test_image_generator_prefers_g_ema(ckpt_dir):
    G = vgen.load_image_generator(ckpt_dir / "tuned.pt")
    G_ema = load_networks(ckpt_dir / "tuned.pt", names=["G_ema"])["G_ema"]
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G_ema.state_dict().values(), strict=True))


def test_decode_with_finetuned_generator_keeps_structure(vg, ckpt_dir):
    G_tuned = vgen.load_image_generator(ckpt_dir / "tuned.pt")
    w0, motion_z = vg.latents_for_seeds([1], 7)
    w_t = vg.latents(w0, motion_z, vgen.video_times(8))
    parent, tuned = vg.decode(w_t), vg.decode(w_t, G_tuned)
    assert parent.shape == tuned.shape and not torch.equal(parent, tuned)
    with pytest.raises(ValueError, match="w_dim"):
        vg.decode(torch.zeros(1, 2, 7))


# ----------------------------------------------------------------------------------------------------------
# Layouts.


def test_tile_videos_against_loop():
    videos = torch.randint(0, 255, (5, 2, 3, 4, 6), dtype=torch.uint8)
    grids = vgen.tile_videos(videos, 2, 2)
    assert grids.shape == (2, 2, 3, 8, 12)
    for n in range(5):
        g, r, c = divmod(n, 4)[0], (n % 4) // 2, n % 2
        assert torch.equal(grids[g, :, :, r * 4:(r + 1) * 4, c * 6:(c + 1) * 6], videos[n])
    assert grids[1, :, :, :4, 6:].sum() == 0 and grids[1, :, :, 4:].sum() == 0


def test_side_by_side_repeats_stills():
    video = torch.randint(0, 255, (2, 3, 3, 4, 4), dtype=torch.uint8)
    still = torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8)
    out = vgen.side_by_side([still, video])
    assert out.shape == (2, 3, 3, 4, 8)
    for t in range(3):
        assert torch.equal(out[:, t, :, :, :4], still) and torch.equal(out[:, t, :, :, 4:], video[:, t])


# ----------------------------------------------------------------------------------------------------------
# Writers.


# Frames whose gray level encodes their index, so order survives lossy codecs: [T, 3, H, W].
def gray_frames(num_frames, h=16, w=24):
    levels = torch.linspace(20, 235, num_frames).round().to(torch.uint8)
    return levels.reshape(-1, 1, 1, 1).expand(-1, 3, h, w).contiguous()


def test_mp4_writer_frames_size_fps(tmp_path):
    import imageio.v2 as imageio
    frames = gray_frames(12)
    path = vgen.write_video(tmp_path / "a.mp4", [frames[:5], frames[5:]], fps=24, format="mp4", crf=0)
    with imageio.get_reader(path, format="ffmpeg") as reader:
        assert reader.get_meta_data()["fps"] == pytest.approx(24)
        back = np.stack(list(reader.iter_data()))
    assert back.shape == (12, 16, 24, 3)
    assert np.abs(back.astype(int).mean(axis=(1, 2, 3)) - frames[:, 0, 0, 0].numpy()).max() < 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]  # No temporary file left.


def test_mp4_writer_pads_odd_sizes_and_aborts_cleanly(tmp_path):
    import imageio.v2 as imageio
    path = vgen.write_video(tmp_path / "odd.mp4", [gray_frames(3, 15, 9)], fps=30)
    with imageio.get_reader(path, format="ffmpeg") as reader:
        assert reader.get_meta_data()["size"] == (10, 16)
    with pytest.raises(RuntimeError, match="boom"):
        with vgen.VideoWriter(tmp_path / "partial.mp4") as writer:
            writer.append(gray_frames(2))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]
    with pytest.raises(ValueError, match="No frames"):
        vgen.VideoWriter(tmp_path / "empty.mp4").close()


def test_gif_writer(tmp_path):
    frames = gray_frames(5)
    path = vgen.write_video(tmp_path / "a.gif", [frames], fps=20, format="gif")
    with PIL.Image.open(path) as image:
        assert image.n_frames == 5 and image.size == (24, 16)
        assert image.info["duration"] == 50
        image.seek(3)
        assert abs(np.asarray(image.convert("RGB")).astype(int).mean() - int(frames[3, 0, 0, 0])) < 3


def test_frame_folder_png_exact_and_jpeg_quality(tmp_path):
    frames = torch.randint(0, 255, (4, 3, 16, 16), dtype=torch.uint8)
    folder = vgen.write_video(tmp_path / "png", [frames[:1], frames[1:]], format="frames")
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:06d}.png" for i in range(4)]
    for i in range(4):
        assert np.array_equal(np.asarray(PIL.Image.open(folder / names[i])), frames[i].permute(1, 2, 0).numpy())
    smooth = torch.linspace(0, 255, 64).to(torch.uint8).reshape(1, 1, 1, 64).expand(2, 3, 64, 64).contiguous()
    sizes = {}
    for q in (10, 95):
        out = vgen.write_video(tmp_path / f"jpg{q}", [smooth], format="frames", quality=q, frame_ext="jpg")
        sizes[q] = (out / "000001.jpg").stat().st_size
        back = np.asarray(PIL.Image.open(out / "000001.jpg")).astype(int)
        assert np.abs(back - smooth[1].permute(1, 2, 0).numpy()).mean() < (8 if q == 10 else 2)
    assert sizes[95] > 1.5 * sizes[10]


def test_strip_writer_keeps_every_kth_frame(tmp_path):
    frames = torch.randint(0, 255, (10, 3, 8, 6), dtype=torch.uint8)
    path = vgen.write_video(tmp_path / "s.png", [frames[:4], frames[4:]], format="strip", strip_every=4)
    strip = np.asarray(PIL.Image.open(path))
    expected = np.concatenate([frames[i].permute(1, 2, 0).numpy() for i in (0, 4, 8)], axis=1)
    assert np.array_equal(strip, expected)


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="format"):
        vgen.VideoWriter(tmp_path / "a.avi", format="avi")
    with pytest.raises(ValueError, match="quality"):
        vgen.VideoWriter(tmp_path / "a", format="frames", quality=0)
    with pytest.raises(ValueError, match="uint8"):
        vgen.write_video(tmp_path / "b.mp4", [torch.zeros(2, 3, 8, 8)])
