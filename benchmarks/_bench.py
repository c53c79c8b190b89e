"""Shared by the benchmark scripts: the repo's source on the path, the benchmark model, and timing
of interleaved blocks (candidate and reference alternate, so a busy machine slows both alike)."""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = Path(os.environ.get("RNNKIT_BENCH_DATA", ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"))

import torch  # noqa: E402

from rnnkit.core.config import REGULARISERS_OFF, ModelConfig  # noqa: E402
from rnnkit.core.models import SequenceModel  # noqa: E402


def model_config(hidden: int, vocab_size: int = 65) -> ModelConfig:
    """The benchmark model: Embedding(65, 64) -> 2-layer LSTM -> Linear(65), plain: PyTorch's
    initialisation and none of the regularisers, whatever ModelConfig's defaults (the plain loops
    time exactly this; `with_regularisers` adds the CPU recipe's)."""
    return ModelConfig(vocab_size=vocab_size, cell="lstm", layers=2, hidden=hidden, embed=64, dropout=0.0,
                       init="torch", **REGULARISERS_OFF)


def with_regularisers(cfg: ModelConfig) -> ModelConfig:
    """cfg with ModelConfig's default weight drop and locked dropout (the CPU recipe's, 0.1 each)."""
    return dataclasses.replace(cfg, weight_drop=ModelConfig.weight_drop, locked_dropout=ModelConfig.locked_dropout)


def make_model(hidden: int, vocab_size: int = 65, seed: int = 0, regularised: bool = False) -> SequenceModel:
    torch.manual_seed(seed)
    cfg = model_config(hidden, vocab_size)
    return SequenceModel(with_regularisers(cfg) if regularised else cfg)


def machine() -> str:
    """One line naming what the figures were measured on: the CPU model (lscpu), its cores, what
    PyTorch says it computes natively in bf16, the thread count and torch's version."""
    import os
    import platform
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                 platform.processor() or "unknown CPU")
    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = False
    return (f"CPU: {model}, {os.cpu_count()} cores, oneDNN bf16 {'native' if bf16 else 'not native'}; "
            f"{torch.get_num_threads()} torch threads; torch {torch.__version__}")


def encode_text(text: str):
    """The reference loops' ids: each character's index among the text's sorted symbols (int32, so
    any vocabulary fits), and the number of symbols."""
    import numpy as np
    symbols = np.array(sorted({ord(c) for c in text}), dtype=np.uint32)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.searchsorted(symbols, codes).astype(np.int32), len(symbols)


def streams(ids, batch: int, seq: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The reference loops' batching: the text cut into `batch` parallel streams, read `seq` ids a
    step with the state carried (char-rnn). Returns inputs and targets (B, L) and steps per epoch."""
    import numpy as np
    length = (len(ids) - 1) // batch
    data = torch.from_numpy(np.asarray(ids).astype(np.int64))
    return data[: batch * length].view(batch, length), data[1: batch * length + 1].view(batch, length), length // seq


def need_data() -> Path:
    if not DATA.exists():
        sys.exit(f"benchmark data not found: {DATA} (put tinyshakespeare.txt there)")
    return DATA


def interleaved(runs: dict[str, Callable[[], float]], blocks: int, warmup: int = 1) -> dict[str, list[float]]:
    """Call each block function in turn, `warmup` + `blocks` rounds; each returns units/s.
    Returns the rates of the timed rounds per name."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(warmup + blocks):
        for name, block in runs.items():
            rate = block()
            if r >= warmup:
                rates[name].append(rate)
    return rates


def timed(fn: Callable[[], int]) -> float:
    """Units per second of one call of `fn` (which returns the units it processed)."""
    t = time.perf_counter()
    units = fn()
    return units / (time.perf_counter() - t)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def in_processes(script: str, argv: list[str], runs: int) -> list[dict]:
    """Run `script argv --json` in `runs` fresh processes, one after another; each prints its
    figures as one JSON line last. Returns those dicts."""
    out = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, script, *argv, "--json"], check=True, capture_output=True, text=True)
        out.append(json.loads(done.stdout.splitlines()[-1]))
    return out


def medians(runs: list[dict]) -> dict:
    """Per key, the median over runs."""
    return {k: median([r[k] for r in runs]) for k in runs[0]}
