"""Yardsticks a forecast must beat, and the errors that compare them.

For a target row r forecast h steps ahead the origin is o = r - h (the last row known):

    naive            y[o]                                   "tomorrow = today"
    seasonal naive   y[o + h - s * ceil(h / s)]             the same point of the last season
    drift            y[o] + h * (y[o] - y[0]) / o           the line through the first and last values
    ETS, ARIMA       classical models (classic.py), when statsmodels is installed

Errors are in the target's units; skill = 1 - RMSE / RMSE_naive, None where the naive RMSE is 0.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np


def naive_forecast(y: np.ndarray, targets: np.ndarray, horizon: int) -> np.ndarray:
    """The last value known at forecast time: y[t - H] for each target row t."""
    return y[targets - horizon]


def seasonal_naive(y: np.ndarray, targets: np.ndarray, horizon: int, season: int) -> np.ndarray:
    back = season * math.ceil(horizon / season)
    return y[targets - back]


def drift(y: np.ndarray, targets: np.ndarray, horizon: int) -> np.ndarray:
    o = targets - horizon
    slope = (y[o] - y[0]) / np.maximum(o, 1)
    return y[o] + horizon * slope


def metrics(truth: np.ndarray, pred: np.ndarray) -> dict:
    """RMSE and MAE in the target's units, MAPE in percent (None if a true value is 0)."""
    err = pred - truth
    mape = float(np.mean(np.abs(err / truth)) * 100) if np.all(truth != 0) else None
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))), "mape": mape}


def skill(model_rmse: float, base_rmse: float) -> Optional[float]:
    """1 - RMSE_model / RMSE_base; None when the yardstick is exact (RMSE 0) and the ratio undefined."""
    if base_rmse > 0:
        return 1 - model_rmse / base_rmse
    return None


def simple_baselines(y: np.ndarray, targets: np.ndarray, horizon: int, season: int) -> dict:
    """name -> forecasts (len(targets),) for the baselines that apply (seasonal naive needs s > 1
    and a full season before the first target)."""
    out = {"naive": naive_forecast(y, targets, horizon), "drift": drift(y, targets, horizon)}
    if season > 1 and targets.min() - season * math.ceil(horizon / season) >= 0:
        out["seasonal_naive"] = seasonal_naive(y, targets, horizon, season)
    return out


def best_of(table: dict) -> Optional[str]:
    """The baseline name with the lowest RMSE among those with metrics."""
    scored = [(d["rmse"], name) for name, d in table.items() if isinstance(d, dict) and d.get("rmse") is not None]
    return min(scored)[1] if scored else None
