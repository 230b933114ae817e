"""cpu_memory.retain_freed_memory: after it, a step that allocates and frees 64 MB activations reuses most pages of
the steps before instead of mapping them all afresh (counted as minor page faults, in a fresh process each: the setting
is process-wide)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import resource, sys
import torch
from torch_utils import cpu_memory
if sys.argv[1] == "retain":  # as the training loop decides: on CPU from 128 px only
    cpu = torch.device("cpu")
    assert not cpu_memory.configure_for_training(cpu, 64)
    assert not cpu_memory.configure_for_training(torch.device("cuda"), 256)
    assert cpu_memory.configure_for_training(cpu, 128)
def step():  # activations kept alive together, then freed, like a forward and backward pass
    xs = [torch.ones(16 * 2**20)]  # 64 MB each: above glibc's largest mmap threshold (32 MB)
    for _ in range(3):
        xs.append(xs[-1] * 2)
    del xs
for _ in range(3):  # the heap settles
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
held = rss()
cpu_memory.release_free_memory()
print(held - rss())
"""


# (minor page faults of 3 steps, bytes the kernel got back from release_free_memory after them)
def _run(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, check=True, capture_output=True, text=True)
    faults, released = out.stdout.split()[-2:]
    return int(faults), int(released)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retained_memory_is_reused_without_page_faults_and_trimmed_on_request():
    pages = 3 * 4 * 64 * 2**20 // 4096
    faults, released = _run("retain")
    # Mostly 0, but in about half the runs one 64 MB block per few steps does not fit a freed one (fragmentation,
    # which the loop's trim per tick bounds) and is faulted in afresh: up to 17% here. glibc's default: all of them.
    assert faults < 0.25 * pages
    assert released > 200 * 2**20  # the 4 x 64 MB the steps freed, handed back by malloc_trim
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists() and "[always]" in thp.read_text():
        pytest.skip("huge pages back fresh mappings here: the default allocator faults rarely too")
    assert _run("default")[0] > 0.5 * pages
