"""Decoding: how the next character is chosen, when a sample ends, and beam search.

`Picker` draws ids from logits (temperature, top-k, top-p); `Stopper` ends a sample at a stop
string or after N lines; `beam_search` keeps the N most probable continuations. The steppers
(step.py) supply the logits.
"""
from __future__ import annotations

import codecs
import copy
from typing import Callable

import torch

from ..core.config import SampleConfig


class Picker:
    """Draws the next ids from (N, V) logits. Sampling is Gumbel-max: argmax(logits + T*g) with
    g = -log(-log(u)) is a draw from softmax(logits / T). The noise for `chunk` steps is drawn at
    once from the seeded generator, so a seed fixes the text and a step costs a few small ops.

    top-k keeps the K largest logits; top-p (nucleus) then keeps the smallest set of the most
    likely characters whose probabilities (at temperature T) sum to at least P, by setting the
    others to -inf before the argmax."""

    def __init__(self, cfg: SampleConfig, n: int, vocab_size: int, gen: torch.Generator, device, chunk: int):
        self.greedy = cfg.greedy or cfg.temperature == 0
        self.t, self.gen, self.device, self.chunk = cfg.temperature, gen, device, chunk
        self.k = cfg.top_k if cfg.top_k is not None and cfg.top_k < vocab_size else None
        self.p = cfg.top_p if cfg.top_p is not None and cfg.top_p < 1.0 else None
        self.shape = (chunk, n, self.k or vocab_size)
        self.noise = None
        self.scratch = torch.empty(n, self.shape[2], device=device)
        self.at = torch.empty(n, 1, dtype=torch.long, device=device)

    def __call__(self, logits: torch.Tensor, step: int, out: torch.Tensor) -> torch.Tensor:
        """Writes the drawn ids (N,) of sampling step `step` into `out`."""
        if not self.greedy and step % self.chunk == 0:
            self.noise = self.draw()
        return self.choose(logits, None if self.greedy else self.noise[step % self.chunk], out)

    def draw(self) -> torch.Tensor:
        """The noise of the next `chunk` steps, (chunk, N, K or V): T * Gumbel(0, 1)."""
        u = torch.rand(self.shape, generator=self.gen, device=self.device)
        return u.log_().neg_().log_().neg_().mul_(self.t)

    def choose(self, logits: torch.Tensor, g: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
        """Writes the ids (N,) drawn from `logits` with one step's noise `g` (None: greedy) into
        `out`. No host syncs, so a CUDA graph can capture it (graphs.py)."""
        if self.greedy:
            return torch.argmax(logits, 1, out=out)
        if self.k is None and self.p is None:
            return torch.argmax(torch.add(logits.float(), g, out=self.scratch), 1, out=out)
        if self.k is not None:
            vals, idx = torch.topk(logits.float(), self.k, dim=1)               # (N, K), sorted
        else:
            vals, idx = torch.sort(logits.float(), dim=1, descending=True)      # (N, V)
        if self.p is not None:
            probs = torch.softmax(vals / self.t, 1)
            before = probs.cumsum(1).sub_(probs)                               # mass of the likelier ones
            vals = vals.masked_fill(before >= self.p, float("-inf"))           # the first always stays
        torch.argmax(vals.add_(g), 1, keepdim=True, out=self.at)
        return torch.gather(idx, 1, self.at, out=out[:, None])[:, 0]


class Stopper:
    """Ends one sample: after the first occurrence of a stop string (which is kept), or once
    `max_lines` newlines have been generated (the last newline is kept). `cut(piece)` returns the
    part of a new piece that is printed; `done` says whether the sample has ended."""

    def __init__(self, stops: list[str], max_lines: int | None):
        self.stops = [s for s in stops if s]
        self.keep = max((len(s) for s in self.stops), default=1)    # tail long enough for any match
        self.lines_left = max_lines
        self.tail, self.done = "", False

    def cut(self, piece: str) -> str:
        if self.done:
            return ""
        for j, ch in enumerate(piece):   # character by character: the first ending wins
            self.tail = (self.tail + ch)[-self.keep:]
            if ch == "\n" and self.lines_left is not None:
                self.lines_left -= 1
                self.done = self.lines_left <= 0
            if self.done or any(self.tail.endswith(s) for s in self.stops):
                self.done = True
                return piece[:j + 1]
        return piece


class BeamEnds:
    """Which beam rows have ended (a stop string, the line limit), advanced one id per step: each
    row carries its own `Stopper` and, for a byte vocabulary, the UTF-8 bytes of a character not yet
    complete, so a step costs the same at any length (rescanning each beam's whole text was
    quadratic: issue 26). `(rows, ids) -> ended`: row j continues row rows[j] with ids[j]."""

    def __init__(self, stops: list[str], max_lines: int | None, symbols: list[str], kind: str, rows: int):
        self.symbols, self.bytes = symbols, kind == "bytes"
        self.rows = [(Stopper(stops, max_lines), b"")] * rows

    def _piece(self, pending: bytes, i: int) -> tuple[str, bytes]:
        if not self.bytes:
            return self.symbols[i], b""
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        dec.setstate((pending, 0))
        piece = dec.decode(self.symbols[i].encode("latin-1"))
        return piece, dec.getstate()[0]

    def __call__(self, rows: list[int], ids: list[int]) -> list[bool]:
        new = []
        for r, i in zip(rows, ids):
            stopper, pending = self.rows[r]
            piece, pending = self._piece(pending, i)
            stopper = copy.copy(stopper)
            stopper.cut(piece)
            new.append((stopper, pending))
        self.rows = new
        return [s.done for s, _ in new]


def backtrack(back: list[tuple[list[int], list[int]]], t: int, j: int) -> list[int]:
    """The ids of row j after step t, read back through each step's (parent rows, ids)."""
    out = []
    for rows, ids in reversed(back[:t + 1]):
        out.append(ids[j])
        j = rows[j]
    return out[::-1]


def beam_search(step: Callable[[torch.Tensor], torch.Tensor], reorder: Callable[[torch.Tensor], None],
                first: torch.Tensor, beam: int, length: int, num: int,
                finished: Callable[[list[int], list[int]], list[bool]] | None = None
                ) -> list[tuple[list[int], float]]:
    """The `num` most probable continuations of `length` ids, by beam search over `beam` rows.

    `first` (V,) are the logits after the prompt; `step(ids (B,)) -> (B, V)` moves every row on by
    one id; `reorder(rows (B,))` makes row j continue from row rows[j]. `finished(rows, ids)` (a
    `BeamEnds`) says which rows have ended (a stop string, the line limit); they leave the beam.
    Scores are length-normalised: the mean log-probability per character, so ended and full-length
    continuations compare fairly. Each step keeps only back-pointers (parent row, id), so a step
    costs the same at any length. Returns (ids, mean log-prob) pairs, best first."""
    logp = torch.log_softmax(first.float(), -1).expand(beam, -1)        # (B, V)
    v = logp.shape[-1]
    scores = torch.full((beam,), float("-inf"))                          # (B,) sum of log-probs
    scores[0] = 0.0                                                      # one live row at the start
    back: list[tuple[list[int], list[int]]] = []                         # per step: parent rows, ids
    done: list[tuple[float, int, int]] = []                              # (mean log-prob, step, row)
    for t in range(length):
        cand = (scores[:, None] + logp).reshape(-1)                      # (B*V,)
        order = torch.argsort(cand, descending=True, stable=True)[:beam]  # ties broken by index
        rows, ids = order // v, order % v
        back.append((rows.tolist(), ids.tolist()))
        scores = cand[order]
        if finished is not None:
            for j, ended in enumerate(finished(*back[-1])):
                if ended and scores[j] > float("-inf"):
                    done.append((scores[j].item() / (t + 1), t, j))
                    scores[j] = float("-inf")                            # the row leaves the beam
        if t == length - 1 or not torch.isfinite(scores).any():
            break
        reorder(rows)
        logp = torch.log_softmax(step(ids).float(), -1)
    if length == 0:
        return [([], 0.0)]
    done += [(sc / length, len(back) - 1, j) for j, sc in enumerate(scores.tolist()) if sc > float("-inf")]
    done.sort(key=lambda d: -d[0])                                       # stable: earlier first on ties
    return [(backtrack(back, t, j), sc) for sc, t, j in done[:num]]
