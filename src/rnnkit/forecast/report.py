"""What a forecast run reports: the typed result, its strict JSON, and the table with the verdict."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..core.config import ForecastConfig
from .series import Series

NAMES = {"naive": "naive (last value)", "seasonal_naive": "seasonal naive", "drift": "drift",
         "ets": "ETS", "arima": "ARIMA", "theta": "Theta", "comb": "Comb (ETS+ARIMA+Theta)"}


def jsonable(v: Any) -> Any:
    """Strict JSON values: numpy scalars to Python, a non-finite float to None."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def dumps(obj: Any, **kw) -> str:
    """json.dumps that can never print NaN or Infinity."""
    return json.dumps(jsonable(obj), allow_nan=False, **kw)


@dataclass
class ForecastResult:
    series: Series
    features: list[str]
    target: str
    n_train: int
    rows: np.ndarray            # test target rows
    truth: np.ndarray
    pred: np.ndarray
    naive: np.ndarray
    model: dict
    baseline: dict
    skill: Optional[float]      # None when the naive RMSE is 0 (the ratio is undefined)
    seconds: float
    run_dir: Optional[str] = None
    extra: dict = field(default_factory=dict)
    config: Optional[ForecastConfig] = None     # resolved: the window and season used
    baselines: dict = field(default_factory=dict)
    best_baseline: Optional[str] = None
    horizons: list = field(default_factory=list)
    intervals: dict = field(default_factory=dict)
    bands: dict = field(default_factory=dict)
    backtest: Optional[dict] = None
    frequency: Optional[str] = None
    gaps: int = 0                               # gaps found in the dates (missing steps)
    parts: list = field(default_factory=list)   # per-series results of a long-format file
    mean_steps: dict = field(default_factory=dict)  # name ("model", yardsticks) -> errors averaged over 1..H
    future: Optional[dict] = None               # the H steps after the last row (forecast_future.py)
    combination: Optional[dict] = None          # member weights and the network's own errors (combine.py)

    @property
    def beat_naive(self) -> bool:
        return self.skill is not None and self.skill > 0

    def best_by_mase(self) -> Optional[str]:
        """The yardstick with the lowest MASE at step H (None without a MASE scale)."""
        scored = [(d["mase"], k) for k, d in self.baselines.items() if d.get("mase") is not None]
        return min(scored)[1] if scored else None

    def best_rmse(self) -> Optional[float]:
        return self.baselines[self.best_baseline]["rmse"] if self.best_baseline else None

    def to_json(self) -> dict:
        c = self.config
        out = {"series": self.series.name, "target": self.target, "features": self.features,
               "rows": len(self.series.values), "train_rows": self.n_train, "test_rows": len(self.rows),
               "model": self.model, "naive": self.baseline, "skill": self.skill,
               "beat_naive": self.beat_naive, "seconds": self.seconds, "run_dir": self.run_dir}
        if self.skill is None:
            out["skill_reason"] = "the naive forecast is exact on the test part (RMSE 0)"
        best = self.best_rmse()
        out.update({"baselines": self.baselines, "best_baseline": self.best_baseline,
                    "beat_best_baseline": best is not None and self.model["rmse"] < best,
                    "intervals": self.intervals, "horizons": self.horizons, "backtest": self.backtest,
                    "window": c.window if c else None, "season": c.season if c else None,
                    "inputs": c.inputs if c else None, "ensemble": c.ensemble if c else None,
                    "horizon": c.horizon if c else None, "frequency": self.frequency, "gaps": self.gaps,
                    "notes": list(self.series.notes), "mean_over_steps": self.mean_steps,
                    "best_by_mase": self.best_by_mase(), "future": self.future,
                    "combination": self.combination})
        if self.parts:
            out["per_series"] = {p.series.key: {k: v for k, v in p.to_json().items()
                                                if k in ("rows", "train_rows", "test_rows", "model", "naive", "skill",
                                                         "beat_naive", "baselines", "best_baseline", "intervals",
                                                         "mean_over_steps", "best_by_mase", "future")}
                                 for p in self.parts}
            out["series_count"] = len(self.parts)
        return jsonable(out)


def _row(name: str, d: dict) -> str:
    if d.get("rmse") is None:
        return f"{name:<24}{'n/a':>12}  ({d.get('reason', 'undefined')})"
    mape = f"{d['mape']:.2f}%" if d.get("mape") is not None else "n/a"
    smape = f"{d['smape']:.2f}%" if d.get("smape") is not None else "n/a"
    mase = f"{d['mase']:.3f}" if d.get("mase") is not None else "n/a"
    return f"{name:<24}{d['rmse']:>12.4g}{d['mae']:>12.4g}{mape:>10}{smape:>9}{mase:>8}"


