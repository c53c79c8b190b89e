"""Looking inside a trained character model: per-character activations, next-character
probabilities, and which hidden units track simple features of the text.

    from rnnkit import load_model
    from rnnkit.text.probe import activations, rank_units
    model, vocab, _ = load_model("runs/mine")
    acts = activations(model, vocab, 'He said "hello" (twice).\\n')
    acts.hidden.shape          # (layers, T, hidden): h_t of every layer after reading char t
    acts.cells                 # (layers, T, hidden) LSTM cell states c_t (None for GRU/RNN)
    acts.probs[t]              # (V,) p(next char | text[:t+1])
    rank_units(acts)[:5]       # units ranked by |correlation| with features (inside quotes, ...)

The recurrent stack is run one layer at a time with the fused kernels, so every layer's outputs
are kept (the fused multi-layer call returns only the top layer's). For an LSTM the cell states
are recomputed from those outputs in one batched matmul plus an elementwise scan; the test checks
that o_t * tanh(c_t) gives back the fused h_t and that the head on the top layer gives the
model's own logits. This is the per-character view of Karpathy, Johnson and Fei-Fei (2015),
"Visualizing and Understanding Recurrent Networks".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..core.config import UsageError
from ..core.models import CELLS, SequenceModel
from ..core.vocab import Vocab


@dataclass
class Activations:
    """What the model did on one text, position by position (t = 0 .. T-1)."""

    text: str
    ids: np.ndarray                 # (T,) the text's ids
    hidden: np.ndarray              # (L, T, H) output h_t of each layer after reading char t
    cells: Optional[np.ndarray]     # (L, T, H) LSTM cell state c_t; None for GRU and RNN
    probs: np.ndarray               # (T, V) next-character distribution after reading char t
    symbols: list[str]              # the vocabulary, index -> character

    def units(self) -> tuple[np.ndarray, list[str]]:
        """Every unit as one column: (T, N) values and names like "L1 h17" / "L2 c3" (1-based
        layers). Hidden outputs come first, then LSTM cell states."""
        blocks = [("h", self.hidden)] + ([("c", self.cells)] if self.cells is not None else [])
        cols, names = [], []
        for kind, arr in blocks:
            for layer in range(arr.shape[0]):
                cols.append(arr[layer])
                names += [f"L{layer + 1} {kind}{u}" for u in range(arr.shape[2])]
        return np.concatenate(cols, axis=1), names

    def actual_probs(self) -> np.ndarray:
        """(T,) probability the model gave each character before reading it (NaN at t = 0)."""
        p = np.full(len(self.ids), np.nan, dtype=np.float32)
        p[1:] = self.probs[np.arange(len(self.ids) - 1), self.ids[1:]]
        return p


def single_layer(rnn: nn.RNNBase, k: int) -> nn.RNNBase:
    """Layer k of a fused stack as its own one-layer module sharing the same weights."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    w_ih = getattr(rnn, f"weight_ih_l{k}")
    kw = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
    layer = type(rnn)(w_ih.shape[1], rnn.hidden_size, num_layers=1, bias=rnn.bias,
                      batch_first=True, **kw).to(device=w_ih.device, dtype=w_ih.dtype)
    layer.load_state_dict({f"{n}_l0": getattr(rnn, f"{n}_l{k}") for n in names if hasattr(rnn, f"{n}_l{k}")})
    return layer.eval()


