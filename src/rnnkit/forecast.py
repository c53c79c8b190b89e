"""Forecasting a numeric series honestly: a recurrent model against the naive forecast.

    rnnkit forecast                                   # the built-in GOOG daily series
    rnnkit forecast prices.csv --target Close --out runs/prices --json
    rnnkit forecast ../shared/data/stock_daily.csv --reverse    # newest-first file without dates
    rnnkit forecast --predict runs/prices new_rows.csv

The rows are split in time, train first, test last:

    rows   0 ............................ n_train-1 | n_train ............ N-1
           [ scaler fitted here, train targets ]    | [ test targets ]
    window ending at row t (rows t-W+1..t, all features) -> target at row t+H

Every test row is the target of exactly one window; that window may start in the train part
(the past is known at forecast time) but nothing from the test part reaches the scaler or the
weights. The naive forecast for row t+H is the target at row t ("tomorrow = today").
With --target-mode change the model predicts the scaled change y[t+H] - y[t] and the forecast is
y[t] + change, so the model only has to learn a correction to the naive forecast.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, validate_forecast_meta
from .config import ForecastConfig, UsageError
from .models import make_rnn
from .train import torch_threads
from .series import Series, load_series, read_table, table_series, date_column, resolve

MODEL_FILE = "forecast.safetensors"


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
                                 "training rows, so it cannot be scaled; leave it out of --features")
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


class Forecaster(nn.Module):
    """(B, W, F) windows -> fused recurrent stack -> last step's hidden (B, H) -> linear -> (B,)."""

    def __init__(self, features: int, cell: str = "lstm", hidden: int = 32, layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.rnn = make_rnn(cell, features, hidden, layers, dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)                  # (B, W, H)
        return self.head(out[:, -1]).squeeze(-1)


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


def windows(x: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """x (N, F), window end rows (M,) -> (M, W, F): rows end-W+1 .. end of each."""
    offsets = np.arange(-window + 1, 1)
    return x[ends[:, None] + offsets[None, :]]


def naive_forecast(y: np.ndarray, targets: np.ndarray, horizon: int) -> np.ndarray:
    """The last value known at forecast time: y[t - H] for each target row t."""
    return y[targets - horizon]


def metrics(truth: np.ndarray, pred: np.ndarray) -> dict:
    """RMSE and MAE in the target's units, MAPE in percent (None if a true value is 0)."""
    err = pred - truth
    mape = float(np.mean(np.abs(err / truth)) * 100) if np.all(truth != 0) else None
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))), "mape": mape}


@dataclass
class Prepared:
    """A series cut into scaled windows: inputs (M, W, F), scaled targets (M,), target rows (M,)."""

    x: torch.Tensor
    y: torch.Tensor
    rows: np.ndarray


def prepare(series: Series, feats: list[str], target: str, scaler: Scaler, cfg: ForecastConfig,
            rows: np.ndarray) -> Prepared:
    """Windows whose targets are `rows` (each row >= W-1+H)."""
    scaled = scaler.transform(series.values)                 # (N, C) in scaler.columns order
    x = scaled[:, [scaler.columns.index(f) for f in feats]]
    ys = scaled[:, scaler.columns.index(target)]
    y = ys[rows] - ys[rows - cfg.horizon] if cfg.target_mode == "change" else ys[rows]
    xw = windows(x, rows - cfg.horizon, cfg.window)
    return Prepared(torch.tensor(xw, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), rows)


def to_units(scaled: np.ndarray, series: Series, target: str, scaler: Scaler, cfg: ForecastConfig,
             rows: np.ndarray) -> np.ndarray:
    """Model outputs -> forecasts in the target's units."""
    span, lo = scaler.span(target), scaler.lo[scaler.columns.index(target)]
    if cfg.target_mode == "change":
        return series.column(target)[rows - cfg.horizon] + scaled * span
    return lo + scaled * span


