"""Check that a GPU install works, and measure it, in one command (a few minutes on one A100/H100).

    python scripts/gpu_check.py                        # every check; writes gpu_check.json and gpu_check.md
    python scripts/gpu_check.py --checks ops,mixed     # some groups only
    python scripts/gpu_check.py --update-docs          # also fill the GPU section of docs/PERFORMANCE.md

Groups: environment (versions, GPUs, nvcc, STYLEINV_OPS, matmul throughput), ops (CUDA kernels built and compared
with the reference path, values and gradients, fp32 and fp16), mixed (paper256 G and D, fp16 layers against fp32),
training (one step of each stage, peak memory, stage-3 memory per video), generation (frames/s of generate.py's
path), detectors (Inception and I3D throughput), distributed (2-process all-reduce and stage-1 step through the
`--gpus 2` code path, under a timeout). Each check passes, fails or is skipped with the reason; the exit code is 1
if any check that ran failed.

Without CUDA the same code runs at tiny shapes (`--shapes tiny`): the CPU checks pass and the GPU ones are skipped.
The checks reuse the benchmarks (benchmarks/stages.py, bench_ops, bench_train, bench_generate, bench_metrics).
"""

import datetime
import gc
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import bench_generate  # noqa: E402
import stages  # noqa: E402
from bench_metrics import bench_detectors  # noqa: E402
from bench_networks import matmul_gflops  # noqa: E402
from bench_ops import make_cases  # noqa: E402
from bench_train import step_seconds  # noqa: E402
from timing import sync  # noqa: E402

from metrics import detectors  # noqa: E402
from torch_utils import distributed  # noqa: E402
from torch_utils.ops import bias_act, cuda_build, upfirdn2d  # noqa: E402
from train_encoder import ENCODER_PRESETS  # noqa: E402
from training import training_loop  # noqa: E402
from training.loss_stylegan2 import build_stylegan_stage, preset_stage_kwargs  # noqa: E402
from training.networks_stylegan2 import Discriminator, Generator  # noqa: E402
from training.presets import stylegan2_preset  # noqa: E402

# Sizes of every check: `full` is the paper's 256 px model (GPU default), `tiny` the same code at CPU sizes.
SHAPES = {
    "full": dict(preset="paper256", resolution=256, encoder="ir_se50", config="deeperforensics.yaml", fp16_res=None,
                 ops=dict(batch=4, res=256, channel_max=512), batch=4, stage3_batches=(1, 2, 4), long_dist=2048,
                 iters=3, generation=((1, 64), (1, 256), (4, 64), (8, 64), (16, 32)), inception_batch=64,
                 i3d_clips=8, allreduce_mb=256, matmul_n=8192),
    "tiny": dict(preset="tiny", resolution=32, encoder="tiny", config="tiny.yaml", fp16_res=2,
                 ops=dict(batch=1, res=16, channel_max=32), batch=4, stage3_batches=(1, 2), long_dist=2048,
                 iters=1, generation=((1, 4), (2, 4)), inception_batch=1, i3d_clips=1, allreduce_mb=1,
                 matmul_n=512),
}
# Largest relative L2 error of the fp16-layer (mixed) G/D against fp32 on the same inputs.
MIXED_TOLERANCE = dict(images=2e-2, logits=2e-2, G_grads=1e-1, D_grads=1e-1)
# A CUDA kernel passes when its error against float64 is within 2x the reference path's at the same dtype, or
# below this floor.
KERNEL_FLOOR = {torch.float32: 1e-5, torch.float16: 2e-3}
REFERENCE_LIMIT = 1e-4  # the fp32 reference path against float64, anywhere
MEMORY_FLAT = (0.05, 64 * 2**20)  # max_dist must not change peak memory by more than 5 % or 64 MiB
GOAL_GB_PER_VIDEO, GOAL_FPS = 2.0, 500  # stage-3 memory per video (paper: 2.85 GB); frames/s on one H100
DOC_BEGIN, DOC_END = "<!-- gpu_check:begin -->", "<!-- gpu_check:end -->"
STATUS_MARK = {"pass": "pass", "fail": "FAIL", "skipped": "skipped"}


# One line of the report: a check's status ('pass', 'fail', 'skipped'), one-line detail (the reason when skipped),
# measurements for the JSON file and an optional table ([header, *rows]) for the markdown.
@dataclass
class Result:
    name: str
    status: str
    detail: str
    data: dict = field(default_factory=dict)
    table: list | None = None
    seconds: float = 0.0


# What every check reads: the device, the sizes, a scratch folder and the stage-2 snapshot made on first use.
@dataclass
class Context:
    device: torch.device
    shapes: dict
    tmp: Path
    detector_dir: str | None = None
    timeout: int = 300
    _stage2: Path | None = None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def stage2_checkpoint(self) -> Path:
        if self._stage2 is None:
            backbone = ENCODER_PRESETS[self.shapes["encoder"]]
            self._stage2 = stages.write_stage2_checkpoint(self.tmp / "stage2.pt", self.shapes["preset"],
                                                          self.shapes["resolution"], backbone)
        return self._stage2

    def peak_gb(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else None

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)


