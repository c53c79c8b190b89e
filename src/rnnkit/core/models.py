"""Models: plain nn.Modules that work in anyone's training loop.

SequenceModel: ids (B, T) -> one-hot or embedding (B, T, E) -> fused RNN/LSTM/GRU stack
(B, T, H) -> per-step linear head (B, T, V) logits: the lecture's "TimeDistributed Dense softmax"
(the softmax itself lives in the loss). SoftmaxOnly drops the recurrence: each step sees only its
own input symbol.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.overrides import TorchFunctionMode

from . import config as _config
from . import regularize
from .config import ModelConfig, RnnkitError, UsageError

State = Optional[Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]
CELLS = dict(zip(_config.CELLS, (nn.RNN, nn.LSTM, nn.GRU)))  # name -> fused PyTorch module


def make_rnn(cell: str, input_size: int, hidden: int, layers: int, dropout: float = 0.0) -> nn.RNNBase:
    """The fused PyTorch recurrent stack, batch-first. Dropout applies between layers."""
    return CELLS[cell](input_size, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0)


def init_of(c: ModelConfig) -> str:
    """`init` auto -> scaled from 3 layers or above 512 units (where PyTorch's init starves the
    stack of its input, see scale_init), else torch (the recipe's 2x320 keeps its figures)."""
    if c.init != "auto":
        return c.init
    return "scaled" if c.layers >= 3 or c.hidden > 512 else "torch"


@torch.no_grad()
def scale_init(rnn: nn.RNNBase) -> None:
    """PyTorch draws every recurrent weight from U(+-1/sqrt(hidden)), also layer 0's input weights,
    whose fan-in is the embedding (64): the wider and deeper the stack, the less of the input
    reaches the top. Measured at init (std over positions of the top layer's output, random text):
    2x320 0.0152, 2x1024 0.0091, 3x1024 0.0023, 5x256 0.0003; a stack that starts so deaf learns the
    character frequencies and can sit there (3x1024 at lr 2e-3 on an H200: 3.30 nats, the unigram
    entropy, for 300 steps; 5x256 on a CPU likewise). Here layer 0's input weights are drawn at their
    fan-in, U(+-1/sqrt(input)), and an LSTM's forget-gate bias starts at 1 (Gers et al. 2000), so
    the state keeps what comes in: 3x1024 0.0354, 5x256 0.0107; 5x256 then leaves the plateau by
    step 150 (2.45 nats at 300)."""
    w = rnn.weight_ih_l0
    w.uniform_(-w.shape[1] ** -0.5, w.shape[1] ** -0.5)
    if rnn.mode == "LSTM":
        h = rnn.hidden_size
        for layer in range(rnn.num_layers):            # gates i, f, g, o: f is rows h..2h
            getattr(rnn, f"bias_ih_l{layer}")[h:2 * h].fill_(1.0)
            getattr(rnn, f"bias_hh_l{layer}")[h:2 * h].zero_()


def detach_state(state: State) -> State:
    """Cut the graph between truncated-BPTT windows; keep the values."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class SequenceModel(nn.Module):
    """Many-to-many sequence model over a vocabulary; the config is its only constructor argument."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        if config.vocab_size < 1:
            raise UsageError("ModelConfig.vocab_size must be set (>= 1) before building a model")
        self.config = config
        v, c = config.vocab_size, config
        self.embedding = nn.Embedding(v, c.embed) if c.embed > 0 else None
        self.rnn = make_rnn(c.cell, c.embed or v, c.hidden, c.layers, c.dropout)
        if init_of(c) == "scaled":
            scale_init(self.rnn)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, v)

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, E) input vectors (one-hot when embed == 0)."""
        if self.embedding is None:
            return F.one_hot(ids, self.config.vocab_size).to(self.head.weight.dtype)
        return self.embedding(ids)

    def forward(self, ids: torch.Tensor, state: State = None,
                lengths: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) -> logits (B, T, V) and the final state.

        With `lengths` (B,), rows are padded sequences of those lengths: they are packed so the
        recurrence stops at each row's end, and the returned state is each row's state at its end.
        At padded positions the recurrent output is zero, so the logits there are the head's bias
        alone; mask them in the loss (targets = windows.PAD).
        """
        x = self.inputs(ids)
        if self.training and regularize.any_on(self.config):
            return self.regularized(ids, x, state, lengths)
        if lengths is not None:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed, state)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        else:
            out, state = self.rnn(x, state)
        return self.head(self.drop(out)), state

    def regularized(self, ids, x, state, lengths):
        """The training forward with the AWD-LSTM regularisers on (see regularize.py)."""
        c = self.config
        regularize.check_packed(c, lengths, self.training)
        x = regularize.embed_dropout(x, ids, c.vocab_size, c.embed_dropout, True)
        if lengths is not None:  # embedding dropout alone: the plain packed path
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed, state)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        else:
            out, state = regularize.regularized_rnn(self.rnn, x, state, c.weight_drop, c.locked_dropout,
                                                    self.rnn.dropout, True)
        out = regularize.locked_dropout(regularize.plain_dropout(out, c.dropout, True), c.locked_dropout, True)
        return self.head(out), state

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        c = self.config
        h = torch.zeros(c.layers, batch, c.hidden, device=device)
        return (h, h.clone()) if c.cell == "lstm" else h


