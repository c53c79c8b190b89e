"""Unfolding id sequences into (input, target) windows, and batching them.

Targets are inputs shifted by one: "hihell" -> "ihello". Windows are views of the id array
wherever the layout allows; a batch copies only its own B x T ids.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .config import UsageError, param

PAD = -100  # target id ignored by cross-entropy (torch's default ignore_index)
DEVICE_COPY_BYTES = 2 << 30   # StreamBatches keeps a shard's int64 inputs and targets on a GPU up to this


def shift_pairs(ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One sequence -> (input, target) = (ids[:-1], ids[1:]), both views."""
    ids = np.asarray(ids)
    if len(ids) < 2:
        raise UsageError(f"a sequence needs at least 2 symbols to predict the next one (got {len(ids)})")
    return ids[:-1], ids[1:]


def sliding_windows(ids: Sequence[int] | np.ndarray, seq_len: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """All windows of `seq_len` inputs and their shifted targets, every `stride` symbols.

    ids:     i f _ y o u _ w ...
    x[0]:    i f _ y o u _ w a n      (seq_len = 10)
    y[0]:      f _ y o u _ w a n t
    x[1]:      f _ y o u _ w a n t    (stride = 1)
    Returns two (n, seq_len) strided views (no copy).
    """
    ids = np.asarray(ids)
    if seq_len < 1 or stride < 1:
        raise UsageError(f"seq_len and stride must be >= 1 (got {seq_len}, {stride})")
    if len(ids) < seq_len + 1:
        raise UsageError(f"the sequence has {len(ids)} symbols, fewer than one window of "
                         f"{seq_len} + 1; use a shorter {param('seq_len')} or more text")
    x, y = shift_pairs(ids)
    xs = np.lib.stride_tricks.sliding_window_view(x, seq_len)[::stride]
    ys = np.lib.stride_tricks.sliding_window_view(y, seq_len)[::stride]
    return xs, ys


def to_long(a: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.int64)).to(device, non_blocking=True)


def pad_sequences(seqs: Sequence[Sequence[int]], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of different lengths -> (B, T_max) padded ids and (B,) lengths."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max())), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out, lengths


class StreamBatches:
    """The char-rnn batching for truncated back-propagation through time.

    The corpus is cut into `batch` parallel streams; step j takes the j-th window of every stream,
    so window j+1 of a row continues window j of the same row and the hidden state carries over:

        ids:  [ s0 .......... | s1 .......... | s2 .......... ]   (batch = 3 streams of L ids)
        step 0: s0[0:T]  s1[0:T]  s2[0:T]
        step 1: s0[T:2T] s1[T:2T] s2[T:2T]   <- state from step 0 carried, detached

    Under DDP, rank r of W takes rows [r*B/W, (r+1)*B/W): disjoint shards of the same global batch.
    """

    carries_state = True

    def __init__(self, ids: np.ndarray, batch: int, seq_len: int, rank: int = 0, world: int = 1):
        n = len(ids)
        length = (n - 1) // batch
        if length < seq_len:
            raise UsageError(f"the training text ({n} symbols) is too short for {param('batch')} {batch} "
                             f"streams of {param('seq_len')} {seq_len}; lower them or use more text")
        if batch % world:
            raise UsageError(f"{param('batch')} {batch} must be divisible by the number of processes ({world})")
        rows = slice(rank * batch // world, (rank + 1) * batch // world)
        self.x = ids[: batch * length].reshape(batch, length)[rows]       # (B/W, L) views
        self.y = ids[1: batch * length + 1].reshape(batch, length)[rows]
        self.seq_len = seq_len
        self.steps_per_epoch = length // seq_len
        self.rows, self.batch = rows, batch
        self.on_device: dict = {}     # device -> (x, y) int64 copies (a GPU reads its windows in place)

    def starts_epoch(self, step: int) -> bool:
        """True when `step` begins the streams again, so carried state must be reset."""
        return step % self.steps_per_epoch == 0

    def get(self, step: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        j = (step % self.steps_per_epoch) * self.seq_len
        device = torch.device(device)
        if device.type == "cuda" and 16 * self.x.size <= DEVICE_COPY_BYTES:
            # the shard goes to the GPU once: a step then slices it there, with no host copy or wait
            if device not in self.on_device:
                self.on_device[device] = (to_long(self.x, device), to_long(self.y, device))
            x, y = self.on_device[device]
            return x[:, j: j + self.seq_len], y[:, j: j + self.seq_len]
        return to_long(self.x[:, j: j + self.seq_len], device), to_long(self.y[:, j: j + self.seq_len], device)


class RandomWindows:
    """Independent windows at random offsets. Offsets for step k come from a generator seeded by
    (seed, k), so any step can be reproduced (and resumed) without saved RNG state; every rank draws
    the same global batch and keeps its own slice."""

    carries_state = False

    def __init__(self, ids: np.ndarray, batch: int, seq_len: int, seed: int, rank: int = 0, world: int = 1):
        if len(ids) < seq_len + 1:
            raise UsageError(f"the training text ({len(ids)} symbols) is shorter than one window of "
                             f"{param('seq_len')} {seq_len} + 1; lower it or use more text")
        if batch % world:
            raise UsageError(f"{param('batch')} {batch} must be divisible by the number of processes ({world})")
        self.ids, self.batch, self.seq_len, self.seed = ids, batch, seq_len, seed   # batch: the global one
        self.rows = slice(rank * batch // world, (rank + 1) * batch // world)
        self.offsets = np.arange(seq_len + 1)

    def starts_epoch(self, step: int) -> bool:
        return True

    def get(self, step: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.ids) - self.seq_len, size=self.batch)[self.rows]
        w = self.ids[starts[:, None] + self.offsets]                       # (B/W, T+1)
        return to_long(w[:, :-1], device), to_long(w[:, 1:], device)


def eval_streams(ids: np.ndarray, streams: int) -> np.ndarray:
    """Validation ids cut into `streams` equal rows (the tail that does not fit is dropped)."""
    length = (len(ids) - 1) // streams
    if length < 1:
        raise UsageError(f"the validation text ({len(ids)} symbols) is too short; raise {param('val_fraction')}")
    return ids[: streams * length + 1], length


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) for training, the last part for validation (views)."""
    n_val = int(len(ids) * val_fraction)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]