def lstm_cells(layer: nn.LSTM, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell states of a one-layer LSTM from its inputs x (T, E) and its outputs h (T, H), zero
    initial state. Returns (c, h_again), both (T, H); h_again = o * tanh(c) checks the result.

    PyTorch's gate order in the fused weights is i, f, g, o (input, forget, cell, output):
        gates_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          (4H,)
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g),  h_t = sigmoid(o) * tanh(c_t)
    h_{t-1} is known for every t, so the gates come from one matmul; only c needs a scan.
    """
    h_prev = torch.cat([torch.zeros_like(h[:1]), h[:-1]])                       # (T, H)
    gates = x @ layer.weight_ih_l0.T + h_prev @ layer.weight_hh_l0.T             # (T, 4H)
    if layer.bias:
        gates = gates + layer.bias_ih_l0 + layer.bias_hh_l0
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
    c = torch.empty_like(h)
    prev = torch.zeros_like(h[0])
    for t in range(len(h)):
        prev = f[t] * prev + i[t] * g[t]
        c[t] = prev
    return c, o * c.tanh()


@torch.inference_mode()
def activations(model: SequenceModel, vocab: Vocab, text: str, unknown: str = "error") -> Activations:
    """Run `model` over `text` from a zero state and keep every layer's activations and the
    next-character probabilities. unknown="skip" drops characters outside the vocabulary."""
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, tuple(CELLS.values())):
        raise UsageError(f"{type(model).__name__} has no recurrent layers to look inside")
    ids_list = vocab.encode(text, unknown=unknown)
    if not ids_list:
        raise UsageError("the text holds no character of the model's vocabulary; pass another text")
    text = "".join(vocab.symbols[i] for i in ids_list)  # one symbol per position, as features() reads it
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor(ids_list, device=device)
    x = model.inputs(ids[None])                                                  # (1, T, E)
    hidden, cells = [], []
    for k in range(rnn.num_layers):
        layer = single_layer(rnn, k)
        out, _ = layer(x)                                                        # (1, T, H)
        if isinstance(layer, nn.LSTM):
            cells.append(lstm_cells(layer, x[0], out[0])[0])
        hidden.append(out[0])
        x = out  # eval mode: the dropout between layers is the identity
    logits = model.head(x[0]).float()                                            # (T, V)
    as_np = lambda ts: torch.stack(ts).float().cpu().numpy()
    return Activations(text=text, ids=np.array(ids_list), hidden=as_np(hidden),
                       cells=as_np(cells) if cells else None,
                       probs=torch.softmax(logits, -1).cpu().numpy(), symbols=list(vocab.symbols))


# ---- features of the text, one value per position (the state after reading char t) ----

OPEN, CLOSE = "([{", ")]}"


def features(text: str) -> dict[str, np.ndarray]:
    """Simple properties of each position t, as seen after reading text[t]:
    inside quotes ("..."; the opening quote counts as inside, the closing one as outside),
    inside brackets ((), [], {} nesting depth > 0), position in line (characters since the last
    newline), just after a newline, uppercase letter, space, position in word."""
    n = len(text)
    quote, bracket, col, word = (np.zeros(n, np.float32) for _ in range(4))
    inside, depth, c, w = False, 0, 0, 0
    for t, ch in enumerate(text):
        if ch == '"':
            inside = not inside
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth = max(0, depth - 1)
        c = 0 if ch == "\n" else c + 1
        w = w + 1 if ch.isalpha() else 0
        quote[t], bracket[t], col[t], word[t] = inside, depth > 0, c, w
    chars = np.array(list(text))
    return {
        "inside quotes": quote,
        "inside brackets": bracket,
        "position in line": col,
        "after newline": (chars == "\n").astype(np.float32),
        "uppercase": np.char.isupper(chars).astype(np.float32),
        "space": (chars == " ").astype(np.float32),
        "position in word": word,
    }


def correlations(units: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Pearson correlation of each feature with each unit: units (T, N), feats (T, F) -> (F, N).
    A constant column (a unit that never moves, a feature absent from the text) gives 0."""
    def standardize(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        a = a - a.mean(0)
        sd = a.std(0)
        return np.divide(a, sd, out=np.zeros_like(a), where=sd > 1e-8)
    return standardize(feats).T @ standardize(units) / len(units)


@dataclass
class UnitScore:
    """One unit's strongest link to one feature."""

    feature: str
    unit: str      # "L2 h17"
    column: int    # index into Activations.units()
    r: float       # Pearson correlation


def rank_units(acts: Activations, per_feature: Optional[int] = None) -> list[UnitScore]:
    """(feature, unit) pairs ranked by |correlation|, strongest first; with `per_feature`, only that
    many units for each feature. Features constant over the text are left out."""
    values, names = acts.units()
    feats = features(acts.text)
    keep = [k for k, v in feats.items() if v.std() > 0]
    if not keep:
        return []
    r = correlations(values, np.stack([feats[k] for k in keep], axis=1))       # (F, N)
    scores = []
    for fi, name in enumerate(keep):
        order = np.argsort(-np.abs(r[fi]), kind="stable")[:per_feature]
        scores += [UnitScore(name, names[j], int(j), float(r[fi, j])) for j in order]
    return sorted(scores, key=lambda s: -abs(s.r))
