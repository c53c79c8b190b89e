"""Running under torchrun: process group from the environment, rank-0 IO, reductions.

    torchrun --nproc-per-node 2 -m rnnkit train FILE --out RUN      # one machine, 2 processes
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \
             --rdzv-endpoint HOST:29500 -m rnnkit train FILE --out RUN   # on each of 2 machines

Without torchrun's variables everything here is a no-op for a world of one process.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .config import UsageError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> this process's CUDA device when there is one, else the CPU."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N (got {name!r})")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N (got {name!r})")
    return device


def setup(device_name: str = "auto", timeout_s: float = 300.0) -> Dist:
    """Join torchrun's process group if there is one: gloo on CPUs, nccl on GPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return Dist(rank, world, local, device)


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def all_reduce_sum(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place, returned)."""
    if d.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather(d: Dist, t: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of an equally-shaped tensor, in rank order."""
    if not d.active:
        return [t]
    out = [torch.empty_like(t) for _ in range(d.world)]
    dist.all_gather(out, t.contiguous())
    return out
