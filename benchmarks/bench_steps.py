"""Side-by-side benchmark of every training phase: stage 1 (Gmain, Greg, Dmain, Dreg), stage 2 (Emain) and stage 3
(SImain, Dmain, Dreg), at the demo's sizes and at paper256 shapes, each stage built by its real stage builder with
random weights. Code variants run alternately, phase by phase (`--variants`):

  new          this code;
  old          every code path that issue 16's training-speed changes replaced, patched back in (OLD_CODE), with
               glibc's default allocator;
  glibc_malloc this code with glibc's default allocator (not cpu_memory.retain_freed_memory);
  old_layout   this code with the encoders' activations contiguous and Dmain synthesising the fake frame 0 that
               D never sees (the two changes after the allocator);
  contiguous   this code with every StyleGAN2 block in contiguous layout whenever autograd records (the
               alternative to channels_last that issue 16 proposed for training on CPU);
  native_conv  this code with oneDNN off (torch.backends.mkldnn.enabled = False): PyTorch's own im2col + GEMM
               convolutions on CPU.

The allocator is a property of the process, so when the variants differ in it each variant runs in child processes
(`--processes` per variant, alternating, each timing `--repeats` rounds after a warm-up call); otherwise all run
in this process, alternating `--repeats` rounds. Seconds per phase call (the median over every timed call; wall
clock and process CPU time) and each variant's time relative to `new`.

  python benchmarks/bench_steps.py --threads 2 --repeats 3
  python benchmarks/bench_steps.py --sizes paper256 --stages 3 --variants old,new --processes 3 --repeats 1
"""

import argparse
import contextlib
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stages  # noqa: E402
from timing import sync  # noqa: E402

from torch_utils import cpu_memory  # noqa: E402
from torch_utils.ops import bias_act, depthwise_conv  # noqa: E402
from training import image_utils, networks_stylegan2  # noqa: E402
from training.loss_stylegan2 import d_logistic_loss  # noqa: E402
from training.loss_styleinv import StyleInVLoss  # noqa: E402
from training.networks_encoder import IRSEBackbone  # noqa: E402
from training.presets import stylegan2_preset  # noqa: E402
from training.training_loop import _run_phase  # noqa: E402

ENCODERS = dict(small=dict(units_per_stage=[1, 2, 2, 1], stage_channels=[32, 64, 96, 128]),  # train_encoder.py
                ir_se50=dict(num_layers=50))
# Per size: stage-1 preset and batch, stage-2 encoder and batch, stage-3 config and batch (videos of 4 frames).
# `demo` is what scripts/demo.py trains; paper256 batches are cut to what a CPU runs in seconds.
SIZES = dict(demo=dict(g_cfg="small", batch1=16, encoder="small", batch2=8, config="small.yaml", batch3=4),
             paper256=dict(g_cfg="paper256", batch1=4, encoder="ir_se50", batch2=2, config="deeperforensics.yaml",
                           batch3=1))


# The autograd path of bias_act before `_BiasActPiecewiseLinear`: the plain-op reference.
class _ReferenceBiasAct:
    @staticmethod
    def apply(x, b, cfg):
        return bias_act._bias_act_ref(x, b, cfg)


# Constant-filter depthwise convolutions before `depthwise_conv2d`: conv2d with torch's own gradients.
class _PlainDepthwiseConv:
    @staticmethod
    def apply(x, f, stride, padding):
        return torch.nn.functional.conv2d(x, f, stride=stride, padding=padding, groups=x.shape[1])


# Contiguous blocks while autograd records, channels_last (CPU) or the usual choice otherwise.
def _contiguous_when_training(fp16_channels_last, dtype, device):
    if torch.is_grad_enabled():
        return torch.contiguous_format
    return _NEW_FORMAT(fp16_channels_last, dtype, device)


# Stage 3's Dmain before it stopped synthesising the fake frame 0 that x0 replaces.
def _dmain_with_frame0(self, batch, gain):
    real, real_t = image_utils.to_float(batch[0]), batch[1].float()
    with torch.no_grad():
        _, t, x0, _, frames = self.sample_fake(real.shape[0], real.device)
    return d_logistic_loss(self.run_D(frames, t, x0), self.run_D(real, real_t), self.ada, self.stats, gain)


_NEW_FORMAT = networks_stylegan2._block_memory_format
# The encoders' activations in whatever layout their input had (contiguous: the images are).
OLD_LAYOUT = [(IRSEBackbone, "memory_format", staticmethod(lambda x: torch.contiguous_format)),
              (StyleInVLoss, "_Dmain", _dmain_with_frame0)]
OLD_CODE = [(bias_act, "_BiasActPiecewiseLinear", _ReferenceBiasAct),
            (depthwise_conv, "_DepthwiseConv2d", _PlainDepthwiseConv)] + OLD_LAYOUT
# variant: (patches, whether the process keeps freed memory: cpu_memory.retain_freed_memory; None: as the training
# loop decides for the size's resolution)
VARIANTS = dict(new=([], None), old=(OLD_CODE, False), glibc_malloc=([], False), retain_malloc=([], True),
                old_layout=(OLD_LAYOUT, None),
                contiguous=([(networks_stylegan2, "_block_memory_format", _contiguous_when_training)], None),
                native_conv=([(torch.backends.mkldnn, "enabled", False)], None))


# Whether `variant` keeps freed memory at `size`.
def retains(variant: str, size: dict) -> bool:
    choice = VARIANTS[variant][1]
    if choice is None:
        resolution = stylegan2_preset(size["g_cfg"]).G_kwargs.img_resolution
        return cpu_memory.wanted_for_training(torch.device("cpu"), resolution)
    return choice


