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