def _mase_line(res: ForecastResult) -> Optional[str]:
    """The verdict by the scale-free error: the best yardstick by MASE at step H and over 1..H."""
    best, m = res.best_by_mase(), res.model.get("mase")
    if best is None or m is None:
        return None
    b = res.baselines[best]["mase"]
    line = (f"By MASE at step {res.config.horizon if res.config else 1}: the model {m:.3f}, the best yardstick "
            f"{NAMES.get(best, best)} {b:.3f} ({'model ahead' if m < b else 'the yardstick ahead'})")
    means = {k: v.get("mase") for k, v in res.mean_steps.items() if v.get("mase") is not None}
    if len(res.horizons) > 1 and "model" in means and len(means) > 1:
        mb = min((v, k) for k, v in means.items() if k != "model")
        line += (f"; mean over steps 1..{len(res.horizons)}: the model {means['model']:.3f}, the best "
                 f"{NAMES.get(mb[1], mb[1])} {mb[0]:.3f}")
    return line + "."


def verdict(res: ForecastResult) -> list[str]:
    if res.skill is None:
        return [f"skill undefined: the naive forecast is exact on the test part (RMSE 0); the model's "
                f"RMSE is {res.model['rmse']:.4g}."]
    lines = [f"skill = 1 - RMSE_model / RMSE_naive = {res.skill:+.4f}"]
    if res.skill >= 0.01:
        lines.append(f"The model beat the naive forecast (\"next value = last value\"): RMSE {res.skill:.1%} lower.")
    elif res.beat_naive:
        lines.append(f"The model beat the naive forecast by only {res.skill:.2%} in RMSE: practically a tie; "
                     "it adds next to nothing over repeating the last value.")
    else:
        lines.append("The model did NOT beat the naive forecast (\"next value = last value\"): " +
                     (f"its RMSE is {-res.skill:.1%} higher; repeating the last value is the better forecast."
                      if res.skill < 0 else "the same RMSE as repeating the last value."))
    best = res.best_rmse()
    if res.best_baseline and res.best_baseline != "naive" and best is not None:
        name = NAMES.get(res.best_baseline, res.best_baseline)
        if best == 0:
            lines.append(f"The best yardstick, {name}, is exact on the test part (RMSE 0).")
        elif res.model["rmse"] < best:
            lines.append(f"It also beat the best yardstick, {name}: RMSE {1 - res.model['rmse'] / best:.1%} lower.")
        else:
            lines.append(f"The best yardstick is {name}; the model did NOT beat it: RMSE "
                         f"{res.model['rmse'] / best - 1:.1%} higher.")
    mase = _mase_line(res)
    return lines + ([mase] if mase else [])


def table(res: ForecastResult) -> str:
    """The model against the baselines on the test part, and a plain verdict."""
    h = res.config.horizon if res.config else 1
    lines = [f"test part: {len(res.rows)} rows, errors in {res.target}'s units"
             + (f", {h} steps ahead" if h > 1 else ""),
             f"{'':<24}{'RMSE':>12}{'MAE':>12}{'MAPE':>10}{'sMAPE':>9}{'MASE':>8}", _row("model", res.model),
             *([_row("  the network alone", res.combination["network"])] if res.combination else []),
             _row(NAMES["naive"], res.baseline)]
    for name, d in res.baselines.items():
        if name != "naive":
            lines.append(_row(NAMES.get(name, name), d))
    lines += verdict(res)
    for key, iv in res.intervals.items():
        if iv.get("coverage") is None:
            lines.append(f"{key}% interval: not available ({iv.get('reason')})")
        else:
            lines.append(f"{key}% interval: covered {iv['coverage']:.1f}% of the test rows, mean width "
                         f"{iv['mean_width']:.4g}")
    if len(res.horizons) > 1:
        lines.append("per step: " + ", ".join(
            f"{d['step']}: RMSE {d['model']['rmse']:.4g} (naive {d['naive']['rmse']:.4g})" for d in res.horizons))
    lines += future_lines(res)
    if res.backtest:
        b = res.backtest
        how = "refit" if b["refit"] else "one model"
        lines.append(f"backtest, {len(b['folds'])} folds of {b['step']} rows ({how}): "
                     f"mean RMSE {b['mean']['model_rmse']:.4g}, naive {b['mean']['naive_rmse']:.4g}, "
                     f"mean skill {_fmt(b['mean']['skill'])}")
    return "\n".join(lines)


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:+.4f}"


def future_lines(res: ForecastResult) -> list[str]:
    """The forecast after the last row as a short table (panels: one block per series)."""
    out = []
    for r in (res.parts or [res]):
        f = r.future
        if not f:
            continue
        keys = [k for k in f["steps"][0] if k.startswith(("lower_", "upper_"))]
        after = f["after"] if isinstance(f["after"], str) else f"row {f['after']}"
        out.append(f"future{' of ' + r.series.key if res.parts else ''}: {len(f['steps'])} step(s) after {after}, "
                   f"refitted on all {f['rows']} rows (epochs {', '.join(map(str, f['epochs']))})")
        out.append(f"  {'date' if f['steps'][0]['date'] else 'step':<20}{'forecast':>12}" +
                   "".join(f"{k.replace('_', ' '):>12}" for k in keys))
        for d in f["steps"]:
            out.append(f"  {d['date'] or str(d['step']):<20}{d['forecast']:>12.6g}" +
                       "".join(f"{d[k]:>12.6g}" for k in keys))
    return out