# Gigabytes for a table cell ('-' when not measured).
def _fmt_gb(gb: float | None) -> str:
    return "-" if gb is None else f"{gb:.2f}"


# Relative errors of `a` against the reference `b`: max-abs (for op kernels) and L2 (for whole networks).
def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


# ||a - b|| / ||b||.
def l2_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# $STYLEINV_OPS set to `mode` inside the block, restored after.
@contextmanager
def ops_mode(mode: str):
    old = os.environ.get(cuda_build.OPS_ENV)
    os.environ[cuda_build.OPS_ENV] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(cuda_build.OPS_ENV, None)
        else:
            os.environ[cuda_build.OPS_ENV] = old


# ----------------------------------------------------------------------------------------------------------
# Environment.


# The nvcc found the way the op build finds it, with its release line, or None.
def nvcc_info() -> dict | None:
    cuda_home = cuda_build.find_cuda_home()
    nvcc = os.path.join(cuda_home, "bin", "nvcc") if cuda_home else None
    if nvcc is None or not os.path.exists(nvcc):
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        out = f"(nvcc --version failed: {e})"
    release = [line.strip() for line in out.splitlines() if "release" in line]
    return dict(path=nvcc, cuda_home=cuda_home, version=release[0] if release else out.strip()[-200:])


# Versions, GPUs, nvcc, the ops mode and matmul throughput (fp32, TF32, fp16 on CUDA).
def environment(ctx: Context) -> list[Result]:
    gpus = [dict(name=torch.cuda.get_device_name(i), memory_gb=torch.cuda.get_device_properties(i).total_memory
                 / 2**30, capability=".".join(map(str, torch.cuda.get_device_capability(i))))
            for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    nvcc, cudnn = nvcc_info(), torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    env = dict(python=sys.version.split()[0], torch=torch.__version__, cuda=torch.version.cuda,
               cudnn=f"{cudnn // 10000}.{cudnn % 10000 // 100}.{cudnn % 100}" if cudnn else None, gpus=gpus,
               nvcc=nvcc, ops_mode=cuda_build.ops_mode(), tf32=False, cpu_threads=torch.get_num_threads())
    variants = [("fp32", torch.float32), ("tf32", torch.float32), ("fp16", torch.float16)][:3 if ctx.cuda else 1]
    for name, dtype in variants:
        torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
        env[f"matmul_{name}_tflops"] = matmul_gflops(ctx.device, ctx.shapes["matmul_n"], 3, dtype) / 1e3
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu_text = ", ".join(f"{g['name']} ({g['memory_gb']:.0f} GiB, sm {g['capability']})" for g in gpus) or "no GPU"
    detail = (f"torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}; {gpu_text}; nvcc "
              f"{nvcc['version'] if nvcc else 'not found'}; STYLEINV_OPS={env['ops_mode']}; matmul " +
              ", ".join(f"{k} {env[f'matmul_{k}_tflops']:.2f}" for k, _ in variants) + " TFLOP/s")
    table = [["item", "value"]] + [[k, json.dumps(v) if isinstance(v, (dict, list)) else str(v)]
                                   for k, v in env.items()]
    return [Result("environment", "pass", detail, env, table)]


# ----------------------------------------------------------------------------------------------------------
# Custom ops.


# Each op module with a call that makes it load its CUDA extension.
def _op_modules():
    return [("bias_act", bias_act, lambda d: bias_act.bias_act(torch.zeros(2, 3, device=d), act="lrelu")),
            ("upfirdn2d", upfirdn2d, lambda d: upfirdn2d.upsample2d(torch.zeros(1, 1, 4, 4, device=d),
                                                                   upfirdn2d.setup_filter([1, 3, 3, 1], device=d)))]


# Build (or load from the cache) each CUDA extension with STYLEINV_OPS=cuda: time, cache hit, or the cause.
def build_kernels(ctx: Context) -> Result:
    if not ctx.cuda:
        return Result("ops: CUDA kernels built", "skipped", "no CUDA device")
    if cuda_build.ops_mode() == "ref":
        return Result("ops: CUDA kernels built", "skipped", "STYLEINV_OPS=ref (unset it to build the kernels)")
    major, minor = torch.cuda.get_device_capability(ctx.device)
    rows, data = [["op", "cache", "seconds", "error"]], {}
    for name, module, call in _op_modules():
        build_dir = cuda_build.cached_build_dir(module.EXTENSION_NAME, module.EXTENSION_SOURCES +
                                                module.EXTENSION_DEPENDS, f"sm_{major}{minor}")
        hit = any(build_dir.glob(f"{module.EXTENSION_NAME}.*"))
        start = time.perf_counter()
        try:
            with ops_mode("cuda"):
                call(ctx.device)
            error = None
        except RuntimeError as e:
            error = str(e).strip()
        seconds = time.perf_counter() - start
        data[name] = dict(cache_hit=hit, seconds=seconds, error=error, build_dir=str(build_dir))
        error = error and error.splitlines()[0]  # the full message (cause and fix) stays in the JSON
        data[name]["outcome"] = f"FAILED: {error}" if error else "cache hit" if hit else "compiled"
        rows.append([name, "hit" if hit else "compiled", f"{seconds:.1f}", error or ""])
    failed = [n for n, d in data.items() if d["error"]]
    detail = "; ".join(f"{n} {d['outcome']} ({d['seconds']:.1f} s)" for n, d in data.items())
    return Result("ops: CUDA kernels built", "fail" if failed else "pass", detail, data, rows)


# Max relative errors (values, input gradients) of every bench_ops case at `dtype` with the path of STYLEINV_OPS
# `mode` against float64 `truth`. Every dtype sees the same numbers (make_cases draws in fp32 and casts).
def case_errors(ctx: Context, dtype: torch.dtype, modes: list[str], truth: list | None = None) -> list[dict]:
    torch.manual_seed(0)
    cases, rand = make_cases(device=ctx.device, dtype=dtype, **ctx.shapes["ops"])
    results = []
    for i, (name, shape, op) in enumerate(cases):
        row = dict(op=name, shape=shape)
        for mode in modes:
            torch.manual_seed(i + 1)
            x = rand(*shape, grad=True)
            with ops_mode(mode):
                y = op(x)
                dy = torch.randn(y.shape, device=ctx.device).to(dtype)
                (dx,) = torch.autograd.grad(y, x, dy)
            if truth is None:
                row.update(y=y.detach(), dx=dx)
            else:
                row[mode] = (max_rel_err(y, truth[i]["y"]), max_rel_err(dx, truth[i]["dx"]))
        results.append(row)
    return results


# The CUDA kernels against the reference path at StyleGAN2 shapes, fp32 and fp16 (on CPU: the reference path's
# fp32 accuracy only, which must also hold).
def compare_kernels(ctx: Context, built: Result) -> Result:
    name = "ops: kernels vs reference"
    truth = case_errors(ctx, torch.float64, ["ref"])
    kernels = ctx.cuda and built.status == "pass"
    dtypes = [torch.float32, torch.float16] if ctx.cuda else [torch.float32]
    rows, worst_ref, bad = [["op", "dtype", "ref value", "cuda value", "ref grad", "cuda grad", "ok"]], 0.0, []
    for dtype in dtypes:
        for r in case_errors(ctx, dtype, ["ref", "cuda"] if kernels else ["ref"], truth):
            ref, cuda = r["ref"], r.get("cuda")
            if dtype == torch.float32:
                worst_ref = max(worst_ref, *ref)
            ok = cuda is None or all(c <= max(2 * e, KERNEL_FLOOR[dtype]) for c, e in zip(cuda, ref))
            ok = ok and (dtype != torch.float32 or max(ref) <= REFERENCE_LIMIT)
            bad += [] if ok else [f"{r['op']} {str(dtype)[6:]}"]
            rows.append([r["op"], str(dtype)[6:], f"{ref[0]:.1e}", f"{cuda[0]:.1e}" if cuda else "-",
                         f"{ref[1]:.1e}", f"{cuda[1]:.1e}" if cuda else "-", "yes" if ok else "NO"])
    data = dict(rows=rows, worst_reference_fp32=worst_ref)
    if bad:
        return Result(name, "fail", f"out of tolerance: {', '.join(bad)}", data, rows)
    if not kernels:
        why = "no CUDA device" if not ctx.cuda else "kernels not built"
        return Result(name, "skipped", f"{why}; reference path fp32 vs float64: max error {worst_ref:.1e}", data,
                      rows)
    return Result(name, "pass", f"{len(rows) - 1} cases x (values, gradients) within tolerance; errors against "
                                "float64 in the table", data, rows)


# Kernel build and comparison rows, each with its own time.
def ops(ctx: Context) -> list[Result]:
    start = time.perf_counter()
    built = build_kernels(ctx)
    built.seconds = time.perf_counter() - start
    compared = compare_kernels(ctx, built)
    compared.seconds = time.perf_counter() - start - built.seconds
    return [built, compared]


# ----------------------------------------------------------------------------------------------------------
# Mixed precision.


# Images, D logits and gradients of the generator loss softplus(-D(G(z))) for G and D parameters.
def _g_d_pass(G, D, z, c, force_fp32: bool) -> dict:
    img = G(z, c, noise_mode="const", force_fp32=force_fp32)
    logits = D(img, c, force_fp32=force_fp32)
    params = [p for p in list(G.parameters()) + list(D.parameters()) if p.requires_grad]
    grads = torch.autograd.grad(torch.nn.functional.softplus(-logits).sum(), params, allow_unused=True)
    flat = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    n_G = len([p for p in G.parameters() if p.requires_grad])
    return dict(images=img.float(), logits=logits.float(), G_grads=torch.cat([g.flatten() for g in flat[:n_G]]),
                D_grads=torch.cat([g.flatten() for g in flat[n_G:]]))


# paper256 G and D in the training configuration (fp16 top layers, conv_clamp) against fp32 on the same inputs.
def mixed_precision(ctx: Context) -> list[Result]:
    name = "mixed precision G/D"
    spec = stylegan2_preset(ctx.shapes["preset"], ctx.shapes["resolution"])
    if ctx.shapes["fp16_res"] is not None:
        for kw in (spec.G_kwargs.synthesis_kwargs, spec.D_kwargs):
            kw["num_fp16_res"] = ctx.shapes["fp16_res"]
    batch = ctx.shapes["batch"]
    spec.D_kwargs.epilogue_kwargs["mbstd_group_size"] = min(batch, spec.mbstd_group)
    torch.manual_seed(0)
    G, D = Generator(**spec.G_kwargs).to(ctx.device), Discriminator(**spec.D_kwargs).to(ctx.device)
    z, c = torch.randn([batch, G.z_dim], device=ctx.device), torch.zeros([batch, 0], device=ctx.device)
    mixed, fp32 = _g_d_pass(G, D, z, c, False), _g_d_pass(G, D, z, c, True)
    errors = {k: l2_rel_err(mixed[k], fp32[k]) for k in MIXED_TOLERANCE}
    finite = all(bool(torch.isfinite(t).all()) for t in list(mixed.values()) + list(fp32.values()))
    rows = [["tensor", "relative L2 error", "tolerance"]] + [[k, f"{v:.2e}", f"{MIXED_TOLERANCE[k]:.0e}"]
                                                             for k, v in errors.items()]
    data = dict(errors=errors, finite=finite)
    text = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
    bad = [k for k, v in errors.items() if not v <= MIXED_TOLERANCE[k]]
    if not finite or bad:
        return [Result(name, "fail", ("NaN/Inf in the outputs or gradients; " if not finite else "") +
                       f"relative errors {text}", data, rows)]
    if not ctx.cuda:
        return [Result(name, "skipped", f"fp16 layers run only on CUDA; on CPU both passes are fp32 ({text})", data,
                       rows)]
    return [Result(name, "pass", f"no NaN/Inf; relative L2 error vs fp32: {text}", data, rows)]


# ----------------------------------------------------------------------------------------------------------
# Training steps.


# step_seconds of a stage on one batch with its peak memory; a table row per phase.
def _measure_step(ctx: Context, stage, batch: list) -> dict:
    ctx.reset_peak()
    times = step_seconds(stage, batch, ctx.device, ctx.shapes["iters"])
    return dict(phases=times, seconds=sum(times.values()), peak_gb=ctx.peak_gb())


# A training-step row: seconds per step (and peak memory), the per-phase table.
def _step_result(name: str, ctx: Context, step: dict, extra: str = "") -> Result:
    rows = [["phase (per step)", "seconds"]] + [[k, f"{v:.3f}"] for k, v in step["phases"].items()]
    rows.append(["step", f"{step['seconds']:.3f}"])
    memory = f", peak {step['peak_gb']:.2f} GB" if step["peak_gb"] is not None else ""
    return Result(name, "pass", f"{step['seconds']:.3f} s/step (batch {ctx.shapes['batch']}){memory}{extra}", step,
                  rows)


# One stage-1 step (Gmain, Greg/4, Dmain, Dreg/16) at the preset's shapes.
def stage1_step(ctx: Context) -> list[Result]:
    s = ctx.shapes
    stage = stages.stylegan_stage(ctx.device, s["preset"], s["resolution"], s["batch"])
    step = _measure_step(ctx, stage, stages.fake_batch(s["batch"], s["resolution"], ctx.device))
    return [_step_result("stage-1 step", ctx, step)]


# Stage 2 with the LPIPS and ArcFace terms when their weight files are found, without them otherwise.
def stage2_step(ctx: Context) -> list[Result]:
    s = ctx.shapes
    for lpips, identity in ((True, True), (True, False), (False, True), (False, False)):
        try:
            stage = stages.encoder_stage(ctx.device, ctx.stage2_checkpoint(), s["resolution"],
                                         ENCODER_PRESETS[s["encoder"]], lpips, identity)
            break
        except FileNotFoundError:
            continue
    step = _measure_step(ctx, stage, stages.fake_batch(s["batch"], s["resolution"], ctx.device))
    terms = "MSE" + (" + LPIPS" if lpips else "") + (" + ID" if identity else "")
    missing = "" if lpips and identity else " (weight files of the other terms not found)"
    return [_step_result("stage-2 step", ctx, dict(step, loss=terms), f"; loss {terms}{missing}")]


# Stage 3 at each batch of `stage3_batches` (4 frames per video), then at max_dist `long_dist`: time per step,
# and on CUDA the peak memory per video and whether it is flat in max_dist.
def stage3_steps(ctx: Context) -> list[Result]:
    s, config = ctx.shapes, ROOT / "configs" / ctx.shapes["config"]
    stage = stages.styleinv_stage(ctx.device, ctx.stage2_checkpoint(), config, s["resolution"])
    steps = {b: _measure_step(ctx, stage, stages.fake_batch(b, s["resolution"], ctx.device, clips=True))
             for b in s["stage3_batches"]}
    default_dist = stage.loss.max_dist
    del stage
    _free_memory()
    b_long = s["stage3_batches"][1]
    stage = stages.styleinv_stage(ctx.device, ctx.stage2_checkpoint(), config, s["resolution"], s["long_dist"])
    long = _measure_step(ctx, stage, stages.fake_batch(b_long, s["resolution"], ctx.device, clips=True))
    del stage
    rows = [["videos", "max_dist", "s/step", "s/video", "peak GB", "GB/video"]]
    for b, st in list(steps.items()) + [(b_long, dict(long, max_dist=s["long_dist"]))]:
        gb = st["peak_gb"]
        rows.append([b, st.get("max_dist", default_dist), f"{st['seconds']:.3f}", f"{st['seconds'] / b:.3f}",
                     _fmt_gb(gb), _fmt_gb(None if gb is None else gb / b)])
    b_max = max(steps)
    data = dict(steps={str(b): v for b, v in steps.items()}, long=dict(long, batch=b_long, max_dist=s["long_dist"]))
    step = Result("stage-3 step", "pass", f"{steps[b_max]['seconds']:.3f} s/step at {b_max} videos x 4 frames; "
                                          f"max_dist {s['long_dist']}: {long['seconds']:.3f} s at {b_long}",
                  data, rows)
    return [step, stage3_memory(ctx, steps, long, b_long, default_dist)]


# Peak memory per video at each batch, the marginal cost of a video, the 2.0 GB goal, and flatness in
# max_dist (the failure criterion: StyleInV's sparse training must not cost more for longer spans).
def stage3_memory(ctx: Context, steps: dict, long: dict, b_long: int, default_dist: int) -> Result:
    name = "stage-3 memory per video"
    if not ctx.cuda:
        return Result(name, "skipped", "peak memory is measured with CUDA's allocator (no CUDA device)")
    per_video = {b: st["peak_gb"] / b for b, st in steps.items()}
    b_max, b_min = max(steps), min(steps)
    marginal = (steps[b_max]["peak_gb"] - steps[b_min]["peak_gb"]) / (b_max - b_min)
    change = long["peak_gb"] - steps[b_long]["peak_gb"]
    flat = abs(change) * 2**30 <= max(MEMORY_FLAT[0] * steps[b_long]["peak_gb"] * 2**30, MEMORY_FLAT[1])
    goal = per_video[b_max] <= GOAL_GB_PER_VIDEO
    data = dict(per_video_gb={str(b): v for b, v in per_video.items()}, marginal_gb_per_video=marginal,
                long_dist_change_gb=change, flat=flat, goal_met=goal)
    detail = (", ".join(f"{v:.2f} GB/video at {b}" for b, v in per_video.items()) +
              f" (marginal {marginal:.2f}); goal <= {GOAL_GB_PER_VIDEO} GB {'met' if goal else 'NOT met'} "
              f"(paper 2.85); max_dist {default_dist} -> {ctx.shapes['long_dist']}: {change:+.3f} GB "
              f"({'flat' if flat else 'NOT flat'})")
    return Result(name, "pass" if flat else "fail", detail, data)


# ----------------------------------------------------------------------------------------------------------
# Generation and detectors.


# generate.py's path (VideoGenerator: motion generator + G) in each (videos, frames) per call setting, fp32 and with
# G's fp16 layers on CUDA; the best setting.
def generation(ctx: Context) -> list[Result]:
    s = ctx.shapes
    motion = yaml.safe_load((ROOT / "configs" / s["config"]).read_text())["motion"]
    encoder = None if s["encoder"] == "ir_se50" else ENCODER_PRESETS[s["encoder"]]
    rows, results = [["G precision", "videos x frames per call", "frames/s", "ms w_t", "ms G", "peak GB"]], []
    for fp32 in ([False, True] if ctx.cuda else [True]):
        vg = bench_generate.paper_model(ctx.device, "const", s["preset"], s["resolution"], encoder, motion, fp32)
        for videos, chunk in s["generation"]:
            precision = "fp32" if fp32 else "mixed"
            try:
                r = bench_generate.run(vg, list(range(videos)), 2 * chunk, chunk, videos, write=False)
            except torch.cuda.OutOfMemoryError:  # a setting too large for this card is a finding, not a failure
                r = None
            if r is None:
                _free_memory()  # outside the except block, whose traceback still holds the tensors
                rows.append([precision, f"{videos} x {chunk}", "out of memory", "-", "-", "-"])
                continue
            r.update(precision=precision, videos=videos, chunk=chunk, peak_gb=r["peak_gb"] if ctx.cuda else None)
            results.append(r)
            rows.append([precision, f"{videos} x {chunk}", f"{r['fps']:.1f}", f"{r['ms_latents']:.2f}",
                         f"{r['ms_decode']:.2f}", _fmt_gb(r["peak_gb"])])
        del vg
        _free_memory()
    if not results:
        return [Result("generation", "fail", "every setting ran out of memory", dict(settings=[]), rows)]
    best = max(results, key=lambda r: r["fps"])
    goal = f"; goal >= {GOAL_FPS} on one H100 {'met' if best['fps'] >= GOAL_FPS else 'not met'}" if ctx.cuda else \
        " (fp16 layers: CUDA only)"
    detail = f"best {best['fps']:.1f} frames/s ({best['precision']}, {best['videos']} x {best['chunk']}){goal}"
    return [Result("generation", "pass", detail, dict(settings=results, best=best), rows)]


# A detector with the published weights when its file is found, else random weights (the same speed).
def _detector_maker(detector_dir: str | None, used: dict):
    def make(name: str):
        try:
            module = detectors.load_detector(name, detector_dir)
            used[name] = module.info["file"]
        except FileNotFoundError:
            module = detectors.random_detector(name)
            used[name] = "random weights (file not found)"
        return module
    return make


# Inception and I3D throughput through bench_metrics, with the weights found (or random).
def detector_throughput(ctx: Context) -> list[Result]:
    s, used = ctx.shapes, {}
    rows = bench_detectors(ctx.device, s["resolution"], s["iters"], False, s["inception_batch"], s["i3d_clips"],
                           _detector_maker(ctx.detector_dir, used))
    table = [["detector", "weights", "batch", "items/s", "frames/s"]]
    for r in rows:
        per_s = r["items"] / r["seconds"]
        r["frames_per_s"] = per_s * r["frames_per_item"]
        table.append([r["what"], used["inception" if r["what"] == "inception" else "i3d"], r["items"],
                      f"{per_s:.2f}", f"{r['frames_per_s']:.1f}"])
    detail = ", ".join(f"{r['what']} {r['frames_per_s']:.1f} frames/s" for r in rows)
    return [Result("detectors", "pass", detail, dict(rows=rows, weights=used), table)]


# ----------------------------------------------------------------------------------------------------------
# Distributed: a subprocess (killed at the timeout) spawns 2 ranks with distributed.launch, as `--gpus 2` does.


# One rank: an all-reduce of known values (timed), then one stage-1 step of the training loop; rank 0 writes the
# all-reduce result and every rank's parameter digests to `out_path`.
def _rank_entry(numel: int, loop_kwargs: dict, out_path: str, threads: int) -> None:
    import torch.distributed as dist
    torch.set_num_threads(threads)
    rank, world = distributed.get_rank(), distributed.get_world_size()
    device = distributed.device_for_rank(rank)
    x = torch.full([numel], float(rank + 1), device=device)
    dist.all_reduce(x)
    correct = bool((x == world * (world + 1) / 2).all())
    seconds = []
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        dist.all_reduce(x)
        sync(device)
        seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    result = training_loop.training_loop(**loop_kwargs)
    loop_seconds = time.perf_counter() - start
    digests = {name: hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in
                                             result["stage"].networks[name].parameters())).hexdigest()
               for name in ("G", "D", "G_ema")}
    gathered = distributed.all_gather_object(dict(correct=correct, digests=digests))
    if rank == 0:
        nbytes = numel * 4
        report = dict(backend=dist.get_backend(), world=world, bytes=nbytes, seconds=min(seconds),
                      bus_gb_per_s=2 * (world - 1) / world * nbytes / min(seconds) / 1e9, ranks=gathered,
                      loop_seconds=loop_seconds)
        Path(out_path).write_text(json.dumps(report))


