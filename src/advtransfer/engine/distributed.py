"""One large cell across several processes or GPUs: data-parallel training under ``torchrun`` (DDP).

``advtransfer run`` started by ``torchrun --nproc-per-node G`` (environment ``WORLD_SIZE`` > 1) joins the process
group here: NCCL with device ``cuda:LOCAL_RANK`` on GPUs, gloo on CPUs. Every rank walks the same grid; ``fit``
trains data-parallel (see :func:`advtransfer.engine.train.fit`), evaluation runs on every rank identically, and only
rank 0 writes checkpoints, cell files, ``results.csv``, figures and the report (the others wait at a barrier).

Without ``torchrun`` (or with one process) every helper below is a no-op, so single-process code pays nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
import torch.distributed as dist

from ..errors import ConfigError

T = TypeVar("T")


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer; start data-parallel runs "
                          "with torchrun --nproc-per-node N advtransfer ...") from None


def active() -> bool:
    """Inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` evaluated on rank 0 only and broadcast, so every rank takes the same decision (e.g. whether a cell
    is done: a file rank 0 is about to write must not be seen by one rank and missed by another)."""
    if not active():
        return fn()
    box = [fn() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks (float64), e.g. the epoch's loss sum, correct and seen counts."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def init_from_env(device_name: str = "auto") -> torch.device | None:
    """Join the process group that torchrun describes in the environment; None when not started by torchrun (or
    with one process). The device is ``cuda:LOCAL_RANK`` (NCCL) when CUDA is asked for or available with
    ``auto``, else the CPU (gloo)."""
    if env_world_size() <= 1 or active():
        return None
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: start "
                          "data-parallel runs with torchrun --nproc-per-node N advtransfer run ...")
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu or auto")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device_name: str) -> Iterator[torch.device | None]:
    """``init_from_env`` for the duration of a command; a process group it created is torn down however it ends."""
    device = init_from_env(device_name)
    try:
        yield device
    finally:
        if device is not None:
            shutdown()
