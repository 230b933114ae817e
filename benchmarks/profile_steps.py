"""Where a training phase spends its time: torch.profiler over a few calls of each phase of one stage, built as
bench_steps.py builds it (random weights, the demo's or paper256 sizes), and the operators with the most self CPU
time, as a share of the phase.

  python benchmarks/profile_steps.py --size demo --stage 3 --calls 3 --top 8
"""

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_steps import SIZES, build  # noqa: E402

from torch_utils import cpu_memory  # noqa: E402
from training.training_loop import _run_phase  # noqa: E402


# (operator, self CPU seconds per call, share of the phase) for the `top` costliest operators of `phase`.
def profile_phase(stage, phase, batch, calls: int, top: int) -> tuple[float, list[tuple[str, float, float]]]:
    _run_phase(stage, phase, [batch], stage.loss.stats)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            _run_phase(stage, phase, [batch], stage.loss.stats)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    costliest = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return total / calls / 1e6, [(e.key, e.self_cpu_time_total / calls / 1e6, e.self_cpu_time_total / total)
                                 for e in costliest]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="demo", choices=sorted(SIZES))
    parser.add_argument("--stage", type=int, default=3, choices=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    stage, batch = build(args.stage, SIZES[args.size], device)
    cpu_memory.configure_for_training(device, batch[0].shape[-1])  # as the training loop does, after the build
    print(f"{args.size}, stage {args.stage}, {torch.get_num_threads()} threads, {args.calls} calls per phase")
    print("| phase | seconds per call | operator | self seconds per call | share |")
    print("| --- | --- | --- | --- | --- |")
    for phase in stage.phases:
        seconds, rows = profile_phase(stage, phase, batch, args.calls, args.top)
        for i, (name, op_seconds, share) in enumerate(rows):
            lead = f"| {phase.name} | {seconds:.3f} " if i == 0 else "| | "
            print(f"{lead}| `{name}` | {op_seconds:.4f} | {share:.0%} |")


if __name__ == "__main__":
    main()
