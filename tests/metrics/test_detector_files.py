"""The published detector files, when present in $STYLEINV_DETECTOR_DIR: SHA-256 (against the published checksum
where one exists, and against the digest the recorded values came from), loading, and the features of a fixed input
against values recorded in tests/metrics/data/detector_features.json from that file. Skips, naming the missing
file and where it is published, otherwise. To record the values from files you have:
  STYLEINV_DETECTOR_DIR=DIR python -m tests.metrics.test_detector_files --record
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics import detectors

RECORDED = Path(__file__).parent / "data" / "detector_features.json"
ENTRIES = [(name, entry) for name, entries in detectors.WEIGHT_FILES.items() for entry in entries]
SHAPES = {"inception": (2, 3, 64, 64), "i3d": (1, 3, 16, 64, 64), "videomae": (1, 3, 16, 64, 64)}


def fixed_input(name: str) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(17).integers(0, 256, SHAPES[name], dtype=np.uint8))


# Features of the fixed input: the first 16 of each row, the row sums and norms (enough to catch any change).
def feature_summary(name: str, path: Path) -> dict:
    model = detectors.load_detector(name, path, check="off")
    with torch.inference_mode():
        f = model(fixed_input(name)).double()
    return dict(sha256=model.info["sha256"], head=f[:, :16].tolist(), sum=f.sum(1).tolist(),
                norm=f.norm(dim=1).tolist())


def _present(entry: dict) -> Path:
    folder = os.environ.get(detectors.DETECTOR_ENV_VAR)
    if not folder:
        pytest.skip(f"{detectors.DETECTOR_ENV_VAR} is not set; put {entry['file']} there (published at "
                    f"{entry['url']})")
    path = Path(folder) / entry["file"]
    if not path.is_file():
        pytest.skip(f"{entry['file']} is not in {folder} (published at {entry['url']})")
    return path


@pytest.mark.slow  # Only runs with the real files; VideoMAE's ViT-g on CPU takes minutes.
@pytest.mark.parametrize("name,entry", ENTRIES, ids=[e["file"] for _, e in ENTRIES])
def test_published_detector_file(name, entry):
    path = _present(entry)
    digest = detectors.sha256_file(path)
    if entry["sha256"]:
        assert digest.startswith(entry["sha256"]), f"{path} is not the published file"
    recorded = json.loads(RECORDED.read_text()).get(entry["file"])
    if recorded is None:
        pytest.skip(f"no features recorded for {entry['file']} in {RECORDED}; record them with "
                    "python -m tests.metrics.test_detector_files --record")
    assert digest == recorded["sha256"], f"{path} differs from the file the features were recorded from"
    ours = feature_summary(name, path)
    for key in ("head", "sum", "norm"):
        np.testing.assert_allclose(ours[key], recorded[key], rtol=1e-4, atol=1e-4, err_msg=key)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    values = json.loads(RECORDED.read_text())
    for name, entry in ENTRIES:
        path = Path(os.environ[detectors.DETECTOR_ENV_VAR]) / entry["file"]
        if path.is_file():
            values[entry["file"]] = feature_summary(name, path)
            print(f"recorded {entry['file']}")
    RECORDED.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
