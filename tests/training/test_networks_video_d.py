"""Tests for the first-frame-aware video discriminator (StyleGAN-V design, SPEC 3)."""

import json
import math

import pytest
import torch

from training.networks_video_d import TimeDifferenceEncoder, VideoDiscriminator

RES = 32
TINY = dict(channel_base=256, channel_max=32, num_fp16_res=0, max_num_frames=32, time_enc_kwargs=dict(const_dim=8))


def make_d(seed=0, **kwargs) -> VideoDiscriminator:
    torch.manual_seed(seed)
    return VideoDiscriminator(RES, **{**TINY, **kwargs})


def random_video(n=2, num_frames=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(n, num_frames, 3, RES, RES, generator=g)
    times = torch.tensor([[0.0, 3.0, 5.0, 9.0], [0.0, 12.5, 14.5, 20.5]])[:n, :num_frames]
    return frames, times


@pytest.mark.parametrize("concat_res", [16, 8])
@pytest.mark.parametrize("num_frames", [4, 3])
def test_output_shape_and_layout(concat_res, num_frames):
    D = make_d(concat_res=concat_res, num_frames=num_frames)
    frames, times = random_video(num_frames=num_frames)
    logits = D(frames, times)
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
    # The block reaching concat_res halves its channels; the next one sees all frames side by side.
    ch = {r: min(256 // r, 32) for r in (32, 16, 8, 4)}
    assert getattr(D, f"b{concat_res * 2}").conv1.weight.shape[0] == ch[concat_res] // 2
    assert getattr(D, f"b{concat_res}").conv0.weight.shape[1] == ch[concat_res] // 2 * num_frames
    assert getattr(D, f"b{concat_res}").skip.weight.shape[1] == ch[concat_res] // 2 * num_frames
    assert D.mapping.embed.weight.shape[1] == (num_frames - 1) * (8 + 2 * 5)


def test_full_size_parameter_shapes_follow_spec():
    # SPEC 3.1-3.3 at 256 px, channel_base 16384: b32 halves 512 -> 256, b16 takes 4 * 256 = 1024 channels,
    # the time embedding is 3 * (256 + 14) = 810-d and cmap is 512-d.
    D = VideoDiscriminator(256)
    shapes = {k: tuple(v.shape) for k, v in D.state_dict().items()}
    assert shapes["b256.fromrgb.weight"] == (64, 3, 1, 1)
    assert shapes["b32.conv1.weight"] == (256, 512, 3, 3)
    assert shapes["b16.conv0.weight"] == (512, 1024, 3, 3)
    assert shapes["b16.skip.weight"] == (512, 1024, 1, 1)
    assert shapes["b8.conv0.weight"] == (512, 512, 3, 3)
    assert shapes["mapping.embed.weight"] == (512, 810)
    assert shapes["time_encoder.const_embed.weight"] == (128, 256)
    assert shapes["b4.conv.weight"] == (512, 513, 3, 3) and shapes["b4.out.weight"] == (512, 512)
    assert "mapping.fc1.weight" in shapes and "mapping.fc2.weight" not in shapes
    assert D.b4.mbstd.group_size == 8 and D.b32.use_fp16 and not D.b16.use_fp16


def test_frames_concatenated_in_frame_order():
    D = make_d(concat_res=16)
    frames, times = random_video()
    # Obvious version: each frame through b32 on its own, then cat along channels in frame order.
    per_frame = [D.b32(None, frames[:, i])[0] for i in range(4)]
    x = torch.cat(per_frame, dim=1)
    x, _ = D.b16(x, None)
    x, _ = D.b8(x, None)
    expected = D.b4(x, None, D.mapping(None, D.time_encoder(times)))
    torch.testing.assert_close(D(frames, times), expected, rtol=1e-4, atol=1e-5)
    swapped = frames[:, [0, 2, 1, 3]]
    assert (D(swapped, times) - D(frames, times)).abs().max() > 1e-5


def test_gradient_reaches_every_frame():
    D = make_d()
    frames, times = random_video()
    frames.requires_grad_(True)
    D(frames, times).sum().backward()
    for n in range(2):
        for f in range(4):
            assert frames.grad[n, f].abs().sum() > 0, (n, f)


def test_time_differences_change_the_logit_and_only_they_matter():
    D = make_d()
    frames, times = random_video()
    base = D(frames, times)
    other = D(frames, torch.tensor([[0.0, 1.0, 2.0, 30.0], [0.0, 4.0, 8.0, 9.0]]))
    assert (base - other).abs().min() > 1e-6
    torch.testing.assert_close(D(frames, times + 7.0), base)


def test_r1_double_backward():
    D = make_d()
    frames, times = random_video()
    frames.requires_grad_(True)
    logits = D(frames, times)
    grads, = torch.autograd.grad(logits.sum(), frames, create_graph=True)
    penalty = grads.square().sum()
    penalty.backward()
    assert torch.isfinite(penalty) and penalty > 0
    for name in ("b32.fromrgb.weight", "b32.conv0.weight", "b16.conv0.weight", "b4.fc.weight", "mapping.fc0.weight"):
        p = dict(D.named_parameters())[name]
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_time_difference_encoder_features():
    enc = TimeDifferenceEncoder(num_diffs=3, max_num_frames=128, const_dim=4)
    times = torch.tensor([[0.0, 2.4, 10.4, 42.4]])
    out = enc(times)
    assert enc.out_dim == 3 * (4 + 14) and out.shape == (1, 54)
    for i, d in enumerate([2.4, 8.0, 32.0]):
        c = torch.tensor([2.0 ** j * math.pi / 128 for j in range(7)])
        expected = torch.cat([enc.const_embed.weight[round(d)], torch.sin(c * d), torch.cos(c * d)])
        torch.testing.assert_close(out[0, 18 * i:18 * (i + 1)], expected, rtol=1e-5, atol=1e-5)


def test_init_kwargs_rebuild_same_network():
    D = make_d(concat_res=8, num_frames=3)
    rebuilt = VideoDiscriminator(**json.loads(json.dumps(D.init_kwargs)))
    rebuilt.load_state_dict(D.state_dict(), strict=True)
    frames, times = random_video(num_frames=3)
    torch.testing.assert_close(rebuilt(frames, times), D(frames, times))


def test_bad_inputs_raise_clear_errors():
    D = make_d()
    frames, times = random_video()
    with pytest.raises(ValueError, match="expected frames"):
        D(frames[:, :3], times[:, :3])
    with pytest.raises(ValueError, match="sorted"):
        D(frames, times[:, [0, 2, 1, 3]])
    with pytest.raises(ValueError, match="time differences"):
        D(frames, torch.tensor([[0.0, 1.0, 2.0, 40.0]] * 2))
    with pytest.raises(ValueError, match="concat_res"):
        make_d(concat_res=32)
