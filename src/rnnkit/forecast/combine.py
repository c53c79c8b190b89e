"""The forecast rnnkit gives: the network combined with the classical models (`--combine auto`).

The M4 lesson: a combination beats its members, and weights from each member's own recent errors
beat equal ones. The training part's tail (the last --val-fraction of its windows, which the
network never fits) gives every member's errors at each step h; the weights are

    w_k(h) = (1 / MSE_k(h)^2) / sum_j (1 / MSE_j(h)^2)        members: network, ETS, ARIMA, Theta

so a member that is clearly worse at a step gets almost nothing there. The classical members are
fitted on the training part only (classic.py), so the tail errors of both kinds come from the
same rows. A member that could not be fitted is left out; without statsmodels (or with
`--combine off`, a panel, or too few tail windows) the forecast is the network's alone.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

MEMBERS = ("network", "ets", "arima", "theta")
MIN_TAIL = 8           # fewer tail windows than this: the weights would be noise


def tail_weights(errors: dict) -> Optional[dict]:
    """name -> (n, S) tail errors -> name -> (S,) weights summing to 1 over names at each step;
    None when there are too few windows or only the network."""
    errors = {k: v for k, v in errors.items() if isinstance(v, np.ndarray)}
    if len(errors) < 2 or min(len(v) for v in errors.values()) < MIN_TAIL:
        return None
    inv = {k: 1.0 / np.maximum(np.mean(v ** 2, axis=0), 1e-300) ** 2 for k, v in errors.items()}
    total = sum(inv.values())
    return {k: v / total for k, v in inv.items()}


def combine(weights: Optional[dict], forecasts: dict, col: Optional[int] = None) -> np.ndarray:
    """The weighted forecast: forecasts name -> (M, S) aligned with the weights' steps, or (M,) at
    output column `col`. Without weights (or with a member missing) the network's alone."""
    net = forecasts["network"]
    if not weights or any(not isinstance(forecasts.get(k), np.ndarray) for k in weights):
        return net
    if col is not None:
        return sum(w[col] * forecasts[k] for k, w in weights.items())
    return sum(w[None, :] * forecasts[k] for k, w in weights.items())


def with_classics(weights: Optional[dict], net: np.ndarray, y: np.ndarray, n_fit: int, season: int,
                  origins: np.ndarray, horizon: int, S: np.ndarray) -> np.ndarray:
    """The network's (M, S) forecasts from `origins` combined with ETS, ARIMA and Theta fitted on
    y[:n_fit] (every row known: the future, --predict); the network's alone without weights, or
    when a member cannot be fitted (statsmodels missing)."""
    if not weights:
        return net
    from .classic import CLASSIC, classic_forecasts
    cl = classic_forecasts(y, n_fit, season, origins, horizon)
    members = {k: cl[k][:, S - 1] for k in CLASSIC[:3] if isinstance(cl[k], np.ndarray)}
    return combine(weights, {"network": net, **members})


def describe(weights: Optional[dict]) -> str:
    """One line for the log: each member's weight, averaged over the steps."""
    if not weights:
        return "the network alone"
    return ", ".join(f"{k} {float(np.mean(w)):.2f}" for k, w in weights.items())
