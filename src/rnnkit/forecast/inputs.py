"""From a series to the model's windows and back: train-only scaling, windows, targets, units.

    rows   0 ............................ n_train-1 | n_train ............ N-1
           [ scaler fitted here, train targets ]    | [ test targets ]
    origin o: window rows o-W+1 .. o (all features)  ->  targets o+1 .. o+H (the target column)

A window may start in the train part when its targets lie in the test part (the past is known at
forecast time), but nothing from the test part reaches the scaler or the weights.

Inputs (`--inputs`): `level` feeds the min-max scaled values (the lecture). `diff` feeds each
window relative to its own last step; the model (forecast_model.py) turns that into step-to-step
changes divided by the training part's typical change, so a series and the same series plus a
constant give the same inputs, and a trending series never leaves the range seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..core.config import ForecastConfig, UsageError


class Scaler:
    """Min-max scaling per column, fitted on the training rows only: (v - lo) / (hi - lo)."""

    def __init__(self, columns: list[str], lo: np.ndarray, hi: np.ndarray):
        self.columns, self.lo, self.hi = list(columns), np.asarray(lo, float), np.asarray(hi, float)

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str], where: str) -> "Scaler":
        lo, hi = values.min(axis=0), values.max(axis=0)
        for c, a, b in zip(columns, lo, hi):
            if a == b:
                raise UsageError(f"{where}: column {c!r} is constant ({a:g}) over the {len(values)} "
                                 "training rows, so it cannot be scaled; leave it out of --features (as the "
                                 f"target there is nothing to learn: its forecast is {a:g})")
        return cls(columns, lo, hi)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.lo) / (self.hi - self.lo)

    def span(self, column: str) -> float:
        i = self.columns.index(column)
        return float(self.hi[i] - self.lo[i])

    def to_dict(self) -> dict:
        return {"columns": self.columns, "lo": self.lo.tolist(), "hi": self.hi.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Scaler":
        return cls(d["columns"], d["lo"], d["hi"])


def windows(x: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """x (N, F), window end rows (M,) -> (M, W, F): rows end-W+1 .. end of each."""
    offsets = np.arange(-window + 1, 1)
    return x[ends[:, None] + offsets[None, :]]


@dataclass
class Prepared:
    """Windows of one series: inputs (M, W, F [+C]), scaled targets (M, S) (NaN past the end),
    origins (M,), and each window's typical one-step change of the target, in its units (M,)."""

    x: torch.Tensor
    y: np.ndarray
    origins: np.ndarray
    vol: np.ndarray


def steps(cfg: ForecastConfig, outputs: int) -> np.ndarray:
    """The steps ahead the model's outputs stand for: 1..H, or only H for a 0.1 model."""
    return np.arange(1, cfg.horizon + 1) if outputs == cfg.horizon else np.array([cfg.horizon])


def prepare(values: np.ndarray, columns: list[str], feats: list[str], target: str, scaler: Scaler,
            cfg: ForecastConfig, origins: np.ndarray, outputs: int,
            calendar: Optional[np.ndarray] = None) -> Prepared:
    """Windows ending at `origins` (each >= W-1). calendar (N + H, C): the calendar of row r + 1
    at row r, so a window's last step carries the first forecast date's."""
    scaled = scaler.transform(values)                        # (N, C) in scaler.columns order
    x = windows(scaled[:, [scaler.columns.index(f) for f in feats]], origins, cfg.window)  # (M, W, F)
    if cfg.inputs == "diff":
        x = x - x[:, -1:]                       # relative to the last step, in float64 before the cast
    if calendar is not None and calendar.shape[1]:
        x = np.concatenate([x, windows(calendar, origins, cfg.window)], axis=2)
    ys = scaled[:, scaler.columns.index(target)]
    rows = origins[:, None] + steps(cfg, outputs)[None, :]               # (M, S) target rows
    inside = rows < len(values)
    y = np.full(rows.shape, np.nan)
    y[inside] = ys[rows[inside]]
    if cfg.target_mode == "change":
        y = y - ys[anchor_rows(cfg, origins, outputs)]
    vol = volatility(values[:, columns.index(target)], origins, cfg.window)
    return Prepared(torch.tensor(x, dtype=torch.float32), y, origins, vol)


def volatility(y: np.ndarray, origins: np.ndarray, window: int) -> np.ndarray:
    """RMS of the target's one-step changes inside each window (M,): the scale of its intervals."""
    dy = np.diff(y, prepend=y[0])
    k = max(window - 1, 1)
    return np.sqrt(np.mean(windows(dy, origins, k) ** 2, axis=1))


def anchor_rows(cfg: ForecastConfig, origins: np.ndarray, outputs: int) -> np.ndarray:
    """(M,) origins -> (M, S) the rows a change is measured from: the origin itself (--anchor last,
    the naive forecast), or the same point of the last season known at the origin (season: the
    seasonal naive forecast, row o + h - s * ceil(h / s)). An unresolved `auto` counts as last
    (models saved before the option existed)."""
    S = steps(cfg, outputs)
    s = cfg.season or 1
    back = s * np.ceil(S / s).astype(int) if cfg.anchor == "season" and s > 1 else S
    return origins[:, None] + (S - back)[None, :]


def choose_anchor(y: np.ndarray, n_train: int, cfg: ForecastConfig) -> str:
    """--anchor auto: season when the seasonal naive forecast's mean absolute error over steps
    1..H on the training rows is below the naive forecast's, else last."""
    s, H = cfg.season or 1, cfg.horizon
    if s <= 1 or n_train < s * (1 + int(np.ceil(H / s))) + 1:
        return "last"
    cut = s * int(np.ceil(H / s))                       # the first row every step can anchor at
    rows = np.arange(cut, n_train)
    err = {"last": 0.0, "season": 0.0}
    for h in range(1, H + 1):
        err["last"] += np.mean(np.abs(y[rows] - y[rows - h]))
        err["season"] += np.mean(np.abs(y[rows] - y[rows - s * int(np.ceil(h / s))]))
    return "season" if err["season"] < err["last"] else "last"


def to_units(out: np.ndarray, y: np.ndarray, target_lo: float, span: float, cfg: ForecastConfig,
             origins: np.ndarray) -> np.ndarray:
    """Model outputs (M, S) -> forecasts in the target's units (M, S)."""
    if cfg.target_mode == "change":
        return y[anchor_rows(cfg, origins, out.shape[1])] + out * span
    return target_lo + out * span


def train_origins(n_train: int, cfg: ForecastConfig, outputs: int) -> np.ndarray:
    """Origins whose every target lies in the train part."""
    return np.arange(cfg.window - 1, n_train - int(steps(cfg, outputs).max()))


def min_rows(cfg: ForecastConfig) -> int:
    """The fewest rows giving one training window and one test row."""
    n = cfg.window + cfg.horizon + 1
    while n - split_point(n, cfg.test_fraction) < 1 or split_point(n, cfg.test_fraction) < cfg.window + cfg.horizon:
        n += 1
    return n


def split_point(n: int, test_fraction: float) -> int:
    """Rows [0, n_train) train, [n_train, n) test."""
    return int(round(n * (1 - test_fraction)))


def check_length(n: int, cfg: ForecastConfig, where: str) -> int:
    n_train = split_point(n, cfg.test_fraction)
    if n_train < cfg.window + cfg.horizon or n - n_train < 1:
        raise UsageError(f"{where}: {n} rows are too few for --window {cfg.window}, --horizon "
                         f"{cfg.horizon} and --test-fraction {cfg.test_fraction}; need at least "
                         f"{min_rows(cfg)} rows")
    return n_train