# The worker process: a small synthetic dataset, the stage-1 loop arguments (1 step of the preset at batch
# 2 x 4 per GPU), then distributed.launch over 2 ranks.
def distributed_worker(args_path: str) -> None:
    from training.sprites import write_synthetic_dataset
    args = json.loads(Path(args_path).read_text())
    shapes, tmp = SHAPES[args["shapes"]], Path(args["tmp"])
    data = write_synthetic_dataset(tmp / "data", num_videos=4, num_frames=4, resolution=shapes["resolution"])
    spec = stylegan2_preset(shapes["preset"], shapes["resolution"], gpus=2)
    batch_gpu = 2 if args["shapes"] == "tiny" else 4
    (tmp / "run").mkdir()
    loop_kwargs = dict(run_dir=str(tmp / "run"), build_stage=build_stylegan_stage,
                       stage_kwargs=dict(preset_stage_kwargs(spec, stages.AUGMENT), grid_size=(2, 1)),
                       data_kwargs=dict(path=str(data), kind="frames"), batch_size=2 * batch_gpu,
                       batch_gpu=batch_gpu, total_kimg=2 * batch_gpu / 1000, kimg_per_tick=1, snapshot_ticks=None,
                       num_workers=0)
    numel = int(shapes["allreduce_mb"] * 2**20 // 4)
    distributed.launch(_rank_entry, (numel, loop_kwargs, args["out"], args["threads"]), 2)


# Run distributed_worker in its own process group; kill the group at the timeout so that a hang cannot last.
def run_distributed_worker(ctx: Context) -> dict:
    work = Path(tempfile.mkdtemp(dir=ctx.tmp, prefix="distributed-"))
    args = dict(shapes=ctx.shapes["name"], tmp=str(work), out=str(work / "result.json"),
                threads=torch.get_num_threads())
    (work / "args.json").write_text(json.dumps(args))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--distributed-worker", str(work / "args.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=ctx.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"the 2-process run did not finish within {ctx.timeout} s and was killed "
                           "(--distributed-timeout)") from None
    if proc.returncode != 0 or not Path(args["out"]).is_file():
        tail = " | ".join(line for line in out.strip().splitlines()[-6:])
        raise RuntimeError(f"the 2-process run exited with code {proc.returncode}: {tail}")
    return json.loads(Path(args["out"]).read_text())


