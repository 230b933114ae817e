"""On-disk cache of real-data feature statistics, keyed by dataset fingerprint, protocol, detector and preprocessing."""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

import dnnlib
from metrics.frechet import FeatureStats


# Default folder: <first dnnlib cache dir>/gan-metrics ($STYLEINV_CACHE_DIR or ~/.cache/styleinv).
def default_cache_dir() -> Path:
    return dnnlib.cache_dirs()[0] / "gan-metrics"


# SHA-256 over a dataset's sorted (relative path, size, mtime) entries: any added, removed, resized or touched
# file gives a new fingerprint.
def dataset_fingerprint(entries: list[tuple[str, int, int]]) -> str:
    h = hashlib.sha256()
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


# Cache key: SHA-256 of the canonical JSON of everything the statistics depend on.
def cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(cache_dir: str | os.PathLike, dataset_name: str, metric: str, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset_name) or "data"
    return Path(cache_dir) / f"{safe}-{metric}-{key[:16]}.pt"


# Load cached statistics; None when the file is missing, unreadable or stored under another key.
def load_stats(path: Path, key: str, device: str | torch.device = "cpu") -> FeatureStats | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # A truncated or foreign file is a cache miss, never an error.
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    return FeatureStats.from_state_dict(data["stats"], device)


# Write statistics atomically (temp file in the same folder + os.replace). Call on rank 0 only.
def save_stats(path: Path, key: str, stats: FeatureStats, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(key=key, meta=json.dumps(meta, sort_keys=True, default=str), stats=stats.state_dict()), f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
