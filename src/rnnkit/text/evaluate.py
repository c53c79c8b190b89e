"""Static evaluation of a character LM: loss, bits per character and accuracy on any ids or text.

    from rnnkit import EvalConfig, evaluate_text, load_model
    m = load_model("runs/mine")
    print(evaluate_text(m.model, m.vocab, "held_out.txt", EvalConfig()).bpc)

The fairest measure reads the text as one stream with the hidden state carried from chunk to
chunk (`streams=1`); periodic evaluation during training reads several streams at once (faster,
a few more cold starts). `cold_loss` restarts from a zero state every `window` characters, the
measure of models that see no context beyond a window.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..core import distributed
from ..core.config import EvalConfig, UsageError, param, setting, shown
from ..core.fileio import bits, warn
from ..core.vocab import Vocab
from ..core.windows import to_long
from .corpus import Source, check_file, load_ids, read_chunks


@dataclass
class EvalResult:
    """Mean next-symbol loss (nats), bits per symbol, accuracy, and the number of symbols predicted.
    `unit` says what a symbol is: "chars", or "bytes" for a byte-level model."""

    loss: float
    bpc: float
    accuracy: float
    chars: int
    unit: str = "chars"
    cold_loss: Optional[float] = None
    cold_bpc: Optional[float] = None
    skipped: int = 0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        if not self.skipped:
            d.pop("skipped")
        return d | self.extra


@torch.inference_mode()
def loss_sums(model: nn.Module, ids: np.ndarray, streams: int = 1, chunk: int = 512,
              device: torch.device | str = "cpu", rows: Optional[slice] = None) -> tuple[float, int, int]:
    """Sum of next-symbol losses (nats), count and correct guesses over `ids`, read as `streams`
    parallel streams with the hidden state carried from chunk to chunk. Sums, so that ranks (and
    pieces) add up; `rows` restricts to some streams (a rank's share)."""
    model.eval()
    length = (len(ids) - 1) // streams
    if length < 1:
        return 0.0, 0, 0
    x_all = ids[: streams * length].reshape(streams, length)        # (S, L)
    y_all = ids[1: streams * length + 1].reshape(streams, length)
    if rows is not None:
        x_all, y_all = x_all[rows], y_all[rows]
    if len(x_all) == 0:
        return 0.0, 0, 0
    total, correct, state = 0.0, 0, None
    for j in range(0, length, chunk):
        x, y = to_long(x_all[:, j: j + chunk], device), to_long(y_all[:, j: j + chunk], device)
        logits, state = model(x, state)
        logits = logits.float()
        total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                             reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
    return total, y_all.size, correct


def evaluate_ids(model: nn.Module, ids: np.ndarray, streams: int = 1, chunk: int = 512,
                 device: torch.device | str = "cpu", unit: str = "chars") -> EvalResult:
    """Mean loss, bits per symbol and accuracy over `ids` (at least 2 of them)."""
    total, count, correct = loss_sums(model, ids, streams, chunk, device)
    if count == 0:
        raise UsageError(f"{len(ids)} symbol(s) are too few to evaluate: need at least 2 per stream")
    return EvalResult(total / count, bits(total / count), correct / count, count, unit)


@torch.inference_mode()
def cold_loss(model: nn.Module, ids: np.ndarray, window: int = 100, device="cpu", batch: int = 256) -> float:
    """Mean loss when every `window` characters start from a zero state (no carried context)."""
    model.eval()
    n = (len(ids) - 1) // window
    x_all = ids[: n * window].reshape(n, window)                     # (N, W)
    y_all = ids[1: n * window + 1].reshape(n, window)
    total = 0.0
    for i in range(0, n, batch):
        logits, _ = model(to_long(x_all[i: i + batch], device))
        y = to_long(y_all[i: i + batch], device)
        total += nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                             reduction="sum").item()
    return total / max(1, n * window)