# The all-reduce and 2-process step rows from one worker run (both fail on a timeout or a crash).
def distributed_checks(ctx: Context) -> list[Result]:
    names = ("2-process all-reduce", "2-process stage-1 step")
    if ctx.cuda and torch.cuda.device_count() < 2:
        return [Result(n, "skipped", f"needs 2 GPUs, {torch.cuda.device_count()} visible") for n in names]
    try:
        r = run_distributed_worker(ctx)
    except (TimeoutError, RuntimeError) as e:
        return [Result(n, "fail", str(e)) for n in names]
    ranks = r["ranks"]
    reduce_ok = all(rank["correct"] for rank in ranks)
    agree = all(rank["digests"] == ranks[0]["digests"] for rank in ranks)
    reduce = Result(names[0], "pass" if reduce_ok else "fail",
                    f"{r['backend']}: {'exact' if reduce_ok else 'WRONG'} sum on {r['world']} ranks; "
                    f"{r['bytes'] / 2**20:.0f} MiB in {r['seconds'] * 1e3:.2f} ms ({r['bus_gb_per_s']:.2f} GB/s bus)",
                    r)
    differ = [k for k in ranks[0]["digests"] if any(rank["digests"][k] != ranks[0]["digests"][k] for rank in ranks)]
    outcome = "identical on both ranks" if agree else "DIFFER: " + ", ".join(differ)
    step = Result(names[1], "pass" if agree else "fail", f"{r['backend']}: G, D, G_ema parameters {outcome} after "
                                                        f"the step (training_loop: {r['loop_seconds']:.1f} s)", r)
    return [reduce, step]