@contextlib.contextmanager
def patched(patches):
    saved = [(module, name, inspect.getattr_static(module, name)) for module, name, _ in patches]  # staticmethods too
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


# Stage 2 through its builder: a random-weight G of preset `g_cfg` saved as a stage-1 snapshot, the WEncoder of
# `encoder`, the L2 loss only (the demo's; LPIPS and ArcFace need published weights), Ranger.
def build(stage_number: int, size: dict, device: torch.device):
    preset = stylegan2_preset(size["g_cfg"])
    resolution = preset.G_kwargs.img_resolution
    if stage_number == 1:
        return stages.stylegan_stage(device, size["g_cfg"], resolution, size["batch1"]), \
            stages.fake_batch(size["batch1"], resolution, device)
    with tempfile.TemporaryDirectory() as tmp:
        path = stages.write_stage2_checkpoint(Path(tmp) / "stage2.pt", size["g_cfg"], resolution,
                                              ENCODERS[size["encoder"]])
        if stage_number == 2:
            return stages.encoder_stage(device, path, resolution, ENCODERS[size["encoder"]], lpips=False,
                                        identity=False), stages.fake_batch(size["batch2"], resolution, device)
        return stages.styleinv_stage(device, path, ROOT / "configs" / size["config"], resolution), \
            stages.fake_batch(size["batch3"], resolution, device, clips=True)


# (wall, cpu) seconds of one call of `phase`.
def time_phase(stage, phase, batch, device) -> tuple[float, float]:
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    _run_phase(stage, phase, [batch], stage.loss.stats)
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


# Rows of (phase, {variant: [(wall, cpu), ...]}): one warm-up call per variant, then `repeats` rounds in which
# every variant runs each phase once, in turn (order reversed every other round), from the same random seed: the
# same latents and the same augmentations, hence the same work.
def bench_stage(stage, batch, device, variants: list[str], repeats: int, phases: list[str]) -> list[tuple[str, dict]]:
    rows = []
    for phase in (p for p in stage.phases if not phases or p.name in phases):
        times = {v: [] for v in variants}
        for rnd in range(repeats + 1):
            for v in variants if rnd % 2 == 0 else variants[::-1]:
                torch.manual_seed(rnd)
                with patched(VARIANTS[v][0]):
                    t = time_phase(stage, phase, batch, device)
                if rnd > 0:
                    times[v].append(t)
        rows.append((phase.name, times))
    return rows


# {phase: {variant: [(wall, cpu), ...]}} of one stage from `cmd_variants` run alternately by a child process (this
# script with --child), which keeps freed memory or not as they do.
def child_times(args, size_name: str, stage_number: int, cmd_variants: list[str]) -> dict[str, dict[str, list]]:
    cmd = [sys.executable, __file__, "--child", "--device", args.device, "--threads", str(args.threads), "--sizes",
           size_name, "--stages", str(stage_number), "--variants", ",".join(cmd_variants), "--phases", args.phases,
           "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {phase: {v: [tuple(t) for t in ts] for v, ts in times.items()}
            for phase, times in json.loads(out.splitlines()[-1]).items()}


# {phase: {variant: [(wall, cpu), ...]}} for one stage. Variants that keep freed memory run in a child process
# (the setting cannot be undone); variants that differ in it run in alternating children, `--processes` each.
def stage_times(args, size_name: str, stage_number: int, variants: list[str]) -> dict[str, dict[str, list]]:
    choices = {retains(v, SIZES[size_name]) for v in variants}
    if choices == {False} or args.child:
        if choices == {True}:
            cpu_memory.retain_freed_memory()
        stage, batch = build(stage_number, SIZES[size_name], torch.device(args.device))
        phases = [p for p in args.phases.split(",") if p]
        return dict(bench_stage(stage, batch, torch.device(args.device), variants, args.repeats, phases))
    if choices == {True}:
        return child_times(args, size_name, stage_number, variants)
    times = {}
    for rnd in range(args.processes):
        for v in variants if rnd % 2 == 0 else variants[::-1]:
            for phase, ts in child_times(args, size_name, stage_number, [v]).items():
                times.setdefault(phase, {u: [] for u in variants})[v] += ts[v]
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="demo,paper256")
    parser.add_argument("--stages", default="1,2,3")
    parser.add_argument("--variants", default="old,new", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--phases", default="", help="comma-separated phase names to run (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (per child process, if any)")
    parser.add_argument("--processes", type=int, default=3,
                        help="child processes per variant when the variants differ in the allocator")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if args.child:  # One stage, variants of one allocator choice: their times as a JSON line.
        print(json.dumps(stage_times(args, args.sizes, int(args.stages), variants)))
        return
    others = [v for v in variants if v != "new"]
    head = " | ".join(f"{v} wall / cpu" for v in variants)
    print(f"{torch.get_num_threads()} threads, medians of {args.repeats} rounds (x {args.processes} processes per "
          f"variant where they differ in the allocator), seconds per phase call")
    print(f"| size | stage | phase | {head} | " + " | ".join(f"{v} / new (wall, cpu)" for v in others) + " |")
    print("| --- " * (3 + len(variants) + len(others)) + "|")
    for size_name in args.sizes.split(","):
        for stage_number in (int(s) for s in args.stages.split(",")):
            for phase_name, times in stage_times(args, size_name, stage_number, variants).items():
                med = {v: (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts))
                       for v, ts in times.items()}
                cells = [f"{med[v][0]:.3f} / {med[v][1]:.3f}" for v in variants]
                if "new" in med:
                    cells += [f"{med[v][0] / med['new'][0]:.2f}, {med[v][1] / med['new'][1]:.2f}" for v in others]
                print(f"| {size_name} | {stage_number} | {phase_name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
