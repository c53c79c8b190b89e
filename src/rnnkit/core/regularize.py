"""AWD-LSTM regularisation (Merity et al. 2018) that keeps the fused recurrent kernels.

- weight drop: DropConnect on the hidden-to-hidden matrices, one mask per batch (per forward
  call), applied to the weights before the fused call. The module's parameters are never replaced
  or re-registered: the dropped copies are passed to the same kernel nn.LSTM/GRU/RNN call
  (`torch._VF.lstm` ...), so checkpoints keep the names `rnn.weight_hh_l0` ... and old ones load.
- embedding dropout: whole characters dropped, one mask over the vocabulary per batch (every
  occurrence of a dropped character in the batch gets a zero input vector).
- locked (variational) dropout: one mask per sequence, shared by all its time steps, between the
  layers and before the head. Between layers it needs one fused call per layer (still no
  per-step Python loop).

Only training uses these; in eval mode the model takes its plain fused path.

Where the masks come from. Outside a trainer every mask is drawn from PyTorch's global generator.
The trainer draws them through `drawn_from(MaskDraw(...))`: one generator seeded by (seed, step),
the same on every rank, and every mask that depends on the batch is drawn at the global batch's
shape and sliced to this rank's rows. So under DDP the global batch sees one weight-drop and one
embedding mask, each global stream one locked-dropout mask, whatever the number of processes:
N processes train the same numbers as one. (The stacked fused call's own dropout between layers,
used when locked dropout is off, is drawn inside the kernel and cannot follow this rule.)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import _VF, nn

# the kernel each fused module calls (what nn.LSTM / nn.GRU / nn.RNN(tanh) call in forward)
KERNELS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


@dataclass
class MaskDraw:
    """The training masks of one step: `gen` seeded with `seed` alike on every rank (at the first
    draw, so a step that draws no mask costs nothing), `rows` this rank's rows of a global batch of
    `batch` rows."""

    gen: torch.Generator
    seed: int
    rows: slice
    batch: int
    seeded: bool = False

    def generator(self) -> torch.Generator:
        if not self.seeded:
            self.gen.manual_seed(self.seed)
            self.seeded = True
        return self.gen


_draw: Optional[MaskDraw] = None


@contextmanager
def drawn_from(draw: Optional[MaskDraw]):
    """Draw the masks of the forward inside from `draw` (None: the global generator)."""
    global _draw
    before, _draw = _draw, draw
    try:
        yield
    finally:
        _draw = before


def keep_mask(shape: tuple, p: float, like: torch.Tensor, batched: bool = False) -> torch.Tensor:
    """Bernoulli(1 - p) mask scaled by 1 / (1 - p), so the expectation is unchanged. `batched`:
    dim 0 is the batch, so under a MaskDraw the global batch's mask is drawn and sliced."""
    if _draw is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1 - p) / (1 - p)
    full = (_draw.batch, *shape[1:]) if batched else shape
    mask = torch.empty(full, dtype=like.dtype, device=like.device)
    mask = mask.bernoulli_(1 - p, generator=_draw.generator()) / (1 - p)
    return mask[_draw.rows] if batched else mask


def plain_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Plain (per-element) dropout of a (B, ...) batch, drawn like the other masks."""
    if not training or p == 0:
        return x
    if _draw is None:
        return F.dropout(x, p, True)
    return x * keep_mask(tuple(x.shape), p, x, batched=True)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """x (B, T, H) with one mask (B, 1, H) per sequence, the same at every step."""
    if not training or p == 0:
        return x
    return x * keep_mask((x.shape[0], 1, x.shape[2]), p, x, batched=True)


def embed_dropout(x: torch.Tensor, ids: torch.Tensor, vocab_size: int, p: float, training: bool) -> torch.Tensor:
    """x (B, T, E) input vectors of ids (B, T): each character of the vocabulary is kept or dropped
    for the whole batch (mask (V,)); equal to dropping rows of the embedding matrix."""
    if not training or p == 0:
        return x
    mask = keep_mask((vocab_size,), p, x)
    return x * mask[ids].unsqueeze(-1)


def layer_weights(rnn: nn.RNNBase, layer: int) -> list[torch.Tensor]:
    """The flat weights of one layer, in the kernel's order (w_ih, w_hh[, b_ih, b_hh])."""
    names = rnn._flat_weights_names          # weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...
    per = len(names) // rnn.num_layers
    return [getattr(rnn, n) for n in names[layer * per: (layer + 1) * per]]


