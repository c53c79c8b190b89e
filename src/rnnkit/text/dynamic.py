"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models").

    from rnnkit.text.dynamic import DynamicSettings, dynamic_eval
    total, count, correct = dynamic_eval(model, ids, DynamicSettings(lr=1e-4, decay=0.02, segment=50))

The text is read as one stream, `segment` characters at a time, the state carried. Each segment is
scored first, with the weights as they are; then one gradient step is taken on that segment's
loss, so later segments are predicted by a model that has adapted to what it has read:

    g   = grad of the segment's mean loss
    th <- th - lr * g / (sqrt(MS) + eps) + clamp(decay * RMS_norm, max=1) * (th_0 - th)

MS is the mean squared gradient per weight; RMS_norm = sqrt(MS) / mean(sqrt(MS)) lets weights whose
gradients are large drift back to the trained weights th_0 faster. MS comes from `stats_ids`
(segments of the training text at the trained weights, as the paper does) or, without them, from
the gradients of the segments already scored (a running mean). Either way no character is seen
before it is scored. The model passed in is never changed: the adaptation runs on a copy.
"""
from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.models import detach_state
from ..core.windows import to_long


@dataclass
class DynamicSettings:
    # defaults picked on the training split's last 30,000 chars. A 2x256 model after 5,965 steps
    # (static 1.162): lr 1e-4 decay 0.02 -> 1.154; 3e-4 0.1 -> 1.196; 3e-4 0.02 -> 1.203; 6e-4 0 ->
    # 6.23 (diverges). An undertrained one (200 steps, static 1.985) preferred 6e-4 decay 0 (1.892).
    lr: float = 1e-4          # step size of the RMS-normalised update
    decay: float = 0.02       # pull toward the trained weights per segment (scaled by RMS_norm)
    segment: int = 50         # characters scored between two updates
    stats_segments: int = 200  # training segments for MS (when stats_ids are given)
    eps: float = 1e-8


def no_cudnn(device: torch.device):
    """cuDNN RNNs refuse backward in eval mode; the native kernel does not (dropout stays off)."""
    return torch.backends.cudnn.flags(enabled=False) if device.type == "cuda" else contextlib.nullcontext()


def segment_grads(model: nn.Module, params: list, x: torch.Tensor, y: torch.Tensor, state):
    """Per-character losses (T,), the gradients of their mean, the final state, correct guesses."""
    logits, new_state = model(x, state)
    logits = logits.float()
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    grads = torch.autograd.grad(losses.mean(), params)
    correct = (logits.argmax(-1) == y).sum().item()
    return losses.detach(), grads, detach_state(new_state), correct


def mean_square_grads(model: nn.Module, params: list, ids: np.ndarray, s: DynamicSettings,
                      device: torch.device) -> list[torch.Tensor]:
    """MS per weight over up to `stats_segments` segments of `ids` (the trained weights, no updates)."""
    ms = [torch.zeros_like(p) for p in params]
    state, n = None, 0
    for a in range(0, min(len(ids) - 1, s.segment * s.stats_segments), s.segment):
        x, y = to_long(ids[None, a: a + s.segment], device), to_long(ids[None, a + 1: a + s.segment + 1], device)
        if y.shape[1] < x.shape[1]:
            x = x[:, : y.shape[1]]
        if x.shape[1] == 0:
            break
        _, grads, state, _ = segment_grads(model, params, x, y, state)
        for m, g in zip(ms, grads):
            m += g * g
        n += 1
    return [m / max(1, n) for m in ms]


def dynamic_scores(model: nn.Module, ids: np.ndarray, s: Optional[DynamicSettings] = None,
                   device: torch.device | str = "cpu", stats_ids: Optional[np.ndarray] = None,
                   ) -> tuple[np.ndarray, int]:
    """Per-character losses (nats) of ids[1:] given the characters before each, under dynamic
    evaluation, and the number of correct guesses."""
    s, device = s or DynamicSettings(), torch.device(device)
    model = copy.deepcopy(model).eval()        # the caller's model (and its checkpoint) stay as trained
    params = [p for p in model.parameters() if p.requires_grad]
    theta0 = [p.detach().clone() for p in params]
    scores = np.empty(max(0, len(ids) - 1), dtype=np.float64)
    correct, state, seen = 0, None, 0
    with no_cudnn(device):
        ms = mean_square_grads(model, params, stats_ids, s, device) if stats_ids is not None else None
        online = [torch.zeros_like(p) for p in params] if ms is None else None
        for a in range(0, len(ids) - 1, s.segment):
            b = min(a + s.segment, len(ids) - 1)
            x, y = to_long(ids[None, a: b], device), to_long(ids[None, a + 1: b + 1], device)
            losses, grads, state, c = segment_grads(model, params, x, y, state)   # scored first ...
            scores[a: b], correct = losses.cpu().numpy(), correct + c
            if online is not None:                  # MS from the segments already scored
                seen += 1
                for m, g in zip(online, grads):
                    m.mul_(1 - 1 / seen).add_(g * g, alpha=1 / seen)
            update(params, grads, theta0, ms if ms is not None else online, s)     # ... then learnt from
    return scores, correct


@torch.no_grad()
def update(params: list, grads: tuple, theta0: list, ms: list, s: DynamicSettings) -> None:
    """The RMS-normalised step with decay toward the trained weights."""
    rms = [m.sqrt() for m in ms]
    mean_rms = torch.cat([r.reshape(-1) for r in rms]).mean().clamp_min(s.eps)
    for p, g, r, p0 in zip(params, grads, rms, theta0):
        p.sub_(s.lr * g / (r + s.eps))
        p.add_((s.decay * r / mean_rms).clamp_(max=1.0) * (p0 - p))


def dynamic_eval(model: nn.Module, ids: np.ndarray, s: Optional[DynamicSettings] = None,
                 device: torch.device | str = "cpu", stats_ids: Optional[np.ndarray] = None) -> tuple[float, int, int]:
    """Sum of losses (nats), count and correct guesses under dynamic evaluation (evaluate_ids' shape)."""
    scores, correct = dynamic_scores(model, ids, s, device, stats_ids)
    return float(scores.sum()), len(scores), correct


def training_tail(run_dir, meta: dict, vocab, chars: int) -> Optional[np.ndarray]:
    """The last `chars` characters of the run's training split, from its id cache (None when the
    run directory does not hold exactly one cache that fits the vocabulary)."""
    from pathlib import Path

    from ..core.vocab import Vocab
    run = Path(run_dir)
    run = run.parent if run.is_file() else run      # a checkpoint file: its run directory
    train = meta.get("train") or {}
    found = []
    for j in sorted((run / "data").glob("ids-*.json")) if run.is_dir() else []:
        try:
            if Vocab.from_json(json.loads(j.read_text())) == vocab:
                found.append(j.with_suffix(".npy"))
        except (ValueError, OSError):
            continue
    if len(found) != 1 or not found[0].exists() or not isinstance(train.get("val_fraction"), (int, float)):
        return None
    ids = np.load(found[0], mmap_mode="r")
    n_train = len(ids) - int(len(ids) * train["val_fraction"])
    return np.asarray(ids[max(0, n_train - chars): n_train])


def run_dynamic(model: nn.Module, ids: np.ndarray, cfg, device, run_dir, meta: dict, vocab) -> tuple:
    """`rnnkit eval --dynamic`: (total, count, correct, JSON fields); MS from the run's training tail
    when its id cache is there, else from the segments already scored."""
    s = DynamicSettings(lr=cfg.dynamic_lr, decay=cfg.dynamic_decay, segment=cfg.segment)
    stats = training_tail(run_dir, meta, vocab, s.segment * s.stats_segments + 1)
    total, count, correct = dynamic_eval(model, ids, s, device, stats)
    extra = {"dynamic": True, "dynamic_lr": s.lr, "dynamic_decay": s.decay, "segment": s.segment,
             "dynamic_stats": "training text" if stats is not None else "scored segments"}
    return total, count, correct, extra