# ----------------------------------------------------------------------------------------------------------
# Running and reporting.

GROUPS = {"environment": [environment], "ops": [ops], "mixed": [mixed_precision],
          "training": [stage1_step, stage2_step, stage3_steps], "generation": [generation],
          "detectors": [detector_throughput], "distributed": [distributed_checks]}
CHECK_NAMES = {environment: "environment", ops: "ops", mixed_precision: "mixed precision G/D",
               stage1_step: "stage-1 step", stage2_step: "stage-2 step", stage3_steps: "stage-3 step",
               generation: "generation", detector_throughput: "detectors", distributed_checks: "distributed"}


# Release what finished checks left: Python garbage, then the CUDA caching allocator's free blocks.
def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# Run one check function; an exception becomes a failed row with its message.
def run_check(fn, ctx: Context) -> list[Result]:
    start = time.perf_counter()
    try:
        results = fn(ctx)
    except Exception as e:  # noqa: BLE001 - any error is this check's failure, reported and not fatal
        where = traceback.extract_tb(e.__traceback__)[-1]
        message = (str(e).strip().splitlines() or [""])[0]
        results = [Result(CHECK_NAMES[fn], "fail", f"{type(e).__name__}: {message} "
                                                   f"({Path(where.filename).name}:{where.lineno})")]
    _free_memory()
    for r in results:
        r.seconds = r.seconds or (time.perf_counter() - start) / len(results)
    return results