def dropped_weights(rnn: nn.RNNBase, layer: int, p: float) -> list[torch.Tensor]:
    """layer_weights with DropConnect on w_hh (index 1): one fresh mask per call."""
    w = layer_weights(rnn, layer)
    if p > 0:
        w[1] = F.dropout(w[1], p, training=True) if _draw is None else w[1] * keep_mask(tuple(w[1].shape), p, w[1])
    return w


def split_state(state, layer: int):
    """The (1, B, H) state of one layer from a (L, B, H) state (a tuple for the LSTM)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s[layer: layer + 1] for s in state)
    return state[layer: layer + 1]


def fused(rnn: nn.RNNBase, x: torch.Tensor, state, weights: list[torch.Tensor], layers: int,
          dropout: float, training: bool):
    """One fused kernel call over all T steps: x (B, T, I) -> out (B, T, H), state (layers, B, H)."""
    b, h = x.shape[0], rnn.hidden_size
    if state is None:
        zeros = torch.zeros(layers, b, h, dtype=x.dtype, device=x.device)
        state = (zeros, zeros.clone()) if rnn.mode == "LSTM" else zeros
    kernel = KERNELS[rnn.mode]
    if rnn.mode == "LSTM":
        out, hn, cn = kernel(x, state, weights, rnn.bias, layers, dropout, training, False, True)
        return out, (hn, cn)
    out, hn = kernel(x, state, weights, rnn.bias, layers, dropout, training, False, True)
    return out, hn


def regularized_rnn(rnn: nn.RNNBase, x: torch.Tensor, state, weight_drop: float, locked: float,
                    dropout: float, training: bool):
    """The recurrent stack with weight drop and locked dropout between layers.

    Without locked dropout (and, under a MaskDraw, without dropout) the whole stack is one fused
    call on the dropped weights (dropout between layers as nn.LSTM applies it); else one fused call
    per layer, with dropout and a (B, 1, H) mask on each layer's output but the last."""
    n = rnn.num_layers
    if n == 1 or (locked == 0 and (dropout == 0 or _draw is None)):
        weights = [w for layer in range(n) for w in dropped_weights(rnn, layer, weight_drop)]
        return fused(rnn, x, state, weights, n, dropout if n > 1 else 0.0, training)
    finals = []
    for layer in range(n):
        x, last = fused(rnn, x, split_state(state, layer), dropped_weights(rnn, layer, weight_drop), 1, 0.0, training)
        finals.append(last)
        if layer < n - 1:
            x = locked_dropout(plain_dropout(x, dropout, training), locked, training)
    if isinstance(finals[0], tuple):
        return x, tuple(torch.cat(parts) for parts in zip(*finals))
    return x, torch.cat(finals)


def any_on(config) -> bool:
    """Whether the model config asks for any of these regularisers."""
    return bool(getattr(config, "weight_drop", 0) or getattr(config, "locked_dropout", 0)
                or getattr(config, "embed_dropout", 0))


def check_packed(config, lengths: Optional[torch.Tensor], training: bool) -> None:
    if lengths is not None and training and (config.weight_drop or config.locked_dropout):
        from .config import UsageError
        raise UsageError("weight_drop and locked_dropout do not support padded batches (lengths); "
                         "set them to 0 for this model")


def param_groups(model: nn.Module, weight_decay: float):
    """AdamW's parameter groups: decoupled weight decay on the weight matrices (embedding, recurrent,
    head), none on biases. At 0 one plain group, as before (old checkpoints' optimizer state fits)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not weight_decay:
        return params
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