def train(model: nn.Module, data: Prepared, cfg: ForecastConfig,
          log: Callable[[str], None] = print) -> list[float]:
    """Adam on the mean squared error of the scaled targets; shuffled mini-batches from `cfg.seed`.

    With cfg.val_fraction > 0 the chronologically last windows of the training part are held out
    and the weights of the epoch with the lowest validation error are kept (the test part is never
    looked at). Returns the training loss per epoch."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    m = len(data.y)
    n_val = min(m - 1, round(m * cfg.val_fraction)) if cfg.val_fraction else 0
    m -= n_val                                      # windows [0, m) train, [m, m + n_val) validation
    xv, yv = data.x[m:], data.y[m:]
    batch = cfg.batch or m
    history, best = [], (math.inf, 0, None)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(m, generator=gen)
        total = 0.0
        for i in range(0, m, batch):
            idx = perm[i: i + batch]
            loss = nn.functional.mse_loss(model(data.x[idx]), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / m)
        note = ""
        if n_val:
            val = float(np.mean((predict_scaled(model, xv) - yv.double().numpy()) ** 2))
            if val < best[0]:
                best = (val, epoch, {k: v.clone() for k, v in model.state_dict().items()})
            note = f" - val mse {val:.6f}"
        if epoch in (1, cfg.epochs) or epoch % max(1, cfg.epochs // 5) == 0:
            log(f"epoch {epoch}/{cfg.epochs} - train mse (scaled) {history[-1]:.6f}{note}")
    if best[2] is not None:
        model.load_state_dict(best[2])
        log(f"kept epoch {best[1]}: lowest mse on the last {n_val} training windows ({best[0]:.6f})")
    model.eval()
    return history


@torch.no_grad()
def predict_scaled(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    return model(x).double().numpy()


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
    skill: float
    seconds: float
    run_dir: Optional[str] = None
    extra: dict = field(default_factory=dict)

    @property
    def beat_naive(self) -> bool:
        return self.skill > 0

    def to_json(self) -> dict:
        return {"series": self.series.name, "target": self.target, "features": self.features,
                "rows": len(self.series.values), "train_rows": self.n_train, "test_rows": len(self.rows),
                "model": self.model, "naive": self.baseline, "skill": self.skill,
                "beat_naive": self.beat_naive, "seconds": self.seconds, "run_dir": self.run_dir}


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def check_forecast_memory(cfg: ForecastConfig, n_features: int, n_windows: int) -> None:
    """models.check_memory for the forecaster: a recurrent stack over the features, one output."""
    from .config import ModelConfig
    from .models import check_memory
    like = ModelConfig(vocab_size=n_features, cell=cfg.cell, layers=cfg.layers, hidden=cfg.hidden, embed=0)
    check_memory(like, min(cfg.batch or n_windows, n_windows) or 1, cfg.window)


def fit_forecast(cfg: ForecastConfig, series: Series, feats: list[str], target: str,
                 log: Callable[[str], None] = print) -> tuple[Forecaster, Scaler, ForecastResult]:
    """Split, scale on the train part, train, and score model and naive forecast on the test part."""
    cfg.validate()
    t0 = time.perf_counter()
    n = len(series.values)
    n_train = check_length(n, cfg, series.name)
    scaler = Scaler.fit(series.values[:n_train], series.columns, series.name)
    first = cfg.window - 1 + cfg.horizon                     # first row that can be a target
    train_data = prepare(series, feats, target, scaler, cfg, np.arange(first, n_train))
    test_data = prepare(series, feats, target, scaler, cfg, np.arange(n_train, n))
    seed_all(cfg.seed)
    check_forecast_memory(cfg, len(feats), len(train_data.y))
    model = Forecaster(len(feats), cfg.cell, cfg.hidden, cfg.layers, cfg.dropout)
    if cfg.target_mode == "change":             # start from the naive forecast: a change of zero
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
    log(f"{series.name}: {n} rows; train {n_train} rows ({len(train_data.y)} windows), test {n - n_train} rows; "
        f"window {cfg.window} x {len(feats)} features -> {target} {cfg.horizon} step(s) ahead")
    with torch_threads(cfg.threads):
        train(model, train_data, cfg, log)
        scaled = predict_scaled(model, test_data.x)
    rows = test_data.rows
    y = series.column(target)
    pred = to_units(scaled, series, target, scaler, cfg, rows)
    naive = naive_forecast(y, rows, cfg.horizon)
    m, b = metrics(y[rows], pred), metrics(y[rows], naive)
    skill = 1 - m["rmse"] / b["rmse"] if b["rmse"] > 0 else (0.0 if m["rmse"] == 0 else -math.inf)
    res = ForecastResult(series, feats, target, n_train, rows, y[rows], pred, naive, m, b, skill,
                         time.perf_counter() - t0)
    return model, scaler, res


def table(res: ForecastResult) -> str:
    """The model against the naive forecast on the test part, and a plain verdict."""
    def row(name: str, d: dict) -> str:
        mape = f"{d['mape']:.2f}%" if d["mape"] is not None else "n/a"
        return f"{name:<22}{d['rmse']:>12.4g}{d['mae']:>12.4g}{mape:>10}"
    lines = [f"test part: {len(res.rows)} rows, errors in {res.target}'s units",
             f"{'':<22}{'RMSE':>12}{'MAE':>12}{'MAPE':>10}",
             row("model", res.model), row("naive (last value)", res.baseline),
             f"skill = 1 - RMSE_model / RMSE_naive = {res.skill:+.4f}"]
    if res.skill >= 0.01:
        lines.append(f"The model beat the naive forecast (\"next value = last value\"): RMSE {res.skill:.1%} lower.")
    elif res.beat_naive:
        lines.append(f"The model beat the naive forecast by only {res.skill:.2%} in RMSE: practically a tie; "
                     "it adds next to nothing over repeating the last value.")
    else:
        lines.append("The model did NOT beat the naive forecast (\"next value = last value\"): " +
                     (f"its RMSE is {-res.skill:.1%} higher; repeating the last value is the better forecast."
                      if res.skill < 0 else "the same RMSE as repeating the last value."))
    return "\n".join(lines)


def save_forecaster(path: Path, model: Forecaster, scaler: Scaler, cfg: ForecastConfig,
                    feats: list[str], target: str) -> None:
    meta = {"kind": "forecast", "config": cfg.to_dict(), "features": feats, "target": target,
            "columns": scaler.columns, "scaler": scaler.to_dict()}
    save_checkpoint(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)


def load_forecaster(target: str) -> tuple[Forecaster, Scaler, ForecastConfig, dict]:
    """A saved forecaster from a run directory (its forecast.safetensors) or the file itself."""
    p = Path(target)
    path = p / MODEL_FILE if p.is_dir() else p
    if not os.path.lexists(path):  # a symlink loop goes on to load_checkpoint, which names it
        raise UsageError(f"{target}: no forecast model here ({MODEL_FILE}); train one with "
                         f"`rnnkit forecast [CSV] --out {target}`")
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "forecast":
        raise CheckpointError(f"{path}: holds a {meta.get('kind')!r} model, not a forecaster")
    validate_forecast_meta(meta, path, tensors)  # types and sizes, before anything is built
    try:
        cfg = ForecastConfig.from_dict(meta["config"], where=f"{path} config")
        model = Forecaster(len(meta["features"]), cfg.cell, cfg.hidden, cfg.layers, cfg.dropout)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        scaler = Scaler.from_dict(meta["scaler"])
        if not (len(scaler.lo) == len(scaler.hi) == len(scaler.columns)
                and set(meta["features"]) | {meta["target"]} <= set(scaler.columns)):
            raise ValueError("the scaler does not cover the features and the target")
    except (UsageError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({str(e).splitlines()[0]})")
    return model.eval(), scaler, cfg, meta


def run_forecast(cfg: ForecastConfig, csv: Optional[str] = None, out: Optional[str] = None,
                 log: Callable[[str], None] = print) -> ForecastResult:
    """The whole command: read, fit, score; with `out`, save the model, forecast.png and metrics."""
    series, feats, target = load_series(csv, cfg.target, cfg.features, cfg.columns, cfg.date_column,
                                        cfg.reverse)
    model, scaler, res = fit_forecast(cfg, series, feats, target, log)
    if out:
        from .plots import plot_forecast
        run = Path(out)
        run.mkdir(parents=True, exist_ok=True)
        save_forecaster(run / MODEL_FILE, model, scaler, cfg, feats, target)
        x = series.dates if series.dates is not None else np.arange(len(series.values))
        plot_forecast(run / "forecast.png", x, series.column(target), res.n_train, res.rows, res.pred,
                      res.naive, f"{Path(series.name).name}: {target}, {cfg.horizon} step(s) ahead, "
                      f"skill {res.skill:+.3f}", target)
        res.run_dir = str(run)
        (run / "metrics.json").write_text(json.dumps(res.to_json(), indent=1) + "\n")
    return res


def predict_file(run_dir: str, csv: str, columns: Optional[str] = None, date_col: Optional[str] = None,
                 reverse: bool = False) -> dict:
    """Apply a saved forecaster to the rows of a CSV file, scaled with the saved training statistics.
    Returns one forecast per full window: {"target", "horizon", "forecasts": [{"line", "date",
    "last", "forecast"}], "next": the forecast after the last row}."""
    model, scaler, cfg, meta = load_forecaster(run_dir)
    feats, target = meta["features"], meta["target"]
    tbl = read_table(csv, columns)
    dcol = date_column(tbl.header, date_col, csv)
    used = [resolve(c, tbl.header, "the saved model's columns", csv) for c in scaler.columns]
    series = table_series(tbl, used, dcol, reverse)
    series.columns = list(scaler.columns)                   # the saved spelling
    n = len(series.values)
    if n < cfg.window:
        raise UsageError(f"{csv}: {n} rows are too few for this model's window of {cfg.window}")
    rows = np.arange(cfg.window - 1, n) + cfg.horizon         # target rows, possibly past the end
    x = torch.tensor(windows(scaler.transform(series.values)[:, [scaler.columns.index(f) for f in feats]],
                            rows - cfg.horizon, cfg.window), dtype=torch.float32)
    fc = to_units(predict_scaled(model, x), series, target, scaler, cfg, rows)
    last = series.column(target)[rows - cfg.horizon]
    out = []
    for i, r in enumerate(rows - cfg.horizon):
        out.append({"line": int(series.lines[r]), "date": str(series.dates[r]) if series.dates is not None else None,
                    "last": float(last[i]), "forecast": float(fc[i])})
    return {"target": target, "horizon": cfg.horizon, "forecasts": out, "next": out[-1]["forecast"]}
