"""Data-loading throughput: frames/s delivered into training batches (frame and clip modes, folder and zip).

Builds a moving-sprites dataset in a temporary folder (and its zip), then times a DataLoader with the
InfiniteSampler as the training loop uses it. Frames/s counts every decoded frame (a clip of 4 counts 4).
  python benchmarks/bench_data.py --resolution 64 --resolution 256 --workers 0 --workers 2
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import torch  # noqa: E402

from training.dataset import InfiniteSampler, open_dataset  # noqa: E402
from training.sprites import write_synthetic_dataset  # noqa: E402


# Batches/s and frames/s of one loader configuration, after a warm-up batch (worker start-up excluded).
def measure(dataset, batch: int, workers: int, seconds: float) -> tuple[float, float]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=InfiniteSampler(dataset, seed=0),
                                         num_workers=workers, prefetch_factor=2 if workers else None,
                                         persistent_workers=workers > 0)
    it = iter(loader)
    next(it)
    n_batches, n_frames, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x = next(it)[0]
        n_batches += 1
        n_frames += x.shape[0] * (x.shape[1] if x.ndim == 5 else 1)
    elapsed = time.perf_counter() - start
    del it
    return n_batches / elapsed, n_frames / elapsed


@click.command()
@click.option("--resolution", "resolutions", multiple=True, type=int, default=[64], show_default=True)
@click.option("--workers", "workers_list", multiple=True, type=int, default=[0, 2], show_default=True)
@click.option("--batch", default=32, show_default=True, help="Batch size (frames in frame mode, clips in clip mode).")
@click.option("--videos", default=8, show_default=True)
@click.option("--frames", default=64, show_default=True, help="Frames per video (clip window = this).")
@click.option("--seconds", default=3.0, show_default=True, help="Timing per configuration.")
def main(resolutions, workers_list, batch, videos, frames, seconds):
    """Print a table of data-loading throughput."""
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in resolutions:
            t0 = time.perf_counter()
            folder = write_synthetic_dataset(Path(tmp) / f"sprites{res}", videos, frames, res, seed=0)
            zipped = write_synthetic_dataset(Path(tmp) / f"sprites{res}", videos, frames, res, seed=0, zip=True)
            print(f"built {res}px dataset ({videos} x {frames} frames) in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            for layout, path in (("folder", folder), ("zip", zipped)):
                for mode in ("frames", "clips"):
                    kwargs = dict(max_num_frames=frames, max_dist=32) if mode == "clips" else {}
                    ds = open_dataset(path, kind=mode, **kwargs)
                    for workers in workers_list:
                        bps, fps = measure(ds, batch, workers, seconds)
                        rows.append((layout, mode, res, workers, batch, bps, fps))
                        print(f"  {rows[-1][:5]}: {fps:.0f} frames/s", file=sys.stderr)
    header = f"{'layout':<7} {'mode':<7} {'res':>4} {'workers':>7} {'batch':>5} {'batches/s':>10} {'frames/s':>10}"
    print(header)
    print("-" * len(header))
    for layout, mode, res, workers, b, bps, fps in rows:
        print(f"{layout:<7} {mode:<7} {res:>4} {workers:>7} {b:>5} {bps:>10.1f} {fps:>10.0f}")


if __name__ == "__main__":
    main()
