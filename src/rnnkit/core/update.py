"""One update and the smallest loop. Nothing here knows which model it trains.

`optimizer_step` is the one update every loop in rnnkit takes (zero_grad, backward, clip, step,
refusing a non-finite loss first); the long loop (train.py) and the forecaster's loop call it. `fit`
trains on a small in-memory batch for a number of epochs and prints a Keras-like log (the labs).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import RnnkitError
from .models import detach_state
from .windows import PAD


@contextmanager
def torch_threads(n: int):
    """Run with n intra-op threads (0: leave PyTorch's choice), restored afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-symbol loss in nats over (B, T, V) logits; targets equal to PAD are ignored."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=PAD)


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    mask = targets != PAD
    return (logits.argmax(-1)[mask] == targets[mask]).float().mean().item()


class NonFiniteLoss(RnnkitError):
    exit_code = 1


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                   clip: float = 0.0, check: bool = True) -> None:
    """zero_grad, backward, gradient-norm clipping (0: off), step. With `check`, a non-finite loss
    raises NonFiniteLoss before the weights or the optimizer change (the trainer checks across
    all ranks itself and passes check=False)."""
    if check and not math.isfinite(loss.item()):
        raise NonFiniteLoss("non-finite loss; stopped without updating the weights. Lower the learning rate")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float,
        lengths: Optional[torch.Tensor] = None, clip: float = 0.0, log: Callable[[str], None] = print,
        stateful_chunks: int = 0, log_every: int = 1) -> list[dict]:
    """Full-batch Adam on (x, y) for `epochs`, one log line per epoch like Keras' `fit`.

    With `stateful_chunks` > 0 the columns of x are consumed in that many consecutive windows per
    epoch with the hidden state carried between them (Keras' stateful=True)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    chunks = (torch.tensor_split(torch.arange(x.shape[1]), stateful_chunks) if stateful_chunks
              else [torch.arange(x.shape[1])])
    for epoch in range(1, epochs + 1):
        model.train()
        state, losses, accs = None, [], []
        for cols in chunks:
            logits, state = model(x[:, cols], state, lengths=lengths) if lengths is not None \
                else model(x[:, cols], state)
            state = detach_state(state)
            loss = cross_entropy(logits, y[:, cols])
            optimizer_step(model, opt, loss, clip)
            losses.append(loss.item())
            accs.append(accuracy(logits, y[:, cols]))
        history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "accuracy": sum(accs) / len(accs)})
        if epoch % log_every == 0 or epoch in (1, epochs):
            log(f"Epoch {epoch}/{epochs} - loss: {history[-1]['loss']:.4f} - accuracy: {history[-1]['accuracy']:.4f}")
    return history
