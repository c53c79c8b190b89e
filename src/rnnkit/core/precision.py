"""Which arithmetic the training forward runs in: `--precision auto|fp32|bf16`.

bf16 means `torch.autocast(device, torch.bfloat16)` around the forward only: weights, optimizer
state, gradients and the loss stay fp32. `auto` picks bf16 where the hardware runs it natively:
CUDA, and CPUs whose oneDNN reports native bf16 (AVX512-BF16 or AMX), fp32 elsewhere, where
emulated bf16 would be slower. Measured on an AMD EPYC with AVX512-BF16 and no AMX
(benchmarks/precision_speed.py --threads 1 --cpu-time, nn.LSTM 2 layers, batch 64 x 100): bf16
trained 1.70x (hidden 256), 1.80x (384) and 1.66x (512) as many characters per CPU second as fp32.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), as PyTorch reports it."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_RUNS: dict = {}


def cpu_bf16_runs() -> bool:
    """Whether oneDNN here can run a bf16 LSTM at all (an AVX2-only CPU cannot: "could not create a
    primitive descriptor"), tried once on a tiny one."""
    if "cpu" not in _RUNS:
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                torch.nn.LSTM(4, 4, batch_first=True)(torch.zeros(1, 2, 4))
            _RUNS["cpu"] = True
        except RuntimeError:
            _RUNS["cpu"] = False
    return _RUNS["cpu"]


def check(precision: str, device: torch.device) -> None:
    """Refuse, in one line, --precision bf16 on a CPU that cannot run it."""
    if precision == "bf16" and torch.device(device).type == "cpu" and not cpu_bf16_runs():
        from .config import UsageError
        raise UsageError("--precision bf16: this CPU's oneDNN has no bf16 LSTM (it needs AVX-512 or AMX); "
                         "use --precision auto or fp32")


def cpu_bf16_pays() -> bool:
    """bf16 autocast is expected to train faster than fp32 on this CPU: oneDNN runs it natively."""
    return native_bf16()


def resolve(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' or 'fp32' for `device`; explicit choices are kept."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    if device.type == "cpu" and cpu_bf16_pays():
        return "bf16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    """The context the forward runs in for a resolved precision ('fp32' or 'bf16')."""
    if precision != "bf16" or device.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
