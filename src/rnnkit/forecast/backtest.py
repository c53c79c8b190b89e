"""Rolling-origin evaluation (`--backtest K`): K expanding folds over the end of the series.

    rows   0 ................ c1 | c1 .. c1+S | ...              (S = --step rows per fold)
    fold 1 [ fit here        ]   [ test 1   ]
    fold 2 [ fit here                        ][ test 2 ] ...
    fold K ................................................[ test K ] N

Fold k is cut from the rows before its test part ends (it never holds a later row); its model
and scaler are fitted on the rows before c_k. Without --refit one model is fitted before the
first fold and scored on every fold (the classical yardsticks likewise); with --refit each fold
fits afresh. The same baselines are scored on every fold.
"""
from __future__ import annotations

import statistics
from typing import Callable, Optional

import numpy as np

from ..core.config import ForecastConfig, UsageError
from .fit import Fitted, fit_parts, make_part, score_part
from .seasons import Frequency
from .series import Series


def head(s: Series, end: int) -> Series:
    """The series' rows [0, end) only."""
    return Series(s.name, s.columns, s.values[:end], None if s.dates is None else s.dates[:end],
                  None if s.lines is None else s.lines[:end], s.key, list(s.notes))


def fold_step(n_test: int, cfg: ForecastConfig) -> int:
    """Rows per fold: --step, or the test part split into --backtest folds (refused when that
    leaves a fold without rows: said before any training, issue 26)."""
    if cfg.step:
        return cfg.step
    if n_test // cfg.backtest < 1:
        raise UsageError(f"--backtest {cfg.backtest}: the test part has {n_test} rows, fewer than one per fold; "
                         f"use at most --backtest {max(n_test, 1)}, or give --step N rows per fold")
    return n_test // cfg.backtest


def folds(n: int, n_test: int, cfg: ForecastConfig) -> list[tuple[int, int]]:
    """(cut, end) per fold: train rows [0, cut), test rows [cut, end)."""
    k, step = cfg.backtest, fold_step(n_test, cfg)
    first = n - k * step
    if first < cfg.window + cfg.horizon:
        how = f"with --step {step} leaves" if cfg.step else f"folds of {step} rows (the test part split {k} ways) leave"
        raise UsageError(f"--backtest {k} {how} {max(first, 0)} rows before the first fold; "
                         f"need at least {cfg.window + cfg.horizon}: use fewer folds"
                         f"{' or a smaller --step' if cfg.step else ''}")
    return [(first + i * step, first + (i + 1) * step) for i in range(k)]


def run_backtest(cfg: ForecastConfig, series: Series, feats: list[str], target: str, n_test: int,
                 freq: Optional[Frequency], log: Callable[[str], None] = print) -> dict:
    """Each fold's model, naive and baseline errors and skill, and their means."""
    out, fitted, fit_cut = [], None, None
    quiet = lambda m: None  # noqa: E731 (the main run already logged the epochs)
    for i, (cut, end) in enumerate(folds(len(series.values), n_test, cfg), start=1):
        sub = head(series, end)
        if cfg.refit or fitted is None:
            part = make_part(sub, cut, cfg, freq)
            fitted: Fitted = fit_parts(cfg, [part], feats, target, quiet, freq)
            fit_cut, scaler = cut, part.scaler
        else:
            part = make_part(sub, cut, cfg, freq, scaler)
        sc = score_part(fitted, part, np.arange(cut, end), classic_n_train=fit_cut)
        out.append({"fold": i, "train_rows": fit_cut, "test_first_row": cut, "test_rows": end - cut,
                    "model": sc.model, "naive": sc.baseline, "skill": sc.skill,
                    "baselines": {k: v["rmse"] for k, v in sc.baselines.items()},
                    "mase": {"model": sc.model.get("mase"), **{k: v.get("mase") for k, v in sc.baselines.items()}},
                    "intervals": {k: v.get("coverage") for k, v in sc.intervals.items()}})
        log(f"backtest fold {i}: rows {cut}..{end - 1}, RMSE {sc.model['rmse']:.4g}, naive {sc.baseline['rmse']:.4g}")
    skills = [f["skill"] for f in out if f["skill"] is not None]
    mean = {"model_rmse": statistics.fmean(f["model"]["rmse"] for f in out),
            "naive_rmse": statistics.fmean(f["naive"]["rmse"] for f in out),
            "skill": statistics.fmean(skills) if skills else None,
            "mase": {k: _mean([f["mase"].get(k) for f in out]) for k in out[0]["mase"]}}
    return {"folds": out, "step": out[0]["test_rows"], "refit": cfg.refit, "mean": mean}


def _mean(values: list) -> Optional[float]:
    """The mean over the folds, None when a fold has no value (a yardstick missing there)."""
    return None if any(v is None for v in values) else statistics.fmean(values)