class SoftmaxOnly(nn.Module):
    """The lecture's baseline without recurrence: logits_t = W x_t + b. It cannot use context."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.head = nn.Linear(config.vocab_size, config.vocab_size)

    def forward(self, ids: torch.Tensor, state: State = None, lengths=None) -> tuple[torch.Tensor, State]:
        return self.head(F.one_hot(ids, self.config.vocab_size).float()), None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summary(model: nn.Module, batch: int, seq_len: int) -> str:
    """A Keras-like table: each layer, its output shape and its parameter count."""
    rows = []
    v = model.config.vocab_size
    if isinstance(model, SoftmaxOnly):
        rows.append(("one_hot (OneHot)", (batch, seq_len, v), 0))
    elif model.embedding is None:
        rows.append(("one_hot (OneHot)", (batch, seq_len, v), 0))
    else:
        rows.append(("embedding (Embedding)", (batch, seq_len, model.config.embed), count_params(model.embedding)))
    if hasattr(model, "rnn"):
        c = model.config
        name = type(model.rnn).__name__
        rows.append((f"{c.cell} ({name} x{c.layers})", (batch, seq_len, c.hidden), count_params(model.rnn)))
    rows.append(("time_distributed (Linear)", (batch, seq_len, v), count_params(model.head)))
    lines = [f'Model: "{type(model).__name__}"', "_" * 66,
             f"{'Layer (type)':<32}{'Output Shape':<22}{'Param #':>12}", "=" * 66]
    for name, shape, n in rows:
        lines.append(f"{name:<32}{str(shape):<22}{n:>12,}")
    total = count_params(model)
    lines += ["=" * 66, f"Total params: {total:,}", f"Trainable params: {total:,}", "_" * 66]
    return "\n".join(lines)


# ---- memory a model needs, before it is built (issue 14) ----

class _NoNormalInit(TorchFunctionMode):
    """Leaves tensors as they are where an initialiser would draw from a normal distribution."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (nn.init.normal_, torch.Tensor.normal_):
            return args[0] if args else (kwargs or {})["tensor"]
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def shapes_only():
    """Build modules on the meta device, for their shapes: nothing is allocated. Normal draws are
    skipped: on a meta tensor `normal_` imports torch._dynamo on first use, about 2 s that every
    `rnnkit sample`, `eval` or `serve` paid to check a checkpoint (nn.Embedding's initialiser)."""
    with torch.device("meta"), _NoNormalInit():
        yield


GATES = {"rnn": 1, "gru": 3, "lstm": 4}   # weight blocks per layer: PyTorch's fused kernels' layout
FLOAT = 4                                 # bytes: parameters, gradients and Adam moments are fp32


def param_count(cfg: ModelConfig) -> int:
    """SequenceModel(cfg)'s parameter count, computed without building it."""
    v, h, g = cfg.vocab_size, cfg.hidden, GATES[cfg.cell]
    n = v * cfg.embed if cfg.embed else 0
    for layer in range(cfg.layers):
        width = (cfg.embed or v) if layer == 0 else h
        n += g * h * (width + h) + 2 * g * h     # W_ih, W_hh, b_ih, b_hh
    return n + h * v + v                          # the head


def memory_estimate(cfg: ModelConfig, batch: int, seq_len: int, training: bool = True) -> dict:
    """Bytes a forward (and, training, a backward and an Adam step) over a (batch, seq_len) window
    needs, roughly: weights; gradients and two Adam moments (training); activations. Training
    keeps every layer's input, gates and states for backward and their gradients (x2), plus the
    logits, their softmax and its gradient; inference keeps one layer's worth at a time."""
    g, h, v = GATES[cfg.cell], cfg.hidden, max(cfg.vocab_size, 1)
    widths = [(cfg.embed or v)] + [h] * (cfg.layers - 1)
    weights = param_count(cfg) * FLOAT
    if training:
        per_pos = 2 * sum(w + (g + 2) * h for w in widths) + 3 * v
    else:
        per_pos = max(widths) + (g + 2) * h + 2 * v
    acts = batch * seq_len * per_pos * FLOAT
    return {"weights": weights, "optimizer": 3 * weights if training else 0, "activations": acts,
            "total": weights * (4 if training else 1) + acts}


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can be allocated now: a GPU's free memory, else MemAvailable from /proc/meminfo
    (what Linux can hand out without swapping), else the physical memory; None if unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"


def check_memory(cfg: ModelConfig, batch: int = 1, seq_len: int = 1, training: bool = True,
                 device: torch.device | str = "cpu", where: str = "") -> dict:
    """Refuse (RnnkitError, one line naming the option to lower and the estimate) a model whose
    memory_estimate is above what `device` has available; else return the estimate."""
    est = memory_estimate(cfg, batch, seq_len, training)
    have = available_memory(device)
    if have is None or est["total"] <= have:
        return est
    if est["activations"] > est["total"] - est["activations"]:
        field = f"--batch {batch} x --seq-len {seq_len}"
        part = f"{gb(est['activations'])} of activations for {batch} x {seq_len} positions"
    else:
        # the size whose reduction to its least saves the most parameters
        least = {"hidden": 1, "embed": 1 if cfg.embed else 0, "layers": 1, "vocab_size": 1}
        name = max(least, key=lambda k: param_count(cfg) - param_count(dataclasses.replace(cfg, **{k: least[k]})))
        field = "vocabulary size" if name == "vocab_size" else f"--{name} {getattr(cfg, name)}"
        what = "weights, gradients and Adam moments" if training else "weights"
        part = f"{gb(est['total'] - est['activations'])} of {what} ({param_count(cfg):,} parameters)"
    dev = torch.device(device)
    raise RnnkitError(f"{where}{field}: the model needs about {gb(est['total'])} ({part}) but "
                      f"{'this GPU' if dev.type == 'cuda' else 'this machine'} has {gb(have)} available; "
                      "choose smaller sizes")
