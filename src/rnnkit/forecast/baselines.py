"""Yardsticks a forecast must beat, and the errors that compare them.

For a target row r forecast h steps ahead the origin is o = r - h (the last row known):

    naive            y[o]                                   "tomorrow = today"
    seasonal naive   y[o + h - s * ceil(h / s)]             the same point of the last season
    drift            y[o] + h * (y[o] - y[0]) / o           the line through the first and last values
    ETS, ARIMA,      classical models (classic.py), when statsmodels is installed
    Theta, Comb

Errors are in the target's units (RMSE, MAE), in percent (MAPE, sMAPE), or scale-free (MASE: the
MAE divided by the seasonal naive forecast's one-step MAE on the training part, so it can be
averaged over series); skill = 1 - RMSE / RMSE_naive, None where the naive RMSE is 0.
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


def mase_scale(y_train: np.ndarray, season: int) -> Optional[float]:
    """The in-sample MAE of the seasonal naive forecast y[t - s] (s = 1 without a season or when
    the training part is shorter than two seasons); None when it is 0."""
    s = season if 1 < season and len(y_train) > 2 * season else 1
    scale = float(np.mean(np.abs(y_train[s:] - y_train[:-s]))) if len(y_train) > s else 0.0
    return scale if scale > 0 else None


def metrics(truth: np.ndarray, pred: np.ndarray, scale: Optional[float] = None) -> dict:
    """RMSE and MAE in the target's units, MAPE in percent (None if a true value is 0), sMAPE in
    percent (0 to 200; a pair of zeros counts 0), and with `scale` (mase_scale) the MASE."""
    err = pred - truth
    mape = float(np.mean(np.abs(err / truth)) * 100) if np.all(truth != 0) else None
    den = np.abs(truth) + np.abs(pred)
    smape = float(np.mean(np.divide(2 * np.abs(err), den, out=np.zeros_like(den), where=den > 0)) * 100)
    mae = float(np.mean(np.abs(err)))
    out = {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": mae, "mape": mape, "smape": smape}
    if scale is not None:
        out["mase"] = mae / scale
    return out


def mean_metrics(per_step: list[dict]) -> dict:
    """The mean of each error over steps 1..H (None where a step has none)."""
    keys = [k for k in ("rmse", "mae", "mape", "smape", "mase") if k in per_step[0]]
    return {k: (None if any(d.get(k) is None for d in per_step) else float(np.mean([d[k] for d in per_step])))
            for k in keys}


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


def best_of(table: dict, key: str = "rmse") -> Optional[str]:
    """The baseline name with the lowest error (`key`) among those with metrics."""
    scored = [(d[key], name) for name, d in table.items() if isinstance(d, dict) and d.get(key) is not None]
    return min(scored)[1] if scored else None
