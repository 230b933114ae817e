"""Side-by-side benchmark of every training phase: stage 1 (Gmain, Greg, Dmain, Dreg), stage 2 (Emain) and stage 3
(SImain, Dmain, Dreg), at the demo's sizes and at paper256 shapes, each stage built by its real stage builder with
random weights. Code variants run alternately in one process, phase by phase (`--variants`):

  new         this code;
  old         the code paths that the training-speed changes replaced, patched back in (see OLD_CODE);
  contiguous  this code with every block in contiguous layout whenever autograd records (the alternative to
              channels_last that issue 16 proposed for training on CPU);
  native_conv this code with oneDNN off (torch.backends.mkldnn.enabled = False): PyTorch's own im2col + GEMM
              convolutions on CPU.

Seconds per phase call (the median over `--repeats`; wall clock and process CPU time) and each variant's time
relative to `new`.

  python benchmarks/bench_steps.py --threads 2 --repeats 3
  python benchmarks/bench_steps.py --sizes paper256 --stages 3 --phases Dmain,Dreg --variants old,new,contiguous
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stages  # noqa: E402
from timing import sync  # noqa: E402

from torch_utils.ops import bias_act, depthwise_conv  # noqa: E402
from training import networks_stylegan2  # noqa: E402
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


_NEW_FORMAT = networks_stylegan2._block_memory_format
# (module, attribute, stand-in) per variant; `old` is every replaced code path at once.
OLD_CODE = [(bias_act, "_BiasActPiecewiseLinear", _ReferenceBiasAct),
            (depthwise_conv, "_DepthwiseConv2d", _PlainDepthwiseConv)]
VARIANTS = dict(new=[], old=OLD_CODE,
                contiguous=[(networks_stylegan2, "_block_memory_format", _contiguous_when_training)],
                native_conv=[(torch.backends.mkldnn, "enabled", False)])


@contextlib.contextmanager
def patched(patches):
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
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
                with patched(VARIANTS[v]):
                    t = time_phase(stage, phase, batch, device)
                if rnd > 0:
                    times[v].append(t)
        rows.append((phase.name, times))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="demo,paper256")
    parser.add_argument("--stages", default="1,2,3")
    parser.add_argument("--variants", default="old,new", help="comma-separated: new, old, contiguous")
    parser.add_argument("--phases", default="", help="comma-separated phase names to run (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    variants = args.variants.split(",")
    others = [v for v in variants if v != "new"]
    head = " | ".join(f"{v} wall / cpu" for v in variants)
    print(f"{torch.get_num_threads()} threads, medians of {args.repeats}, seconds per phase call")
    print(f"| size | stage | phase | {head} | " + " | ".join(f"{v} / new (wall, cpu)" for v in others) + " |")
    print("| --- " * (3 + len(variants) + len(others)) + "|")
    for size_name in args.sizes.split(","):
        for stage_number in (int(s) for s in args.stages.split(",")):
            stage, batch = build(stage_number, SIZES[size_name], device)
            for phase_name, times in bench_stage(stage, batch, device, variants, args.repeats,
                                                      [p for p in args.phases.split(",") if p]):
                med = {v: (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts))
                       for v, ts in times.items()}
                cells = [f"{med[v][0]:.3f} / {med[v][1]:.3f}" for v in variants]
                if "new" in med:
                    cells += [f"{med[v][0] / med['new'][0]:.2f}, {med[v][1] / med['new'][1]:.2f}" for v in others]
                print(f"| {size_name} | {stage_number} | {phase_name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
