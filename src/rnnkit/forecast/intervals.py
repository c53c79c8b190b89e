"""Prediction intervals by split-conformal calibration on the training part's tail.

The last `--val-fraction` of the training windows are not fitted (they pick the epoch); their
errors calibrate the intervals. Each error is divided by the window's own typical one-step change
(`vol`, forecast_inputs.volatility), so the bands widen when the series is turbulent:

    score_i = |truth_i - forecast_i| / vol_i             on the n calibration windows, per step
    q       = the ceil((n + 1) * level)-th smallest score (split conformal: coverage >= level
              for exchangeable errors)
    band    = forecast +- q * vol                        on the test part

The JSON reports each level's empirical coverage on the test part and the bands' mean width.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np


def floor_vol(vol: np.ndarray, ref: float) -> np.ndarray:
    """A window that never moved would give a zero-width band: floor at 1% of the typical scale."""
    return np.maximum(vol, max(ref * 0.01, 1e-12))


def calibrate(errors: np.ndarray, vol: np.ndarray, levels: list[float]) -> tuple[dict, Optional[str]]:
    """errors (n, S) forecast - truth on the calibration windows, vol (n,) -> quantiles(scores)."""
    return quantiles(scores(errors, vol), levels)


def scores(errors: np.ndarray, vol: np.ndarray) -> np.ndarray:
    """(n, S) errors, (n,) window volatilities -> (n, S) conformal scores |error| / vol."""
    return np.abs(errors) / vol[:, None]


def quantiles(scores: np.ndarray, levels: list[float]) -> tuple[dict, Optional[str]]:
    """(n, S) scores -> ({level: q (S,)}, None), or without the levels that too few windows cannot
    calibrate, and the reason (the 80% band of a short series stays when its 95% one cannot be had)."""
    n = len(scores)
    if n == 0:
        return {}, "no calibration windows (--val-fraction 0)"
    qs, why = {}, None
    for level in levels:
        k = math.ceil((n + 1) * level / 100)
        if k > n:
            need = math.ceil(100 / (100 - level)) - 1
            why = why or f"{n} calibration windows are too few for a {level:g}% interval (need {need})"
            continue
        qs[level] = np.sort(scores, axis=0)[k - 1]          # (S,)
    return qs, why


def bands(pred: np.ndarray, vol: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pred (M,), vol (M,), q scalar -> lower, upper (M,)."""
    half = q * vol
    return pred - half, pred + half


def coverage(truth: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict:
    inside = (truth >= lo) & (truth <= hi)
    return {"coverage": float(inside.mean() * 100), "mean_width": float(np.mean(hi - lo))}


def level_key(level: float) -> str:
    """80.0 -> "80", 97.5 -> "97.5": the JSON key and the CSV column suffix."""
    return f"{level:g}"
