"""The forecast rnnkit gives: the network combined with the classical models (`--combine auto`).

The M4 lesson: a combination beats its members, and weights from each member's own recent errors
beat equal ones. The training part's tail (the last --val-fraction of its windows, which the
network never fits) gives every member's errors at each step h; the weights are

    w_k(h) = (1 / MSE_k(h)^2) / sum_j (1 / MSE_j(h)^2)        members: network, ETS, ARIMA, Theta

so a member that is clearly worse at a step gets almost nothing there. The classical members are
fitted on the training part only (classic.py), so the tail errors of both kinds come from the
same rows. The combination must earn its place: in a 4-fold check over the tail windows (weights
from three contiguous blocks, errors on the fourth) its squared error, summed over steps, must be
below the network's alone; otherwise the forecast is the network's (on a series where the network
is far ahead of the classics, such as one step ahead on sunspots, the weights from a short tail
are noise that would cost it 10%). The check is a yes / no on a sum of squared errors, so it is
only made where the tail holds MIN_TAIL windows that do not overlap: windows of S steps from
consecutive origins share their errors, and n of them hold ceil(n / S) independent ones. At one
season ahead that is never the case on monthly or quarterly series (26 quarterly windows of 4 steps
hold 7), and there the check misled: on 74 such series it chose the network alone on 10, and the
combination would have been better on 8 of them (uschange.Savings MASE at step H 1.566 against
1.090). One step ahead (sunspots: 39 windows) and a few steps ahead (sunspots at 2 and 3 steps: 6%
and 3% better with it) it still decides. With fewer than MIN_TAIL tail windows the weights cannot be
estimated and the forecast is the members' plain mean (on ldeaths, 72 monthly rows and 5 tail
windows, MASE at step H 0.645 for the network alone). MIN_TAIL is 10, not 8: on the 12 held-out
series with 8 or 9 tail windows (quarterly, 68-76 rows) the plain mean beat the tail weights on 11
over steps 1..H (mean MASE 0.928 against 1.037) and on 5 at step H (1.034 against 1.107). A
member that could not be fitted is left out; without statsmodels (or with `--combine off` or a
panel) the forecast is the network's alone.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

MEMBERS = ("network", "ets", "arima", "theta")
MIN_TAIL = 10          # fewer tail windows than this: the weights would be noise
FOLDS = 4              # the blocks of the tail check


def tail_weights(errors: dict, min_tail: int = MIN_TAIL) -> Optional[dict]:
    """name -> (n, S) tail errors -> name -> (S,) weights summing to 1 over names at each step;
    None when there are too few windows or only the network."""
    errors = {k: v for k, v in errors.items() if isinstance(v, np.ndarray)}
    if len(errors) < 2 or min(len(v) for v in errors.values()) < min_tail:
        return None
    inv = {k: 1.0 / np.maximum(np.mean(v ** 2, axis=0), 1e-300) ** 2 for k, v in errors.items()}
    total = sum(inv.values())
    return {k: v / total for k, v in inv.items()}


def cv_ratio(errors: dict, folds: int = FOLDS) -> float:
    """name -> (n, S) tail errors -> squared error of the combination over the network's alone,
    each tail block's combination weighted from the other blocks: < 1 means it generalises."""
    n = len(errors["network"])
    comb = net = 0.0
    for block in np.array_split(np.arange(n), folds):
        rest = np.setdiff1d(np.arange(n), block)
        w = tail_weights({k: v[rest] for k, v in errors.items()}, min_tail=1)
        comb += float(np.sum(sum(w[k][None, :] * v[block] for k, v in errors.items()) ** 2))
        net += float(np.sum(errors["network"][block] ** 2))
    return comb / max(net, 1e-300)


def choose_weights(errors: dict) -> tuple[Optional[dict], str]:
    """The weights, or None (the network alone) when the tail check says the combination does
    not pay; and a line for the log."""
    errors = {k: v for k, v in errors.items() if isinstance(v, np.ndarray)}
    n, S = errors["network"].shape
    if len(errors) < 2:
        return None, "the network alone"
    w = tail_weights(errors)
    if w is None:                       # too few windows to weigh: the plain mean, M4's robust default
        return {k: np.full(S, 1 / len(errors)) for k in errors}, (
            f"the mean of {', '.join(errors)} ({n} tail windows are too few to weigh them, {MIN_TAIL} needed)")
    apart = -(-n // S)                  # windows of S steps from consecutive origins that do not overlap
    if apart < MIN_TAIL:                # too few for the check: combine (the M4 lesson)
        return w, (f"{describe(w)} (weights from the last {n} training windows, averaged over steps; "
                   f"{n} windows of {S} steps hold {apart} that do not overlap, too few to check "
                   f"against the network alone, {MIN_TAIL} needed)")
    r = cv_ratio(errors)
    if r >= 1:
        return None, (f"the network alone (the combination with the classical models did not pay on the last {n} "
                      f"training windows: {r:.3f} of its squared error in a {FOLDS}-fold check)")
    return w, (f"{describe(w)} (weights from the last {n} training windows, averaged over steps; "
               f"{r:.3f} of the network's squared error in a {FOLDS}-fold check)")


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
    from .classic import classic_forecasts
    return combine(weights, {"network": net, **members(classic_forecasts(y, n_fit, season, origins, horizon), S)})


def members(classic: dict, S: np.ndarray) -> dict:
    """classic_forecasts' (M, H) forecasts -> the fitted members' (M, S) at the network's steps."""
    return {k: classic[k][:, S - 1] for k in MEMBERS[1:] if isinstance(classic.get(k), np.ndarray)}


def describe(weights: Optional[dict]) -> str:
    """One line for the log: each member's weight, averaged over the steps."""
    if not weights:
        return "the network alone"
    return ", ".join(f"{k} {float(np.mean(w)):.2f}" for k, w in weights.items())
