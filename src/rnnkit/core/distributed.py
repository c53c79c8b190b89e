"""Running under torchrun: process group from the environment, rank-0 IO, reductions.

    torchrun --nproc-per-node 2 -m rnnkit train FILE --out RUN      # one machine, 2 processes
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \
             --rdzv-endpoint HOST:29500 -m rnnkit train FILE --out RUN   # on each of 2 machines

Under torchrun (even with one process) rnnkit joins a process group: gloo on CPUs, nccl on GPUs.
On several machines the run directory must be on a filesystem they share: rank 0 writes the
checkpoints and every rank resumes from them.
Without torchrun's variables everything here is a no-op for a world of one process.

A collective waits at most RNNKIT_DIST_TIMEOUT seconds (default 600) for the other ranks; a rank
that dies closes its connections, so the others fail at their next collective at once, and
torchrun stops the rest.
"""
from __future__ import annotations

import datetime
import os
import re
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .config import RnnkitError, UsageError

DEFAULT_TIMEOUT_S = 600.0


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    joined: bool = False               # in a process group (torchrun), even with world == 1
    backend: str = ""                  # "gloo" or "nccl" once joined
    group: object = None               # the process group, held until teardown (see there)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Collectives and DDP are in use."""
        return self.joined


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
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)  # one GPU per process under torchrun
    return device


def timeout_s() -> float:
    raw = os.environ.get("RNNKIT_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"RNNKIT_DIST_TIMEOUT must be a number of seconds > 0 (got {raw!r})")
    return value


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str = "auto") -> Dist:
    """Join torchrun's process group if there is one: gloo on CPUs, nccl on GPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local)
    if not under_torchrun():
        return Dist(rank, world, local, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, rank=rank, world_size=world,
                                    timeout=datetime.timedelta(seconds=timeout_s()))
        except (ValueError, RuntimeError) as e:  # no MASTER_ADDR, peers that never came, a bad port
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise RnnkitError(f"rank {rank} of {world}: could not join the {backend} process group ({first}); "
                              "start rnnkit with torchrun, and check --rdzv-endpoint and the network")
    return Dist(rank, world, local, device, joined=True, backend=dist.get_backend(), group=dist.group.WORLD)


def teardown(d: Dist, tb=None) -> None:
    """Leave the process group. With `tb` (an exception's traceback in flight), the locals of its
    frames (the DDP module, tensors of the last collective) are freed first.

    Why the order matters: gloo's worker threads take the GIL to release a finished operation's
    tensors, and a process group destroyed from DDP's reducer holds the GIL while it waits for
    those threads: a deadlock when a run stops on an error. Here the reducer is freed while
    `d.group` still holds the group, and the group goes last, from its own handle, after a pause
    that lets the workers finish."""
    if tb is not None:
        traceback.clear_frames(tb)
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
    if d.group is not None:
        time.sleep(0.05)  # releases the GIL
        d.group = None


def lost_peer(d: Dist, e: Exception) -> RnnkitError:
    """The one-line error for a collective that failed: another rank died or hung."""
    first = re.sub(r"^\[[^\]]*\] ", "", (str(e).strip().splitlines() or [type(e).__name__])[0])[:160]
    return RnnkitError(f"rank {d.rank} of {d.world}: lost the other processes ({first}); another rank "
                       "failed or stopped (see its message); the last checkpoint is intact, continue with --resume")


# what gloo and nccl put in the plain RuntimeError they raise when a peer's connection breaks
# inside DDP's gradient all-reduce (during backward, outside `collective`)
TRANSPORT_ERROR = re.compile(r"gloo|nccl|connection (reset|closed|refused)|socket timeout|broken pipe", re.I)


def is_lost_peer(d: Dist, e: BaseException) -> bool:
    """A RuntimeError that means another rank is gone, not a bug (only with a process group)."""
    return d.active and isinstance(e, RuntimeError) and bool(TRANSPORT_ERROR.search(str(e)))


def _comm(d: Dist, t: torch.Tensor) -> torch.Tensor:
    # nccl moves only CUDA tensors; gloo takes CPU tensors
    return t.to(d.device) if d.device.type == "cuda" else t


@contextmanager
def collective(d: Dist):
    """A failed collective (gloo raises a plain RuntimeError) becomes the one-line lost_peer error."""
    try:
        yield
    except RuntimeError as e:
        raise lost_peer(d, e) from None


def barrier(d: Dist) -> None:
    if d.active:
        with collective(d):
            dist.barrier(device_ids=[d.device.index]) if d.device.type == "cuda" else dist.barrier()


def all_reduce_sum(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, returned on t's device (t itself may change)."""
    if not d.active:
        return t
    buf = _comm(d, t)
    with collective(d):
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def all_gather(d: Dist, t: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of an equally-shaped tensor, in rank order, on t's device."""
    if not d.active:
        return [t]
    buf = _comm(d, t.contiguous())
    out = [torch.empty_like(buf) for _ in range(d.world)]
    with collective(d):
        dist.all_gather(out, buf)
    return [o.to(t.device) for o in out]
