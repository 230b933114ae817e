"""Process-group setup (torchrun or a local spawn), rank helpers and gradient all-reduce; failure handling so
that a failed or dead process never leaves the others waiting: a collective timeout, a parent that watches its
children, and ranks that agree on a failure during setup."""

import ctypes
import datetime
import json
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.distributed as dist
import tqdm

from dnnlib import errors

# Seconds a collective waits for the other ranks before it fails (STYLEINV_DIST_TIMEOUT overrides); long enough for
# rank-0-only work between collectives (snapshots, image grids, evaluation).
DEFAULT_TIMEOUT_S = 600
# Seconds the spawning parent gives the other processes to stop by themselves after one failed, before SIGKILL.
STOP_GRACE_S = 10


# Another rank failed; this one stopped too. Rank 0 reports the failure (the others are marked reported_elsewhere).
class PeerFailed(errors.UserError):
    pass


# A spawned process failed or died; the message says which rank and why.
class ProcessFailed(errors.UserError):
    def __init__(self, message: str, died: bool):
        super().__init__(message)
        self.died = died  # killed or exited without a report (its last snapshot may be older than its work)


# Rank and world size of this process (0 / 1 when not distributed).
def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def print0(*args, **kwargs) -> None:
    if get_rank() == 0:
        print(*args, **kwargs, flush=True)


