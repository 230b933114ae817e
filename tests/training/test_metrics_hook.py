"""The training loop's metric hook: stage 1 and stage 3 fake sources feed metrics.compute_metrics."""

import torch

from metrics.detectors import random_detector_state_dict
from tests.conftest import make_tiny_generator
from training.loss_stylegan2 import image_clips
from training.training_loop import metrics_hook


def test_image_clips_are_deterministic_and_rank_blocks_agree():
    G = make_tiny_generator()
    source = image_clips(G)
    # Same batch composition on both sides: CPU convolutions may round differently for other batch sizes.
    whole = torch.cat(list(source(6, 2, seed=3, batch_size=2)))
    blocks = torch.cat(list(source(2, 2, seed=3, batch_size=2)) + list(source(4, 2, seed=3, batch_size=2, start=2)))
    assert whole.shape == (6, 2, 3, 16, 16) and whole.dtype == torch.uint8
    assert torch.equal(whole, blocks)
    assert not torch.equal(whole[0, 0], whole[0, 1])  # frames are independent images


def test_metrics_hook_computes_fid_for_an_image_generator(sprites_dir, tmp_path, monkeypatch):
    torch.save(random_detector_state_dict("inception"), tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    compute = metrics_hook(image_clips(make_tiny_generator()), str(sprites_dir), torch.device("cpu"))
    results = compute(["fid8"], str(tmp_path / "network-snapshot-000000.pt"), str(tmp_path))
    assert results[0]["metric"] == "fid8" and results[0]["results"]["fid8"] > 0
    assert results[0]["snapshot"] == "network-snapshot-000000.pt"
