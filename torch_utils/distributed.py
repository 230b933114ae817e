"""Process-group setup (torchrun or a local spawn), rank helpers and gradient all-reduce."""

import os
import socket
import tempfile
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist


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
    dist.init_process_group(backend=backend)
    return local_rank


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_entry(rank: int, world_size: int, init_file: str, fn: Callable, args: tuple) -> None:
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    dist.init_process_group(backend=backend, init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


# Run fn(*args) in `num_procs` local processes (one per GPU, or CPU processes with gloo), or inline for 1.
def launch(fn: Callable, args: tuple, num_procs: int) -> None:
    if num_procs <= 1 or "WORLD_SIZE" in os.environ:
        init_from_env()
        fn(*args)
        return
    if torch.cuda.is_available() and torch.cuda.device_count() < num_procs:
        raise ValueError(f"--gpus={num_procs} but only {torch.cuda.device_count()} CUDA devices are visible")
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.abspath(os.path.join(tmp, ".torch_distributed_init"))
        torch.multiprocessing.spawn(_spawn_entry, args=(num_procs, init_file, fn, args), nprocs=num_procs)


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