def device_for_rank(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


# Join the process group described by torchrun's environment variables, if any.
# Returns the local rank. NCCL on CUDA, gloo on CPU.
def init_from_env() -> int:
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return int(os.environ.get("LOCAL_RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=collective_timeout())
    return local_rank


def collective_timeout() -> datetime.timedelta:
    return datetime.timedelta(seconds=float(os.environ.get("STYLEINV_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Linux: this process gets SIGKILL when its parent dies, so that no rank outlives a killed launcher.
def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# True if `exc` came out of a torch.distributed call (a collective that failed or timed out: a peer died or hangs).
def is_collective_failure(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, RuntimeError) and any("torch/distributed/" in f.filename.replace(os.sep, "/")
                                                 for f in frames)


# The PeerFailed to raise instead of a collective failure on this rank.
def peer_failed(exc: BaseException) -> PeerFailed:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PeerFailed(f"Rank {get_rank()} stopped: another process died or stopped responding during a collective "
                      f"operation ({first[:300]})")


# What a spawned process tells its parent about its failure: 'user' (a user error, with its message), 'peer' (it
# stopped because another rank failed: a collective error or PeerFailed), or 'bug' (with the traceback).
def _failure_report(exc: BaseException) -> dict:
    tb = traceback.format_exc()
    message = errors.user_message(exc)
    if isinstance(exc, PeerFailed) or is_collective_failure(exc):
        kind = "peer"
    elif isinstance(exc, KeyboardInterrupt):
        kind, message = "peer", "interrupted"
    else:
        kind = "user" if message is not None else "bug"
    return dict(kind=kind, message=message, traceback=tb)


def _spawn_entry(rank: int, world_size: int, init_file: str, report_dir: str, fn: Callable, args: tuple) -> None:
    _die_with_parent()
    # Progress bars lock with a thread lock: tqdm's default is a named semaphore, which a killed rank leaves behind
    # for the parent's resource tracker to warn about.
    tqdm.tqdm.set_lock(threading.RLock())
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend=backend, init_method=f"file://{init_file}", rank=rank,
                                world_size=world_size, timeout=collective_timeout())
        with errors.user_warnings():
            fn(*args)
        dist.destroy_process_group()
    except BaseException as e:
        report = _failure_report(e)
        if errors.debug():
            print(f"[rank {rank}] {report['traceback']}", file=sys.stderr)
        tmp = Path(report_dir) / f".rank{rank}.json"
        tmp.write_text(json.dumps(report))
        os.replace(tmp, Path(report_dir) / f"rank{rank}.json")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # not sys.exit: exit handlers may wait on a process group whose peer is gone


# Wait for every process; once one fails, give the others STOP_GRACE_S to stop, then SIGKILL them. SIGTERM sent to
# the parent is passed on (each rank then writes a snapshot and stops); SIGINT from a terminal reaches the ranks
# directly. Returns (failed ranks in the order seen, ranks killed by the parent).
def _supervise(procs: list) -> tuple[list[int], list[int]]:
    alive, failed, killed = set(range(len(procs))), [], []
    deadline = None

    def forward(signum, frame):
        for r in alive:
            os.kill(procs[r].pid, signal.SIGTERM)
    handlers = {}
    try:
        handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                    signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        while alive:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            multiprocessing.connection.wait([procs[r].sentinel for r in alive], timeout)
            for r in sorted(alive):
                if procs[r].exitcode is not None:
                    alive.discard(r)
                    if procs[r].exitcode != 0:
                        failed.append(r)
                        deadline = deadline or time.monotonic() + STOP_GRACE_S
            if deadline is not None and time.monotonic() >= deadline:
                killed = sorted(alive)
                break
    finally:
        for r in alive:
            procs[r].kill()
        for r in alive:
            procs[r].join()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return failed, killed


def _read_report(report_dir: str, rank: int) -> dict | None:
    path = Path(report_dir) / f"rank{rank}.json"
    return json.loads(path.read_text()) if path.is_file() else None


# The failure to report, and the exception that reports it. Root cause first: a process that died without a report
# (killed), then user errors, then bugs, then ranks that only stopped because of another's failure.
def _failure(procs: list, failed: list[int], killed: list[int], report_dir: str) -> ProcessFailed:
    reports = {r: _read_report(report_dir, r) for r in failed}
    order = dict(user=1, bug=2, peer=3)
    root = min(failed, key=lambda r: (0 if reports[r] is None else order[reports[r]["kind"]], failed.index(r)))
    report, proc = reports[root], procs[root]
    stopped = f"; stopped rank{'s' * (len(killed) > 1)} {', '.join(map(str, killed))}" if killed else ""
    if report is None:
        code = proc.exitcode
        how = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        return ProcessFailed(f"The process of rank {root} (pid {proc.pid}) {how}{stopped}.", died=True)
    if errors.debug() or report["kind"] != "user":
        for r in failed if errors.debug() else [root]:
            if reports[r] is not None:
                print(f"[rank {r}] {reports[r]['traceback']}", file=sys.stderr, flush=True)
    if report["kind"] == "user":
        return ProcessFailed(report["message"], died=False)
    return ProcessFailed(f"The process of rank {root} (pid {proc.pid}) failed with the traceback above{stopped}.",
                         died=False)


# Run fn(*args) in `num_procs` local processes (one per GPU, or CPU processes with gloo), or inline for 1 (and under
# torchrun, which starts the processes itself). A failure of any process stops all of them and raises
# ProcessFailed in the parent, which reports it once.
def launch(fn: Callable, args: tuple, num_procs: int) -> None:
    if num_procs <= 1 or "WORLD_SIZE" in os.environ:
        init_from_env()
        fn(*args)
        return
    if torch.cuda.is_available() and torch.cuda.device_count() < num_procs:
        raise errors.UserError(f"--gpus={num_procs} but only {torch.cuda.device_count()} CUDA devices are visible")
    context = torch.multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.abspath(os.path.join(tmp, ".torch_distributed_init"))
        procs = [context.Process(target=_spawn_entry, args=(rank, num_procs, init_file, tmp, fn, args))
                 for rank in range(num_procs)]
        for p in procs:
            p.start()
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        print(f"Started {num_procs} processes ({backend}): "
              + ", ".join(f"rank {r} pid {p.pid}" for r, p in enumerate(procs)), flush=True)
        failed, killed = _supervise(procs)
        if failed:
            raise _failure(procs, failed, killed, tmp)


# Run fn(*args) on every rank and agree on failure: if it raises on some rank, it raises on every rank (the failing
# ones their own exception, the others PeerFailed), so that no rank waits for the others in a later collective.
# Rank 0 reports the failure: its own, or every failing rank's message (PeerFailed); another rank's exception
# is marked reported_elsewhere unless it differs from rank 0's own.
def agree(fn: Callable, *args):
    try:
        result, error = fn(*args), None
    except Exception as e:
        result, error = None, e
    if get_world_size() > 1:
        mine = None if error is None else (errors.user_message(error) or f"{type(error).__name__}: {error}")
        try:
            failed = {r: m for r, m in enumerate(all_gather_object(mine)) if m is not None}
        except RuntimeError as e:
            if not is_collective_failure(e):
                raise
            raise peer_failed(e) from e
        if failed and error is None:
            error = PeerFailed("; ".join(f"rank {r} failed: {m}" for r, m in failed.items()))
        if error is not None and get_rank() != 0 and (0 not in failed or failed[0] == mine):
            error.reported_elsewhere = True
    if error is not None:
        raise error
    return result


# Copy rank 0's parameters and buffers to every rank.
def broadcast_module(module: torch.nn.Module) -> None:
    if get_world_size() == 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


# Average the gradients of `params` over ranks in one flat all-reduce and scrub NaN/Inf
# (nan -> 0, +-inf -> +-1e5), as StyleGAN2-ADA does before every optimizer step.
def reduce_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if get_world_size() > 1:
        dist.all_reduce(flat)
        flat /= get_world_size()
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.reshape(p.shape))


# True on every rank if it is True on any rank (used to agree on stopping).
def any_rank(flag: bool, device: torch.device) -> bool:
    if get_world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_gather_object(obj) -> list:
    if get_world_size() == 1:
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out
