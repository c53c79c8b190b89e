"""Which arithmetic the training forward runs in: `--precision auto|fp32|bf16`.

bf16 means `torch.autocast(device, torch.bfloat16)` around the forward only: weights, optimizer
state, gradients and the loss stay fp32. `auto` picks bf16 where the hardware runs it natively
and it pays: CUDA, and CPUs whose oneDNN has AMX tiles. On CPUs with AVX512-BF16 but no AMX
(measured on an AMD EPYC, see benchmarks/precision_speed.py and the README) bf16 autocast made
nn.LSTM training slower than fp32 at hidden 256-512, so `auto` stays fp32 there; elsewhere bf16
would be emulated and slower still.
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


def amx() -> bool:
    """The CPU has AMX tiles (the matrix unit that makes bf16 matmuls faster than fp32)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_pays() -> bool:
    """bf16 autocast is expected to train faster than fp32 on this CPU: native bf16 with AMX."""
    return native_bf16() and amx()


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