# Console table: fixed-width cells joined by bars.
def _row(cells, widths) -> str:
    return " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))


WIDTHS = (28, 7, 7)


# One row of the console table.
def print_result(r: Result) -> None:
    print(_row([r.name, STATUS_MARK[r.status], f"{r.seconds:.1f}"], WIDTHS) + " | " + r.detail, flush=True)


# A markdown table from [header, *rows].
def _md_table(rows: list) -> str:
    lines = ["| " + " | ".join(str(c) for c in rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows[1:]])


# The report as markdown: the GPU section of docs/PERFORMANCE.md.
def markdown(report: dict) -> str:
    env = report["environment"]
    gpus = ", ".join(g["name"] for g in env.get("gpus", [])) or "no GPU (CPU, tiny shapes)"
    lines = [f"Measured by `python scripts/gpu_check.py` on {report['date']}: **{gpus}**, torch {env.get('torch')}, "
             f"CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, shapes `{report['shapes']}`, TF32 off. "
             f"{report['summary']}.", "",
             _md_table([["check", "result", "seconds", "details"]] +
                       [[c["name"], STATUS_MARK[c["status"]], f"{c['seconds']:.1f}", c["detail"]]
                        for c in report["checks"]])]
    for c in report["checks"]:
        if c.get("table") and c["name"] != "environment":
            lines += ["", f"**{c['name']}**", "", _md_table(c["table"])]
    return "\n".join(lines) + "\n"