def distributed_loss(model: nn.Module, ids: np.ndarray, d: distributed.Dist, streams: int,
                     chunk: int = 512) -> float:
    """Validation loss (nats/symbol) with the streams shared out across ranks, summed back: the
    single-process value whatever the number of processes."""
    share = np.array_split(np.arange(streams), d.world)[d.rank]
    rows = slice(int(share[0]), int(share[-1]) + 1) if len(share) else slice(0, 0)
    total, count, _ = loss_sums(model, ids, streams, chunk, d.device, rows)
    t = distributed.all_reduce_sum(d, torch.tensor([total, float(count)], dtype=torch.float64))
    return (t[0] / t[1]).item() if t[1] > 0 else float("nan")


def encode_skipping(path: Path, name: str, vocab: Vocab, encoding: str) -> tuple[np.ndarray, int]:
    """The file's ids with symbols outside the vocabulary left out, and how many were."""
    parts, skipped = [], 0
    for chunk in read_chunks(Source(path, name), encoding):
        ids = vocab.encode(chunk, unknown="skip")
        skipped += len(chunk) - len(ids)
        parts.append(np.asarray(ids, dtype=vocab.dtype))
    return (np.concatenate(parts) if parts else np.zeros(0, vocab.dtype)), skipped


def text_ids(vocab: Vocab, file: str, unknown: str, cache: Path) -> tuple[np.ndarray, int]:
    """A text file as ids of `vocab` (read as the model was trained: UTF-8 or bytes)."""
    encoding = "bytes" if vocab.kind == "bytes" else "utf-8"
    path = check_file(file)
    if unknown == "skip":
        return encode_skipping(path, file, vocab, encoding)
    chunks = read_chunks(Source(path, file), encoding)
    missing = list(dict.fromkeys(c for chunk in chunks for c in vocab.unknown(chunk)))
    if missing:
        raise UsageError(f"{shown(file)}: {len(missing)} character(s) the checkpoint's vocabulary lacks: "
                         f"{', '.join(map(repr, sorted(missing)[:20]))}; "
                         f"pass {setting('unknown', 'skip')} to leave them out")
    ids, _ = load_ids([Source(path, file)], encoding, cache, vocab)
    return ids, 0


def dynamic_result(model, ids, cfg: EvalConfig, device, run, vocab: Vocab, unit: str) -> EvalResult:
    from .dynamic import run_dynamic
    run_dir, meta = (run.path.parent, run.meta) if run is not None else (None, {})
    total, count, correct, extra = run_dynamic(model, ids, cfg, device, run_dir or ".", meta, vocab)
    return EvalResult(total / count, bits(total / count), correct / count, count, unit, extra=extra)


def evaluate_text(model: nn.Module, vocab: Vocab, file: str, cfg: Optional[EvalConfig] = None,
                  device: torch.device | str = "cpu", run=None) -> EvalResult:
    """Loss on the whole of `file` as one stream (and from cold starts every `cfg.cold` symbols),
    or with `cfg.dynamic` under dynamic evaluation; `run` (the Loaded record) lets dynamic
    evaluation take its gradient statistics from the run's own training text."""
    cfg = (cfg or EvalConfig()).validate()
    if cfg.dynamic and cfg.cold:
        raise UsageError(f"{param('cold')} is a static measure; run it without {param('dynamic')} "
                         "(static and dynamic figures are never mixed)")
    unit = "bytes" if vocab.kind == "bytes" else "chars"
    word = "bytes" if unit == "bytes" else "characters"
    with tempfile.TemporaryDirectory() as tmp:
        ids, skipped = text_ids(vocab, file, cfg.unknown, Path(tmp))
        if skipped:
            warn(f"{shown(file)}: {skipped:,} {word} outside the vocabulary were left out")
        if len(ids) < 2:
            raise UsageError(f"{shown(file)}: needs at least 2 {word} to evaluate")
        if cfg.cold > len(ids) - 1:
            raise UsageError(f"{param('cold')} {cfg.cold} is longer than {shown(file)} ({len(ids) - 1} {word} "
                             "to predict); use a smaller N")
        if cfg.dynamic:
            res = dynamic_result(model, ids, cfg, device, run, vocab, unit)
        else:
            res = evaluate_ids(model, ids, streams=1, chunk=cfg.chunk, device=device, unit=unit)
        res.skipped = skipped
        if cfg.cold:
            res.cold_loss = cold_loss(model, ids, cfg.cold, device)
            res.cold_bpc = bits(res.cold_loss)
    return res
