"""glibc's allocator settings for CPU training: keep freed memory mapped instead of handing it back to the kernel."""

import ctypes
import ctypes.util

import torch

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h

# Frame size from which CPU training keeps freed memory (docs/PERFORMANCE.md): 1.4-1.7x faster stage-3 phases at
# 256 px, no gain for the demo's 32 px (0.8-0.9x on stage 1). Between them it is unmeasured; 128 px is where one
# round of four frames at the paper's channel counts (128 channels at 128 px) reaches glibc's 32 MB mapping ceiling.
MIN_RESOLUTION = 128


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


# By default glibc serves blocks over its mmap threshold (at most 32 MB) with fresh mappings and unmaps them
# on free, and trims free memory at the top of the heap: a training step then page-faults every large
# activation in again (a discriminator forward + backward on a 4-frame 256 px clip: ~350k minor faults, a third
# of its time). Serving every block from the heap and never trimming it makes later steps reuse the same pages;
# the process keeps its peak size until release_free_memory. Returns False where the C library has no mallopt
# (not glibc) or refuses.
def retain_freed_memory() -> bool:
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1


# Hands the pages of free heap blocks back to the kernel (malloc_trim). Retained memory fragments: in a 256 px
# stage-3 run RSS grew from 5.6 to 6.1 GB over 32 steps with 1.6 GB in use between steps; trimmed every 4 steps
# it stayed at 5.4-5.7 GB, and the step after a trim took ~2 s longer. The loop trims once per tick.
def release_free_memory() -> None:
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        pass


# The training loop's choice: keep freed memory when training on CPU at MIN_RESOLUTION or more.
def wanted_for_training(device: torch.device, resolution: int) -> bool:
    return device.type == "cpu" and resolution >= MIN_RESOLUTION


# Applies the training loop's choice; returns whether freed memory is now kept.
def configure_for_training(device: torch.device, resolution: int) -> bool:
    return wanted_for_training(device, resolution) and retain_freed_memory()