# Write text to a temporary file in the same folder, then rename it over `path`.
def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# Plain JSON data: dict keys as strings, anything else that is not a JSON scalar as its str().
def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


# The report of the results so far: date, shapes, environment, counts, and every row.
def build_report(results: list[Result], shapes: str, env: dict, done: bool) -> dict:
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skipped")}
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped" + \
        ("" if done else " (incomplete)")
    return _jsonable(dict(date=datetime.date.today().isoformat(), shapes=shapes, environment=env, summary=summary,
                          counts=counts, complete=done, checks=[r.__dict__ for r in results]))


# gpu_check.json and gpu_check.md in `outdir`, each written atomically.
def write_outputs(outdir: Path, report: dict) -> None:
    write_atomic(outdir / "gpu_check.json", json.dumps(report, indent=2) + "\n")
    write_atomic(outdir / "gpu_check.md", markdown(report))


# Replace the marked GPU section of docs/PERFORMANCE.md by the report.
def fill_docs_section(path: Path, report: dict) -> None:
    text = path.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise click.ClickException(f"{path} has no {DOC_BEGIN} ... {DOC_END} section to fill")
    head, rest = text.split(DOC_BEGIN, 1)
    write_atomic(path, head + DOC_BEGIN + "\n" + markdown(report) + DOC_END + rest.split(DOC_END, 1)[1])


