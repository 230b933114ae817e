"""Timing helpers shared by the benchmark scripts (imported as a sibling: `from timing import time_call`)."""

import statistics
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Seconds per call of fn(): `iters` timed calls after one warm-up; returns (best, median).
def time_call(fn, device: torch.device, iters: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)