# The --checks groups in order, environment always first; an unknown one is a usage error.
def _parse_groups(text: str) -> list[str]:
    groups = list(GROUPS) if text == "all" else ["environment"] + [g.strip() for g in text.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise click.BadParameter(f"unknown group {', '.join(unknown)}; choose from {', '.join(GROUPS)} or all",
                                 param_hint="--checks")
    return list(dict.fromkeys(groups))


@click.command()
@click.option("--outdir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder for gpu_check.json and gpu_check.md")
@click.option("--checks", default="all", show_default=True, help=f"Comma-separated groups: {', '.join(GROUPS)}")
@click.option("--shapes", default="auto", show_default=True, type=click.Choice(["auto", "full", "tiny"]),
              help="full: paper256 (auto on CUDA); tiny: CPU sizes (auto without CUDA)")
@click.option("--detector-dir", default=None, type=click.Path(file_okay=False),
              help="Folder with the Inception/I3D weight files (random weights when absent)")
@click.option("--distributed-timeout", default=300, show_default=True, type=click.IntRange(min=1),
              help="Seconds before the 2-process check is killed and failed")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="torch CPU threads [default: 1 for tiny shapes (tiny tensors run fastest on one), else torch's]")
@click.option("--update-docs", is_flag=True, help="Also write the report into docs/PERFORMANCE.md (CUDA runs)")
@click.option("--distributed-worker", "worker_args", default=None, hidden=True)
def main(outdir, checks, shapes, detector_dir, distributed_timeout, threads, update_docs, worker_args):
    """Check that the GPU install works and measure it (see the module docstring)."""
    if worker_args:
        return distributed_worker(worker_args)
    groups = _parse_groups(checks)
    try:
        cuda_build.ops_mode()
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if update_docs and device.type != "cuda":
        raise click.ClickException("--update-docs records GPU figures, but this machine has no CUDA device")
    shapes = shapes if shapes != "auto" else ("full" if device.type == "cuda" else "tiny")
    if threads or shapes == "tiny":
        torch.set_num_threads(threads or 1)
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"--outdir {outdir}: cannot create it ({e.strerror})") from None
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # the training default
    torch.backends.cudnn.benchmark = True
    fns = [fn for g in groups for fn in GROUPS[g]]
    print(f"gpu_check: device {device}, shapes {shapes}, checks {', '.join(groups)}; writing {outdir}/gpu_check.*",
          flush=True)
    print(_row(["check", "result", "seconds"], WIDTHS) + " | details")
    print("-" * 100, flush=True)
    results, env = [], {}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        ctx = Context(device, dict(SHAPES[shapes], name=shapes), Path(tmp), detector_dir, distributed_timeout)
        for i, fn in enumerate(fns):
            print(f"[{i + 1}/{len(fns)}] {CHECK_NAMES[fn]} ...", flush=True)
            for r in run_check(fn, ctx):
                print_result(r)
                results.append(r)
                env = r.data if r.name == "environment" and r.status == "pass" else env
            write_outputs(outdir, build_report(results, shapes, env, done=False))
    report = build_report(results, shapes, env, done=True)
    write_outputs(outdir, report)
    if update_docs:
        fill_docs_section(ROOT / "docs" / "PERFORMANCE.md", report)
    print(f"{report['summary']}; wrote {outdir / 'gpu_check.json'} and {outdir / 'gpu_check.md'}", flush=True)
    sys.exit(1 if report["counts"]["fail"] else 0)


if __name__ == "__main__":
    main()
