"""A forecaster on disk: the run directory's files, the saved model, and forecasts from it.

    RUN_DIR/forecast.safetensors   weights (every ensemble member) + JSON meta: resolved config,
                                   columns, train-only scaler, interval calibration
    RUN_DIR/metrics.json           the --json object (strict JSON)
    RUN_DIR/predictions.csv        per test row: date, truth, forecast, naive, interval bounds
    RUN_DIR/future.csv             the H steps after the last row (forecast_future.py)
    RUN_DIR/forecast.png           the picture (plots.plot_forecast)

A checkpoint from rnnkit 0.1 (one model, level inputs, one output at step H) still loads.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..core.checkpoint import CheckpointError, Loaded, load_checkpoint, save_checkpoint, validate_forecast_meta
from ..core.config import ForecastConfig, UsageError, shown
from ..core.models import shapes_only
from .combine import MEMBERS, with_classics
from .inputs import Scaler, prepare, steps, to_units
from .intervals import bands, floor_vol
from .model import Ensemble, Forecaster, predict_scaled
from .seasons import calendar_features, infer_frequency
from .series import date_column, read_table, resolve, table_series

MODEL_FILE = "forecast.safetensors"
RUN_FILES = {MODEL_FILE, "metrics.json", "predictions.csv", "forecast.png", "future.csv"}


def check_out(out: str, force: bool) -> Path:
    """Refuse, before any work, an --out that is a file, a directory of other things, or a saved
    forecaster (unless --force)."""
    run = Path(out)
    if os.path.lexists(run) and not run.is_dir():
        raise UsageError(f"--out {shown(out)} is a file, not a run directory; choose a directory")
    if run.is_dir():
        names = {p.name for p in run.iterdir()}
        others = sorted(n for n in names if n not in RUN_FILES and not n.startswith("."))
        if others:
            raise UsageError(f"--out {shown(out)} is not empty and not a forecast run (it holds "
                             f"{shown(others[0])}); choose a new or empty directory")
        if MODEL_FILE in names and not force:
            raise UsageError(f"--out {shown(out)} already holds a forecaster; pass --force to replace it, "
                             "or choose another --out")
    return run


def save_forecaster(path: Path, model: Ensemble, scalers: list[Scaler], cfg: ForecastConfig,
                    feats: list[str], target: str, extra: Optional[dict] = None) -> None:
    meta = {"kind": "forecast", "config": cfg.to_dict(), "features": feats, "target": target,
            "columns": scalers[0].columns, "scaler": scalers[0].to_dict(), "format": 2,
            "outputs": model.outputs, "calendar": model.members[0].calendar, **(extra or {})}
    save_checkpoint(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)


def check_shapes(cfg: ForecastConfig, n: int, cal: int, outputs: int, state: dict) -> None:
    """The weights a config describes against those in the file, worked out on the meta device
    (nothing allocated): an edited size is refused before the model is built (issue 14)."""
    members = {int(key.split(".")[1]) for key in state if key.startswith("members.")}
    if members and max(members) >= len(state):      # an edited name: no member without weights
        raise ValueError(f"ensemble member {max(members)} named, {len(state)} weights present")
    with shapes_only():
        probe = Forecaster(cfg, n, cal, outputs) if not members else \
            Ensemble([Forecaster(cfg, n, cal, outputs) for _ in range(1 + max(members))])
    want = {k: tuple(v.shape) for k, v in probe.state_dict().items() if members or "scale" not in k}
    have = {k: tuple(v.shape) for k, v in state.items() if members or "scale" not in k}
    if want != have:
        diff = sorted(set(want.items()) ^ set(have.items()))[:2]
        raise ValueError(f"the weights do not match the config ({cfg.cell}, {cfg.layers} layers, hidden "
                         f"{cfg.hidden}, {n} features): " + "; ".join(f"{k} {s}" for k, s in diff))


def _rebuild(cfg: ForecastConfig, meta: dict, tensors: dict) -> torch.nn.Module:
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    outputs, cal = int(meta.get("outputs", 1)), int(meta.get("calendar", 0))
    n = len(meta["features"])
    check_shapes(cfg, n, cal, outputs, state)
    if not any(k.startswith("members.") for k in state):          # rnnkit 0.1: one plain model
        m = Forecaster(cfg, n, cal, outputs)
        state = {**{k: v for k, v in m.state_dict().items() if "scale" in k}, **state}
        m.load_state_dict(state)
        return m
    k = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("members."))
    model = Ensemble([Forecaster(cfg, n, cal, outputs) for _ in range(k)])
    model.load_state_dict(state)
    return model


def load_forecaster(target: str) -> Loaded:
    """A saved forecaster from a run directory (its forecast.safetensors) or the file itself."""
    p = Path(target)
    path = p / MODEL_FILE if p.is_dir() else p
    if not os.path.lexists(path):  # a symlink loop goes on to load_checkpoint, which names it
        raise UsageError(f"{shown(target)}: no forecast model here ({MODEL_FILE}); train one with "
                         f"`rnnkit forecast [CSV] --out {shown(target)}`")
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "forecast":
        raise CheckpointError(f"{path}: holds a {meta.get('kind')!r} model, not a forecaster")
    validate_forecast_meta(meta, path)  # field types first (issue 14); shapes in _rebuild, on "meta"
    try:
        d = dict(meta["config"])
        d.setdefault("inputs", "level")            # 0.1 models: level inputs, one model
        d.setdefault("ensemble", 1)
        d.setdefault("anchor", "last")            # before 0.4: changes from the last value
        cfg = ForecastConfig.from_dict(d, where=f"{path} config")
        model = _rebuild(cfg, meta, tensors)
        scaler = Scaler.from_dict(meta["scaler"])
        if not (len(scaler.lo) == len(scaler.hi) == len(scaler.columns)
                and set(meta["features"]) | {meta["target"]} <= set(scaler.columns)):
            raise ValueError("the scaler does not cover the features and the target")
        _check_weights(meta.get("combination"), model.outputs)
    except (UsageError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({str(e).splitlines()[0]})")
    return Loaded(model.eval(), cfg, meta, Path(path), scaler=scaler)


def _check_weights(w, outputs: int) -> None:
    """The combination weights (combine.py): member -> one finite number per output step."""
    if w is None:
        return
    if not (isinstance(w, dict) and "network" in w and set(w) <= set(MEMBERS) and all(
            isinstance(v, list) and len(v) == outputs and all(isinstance(x, (int, float)) and np.isfinite(x)
                                                              for x in v) for v in w.values())):
        raise ValueError(f"the combination weights must map {', '.join(MEMBERS)} to {outputs} numbers each")


def predictions_csv(res) -> str:
    """One line per test row (and series): date or row, truth, forecast, naive, interval bounds."""
    parts = res.parts or [res]
    keys = list(res.bands) if not res.parts else list(parts[0].bands)
    head = (["series"] if res.parts else []) + ["date" if parts[0].series.dates is not None else "row",
                                               "truth", "forecast", "naive"]
    head += [f"{side}_{k}" for k in keys for side in ("lower", "upper")]
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")      # quotes a series id holding , or " (issue 26)
    out.writerow(head)
    for p in parts:
        for i, r in enumerate(p.rows):
            when = str(p.series.dates[r]) if p.series.dates is not None else str(int(r))
            cells = ([p.series.key] if res.parts else []) + [when] + \
                [f"{v:.10g}" for v in (p.truth[i], p.pred[i], p.naive[i])]
            out.writerow(cells + [f"{p.bands[k][s][i]:.10g}" for k in keys for s in (0, 1)])
    return buf.getvalue()


def predict_file(run_dir: str, csv: str, columns: Optional[str] = None, date_col: Optional[str] = None,
                 reverse: bool = False, fill: Optional[str] = None, date_format: Optional[str] = None) -> dict:
    """Apply a saved forecaster to the rows of a CSV file, scaled with the saved training statistics.
    Returns one forecast per full window: {"target", "horizon", "forecasts": [{"line", "date",
    "last", "forecast", "steps", "intervals"}], "next": the forecast after the last row}."""
    rec = load_forecaster(run_dir)
    model, scaler, cfg, meta = rec
    if meta.get("panel"):
        raise UsageError(f"{shown(run_dir)}: a multi-series model (--id-column); --predict reads "
                         "one series at a time and does not support it yet")
    feats, target = meta["features"], meta["target"]
    tbl = read_table(csv, columns)
    dcol = date_column(tbl, date_col, csv)
    used = [resolve(c, tbl.header, "the saved model's columns", csv) for c in scaler.columns]
    series = table_series(tbl, used, dcol, reverse, fill or cfg.fill, date_format or cfg.date_format)
    series.columns = list(scaler.columns)                   # the saved spelling
    n = len(series.values)
    if n < cfg.window:
        raise UsageError(f"{csv}: {n} rows are too few for this model's window of {cfg.window}")
    cal = None
    if meta.get("calendar"):
        freq = infer_frequency(series.dates)
        if freq is None:
            raise UsageError(f"{csv}: this model uses calendar inputs; the rows need dates")
        periods = np.concatenate([freq.periods, freq.periods[-1] + np.arange(1, cfg.horizon + 2)])
        cal = calendar_features(freq, periods[1:])
    origins = np.arange(cfg.window - 1, n)
    outputs = getattr(model, "outputs", 1)
    d = prepare(series.values, series.columns, feats, target, scaler, cfg, origins, outputs, cal)
    y = series.column(target)
    i = scaler.columns.index(target)
    fc = to_units(predict_scaled(model, d.x), y, float(scaler.lo[i]), float(scaler.hi[i] - scaler.lo[i]), cfg, origins)
    weights = {k: np.asarray(w, float) for k, w in (meta.get("combination") or {}).items()}
    fc = with_classics(weights, fc, y, n, cfg.season or 1, origins, cfg.horizon, steps(cfg, outputs))
    qs = {k: np.asarray(v) for k, v in meta.get("intervals", {}).items()}
    vol = floor_vol(d.vol, float(meta.get("vol_ref", 1.0)))
    out = []
    for j, r in enumerate(origins):
        f = {"line": int(series.lines[r]), "date": str(series.dates[r]) if series.dates is not None else None,
             "last": float(y[r]), "forecast": float(fc[j, -1])}
        if outputs > 1:
            f["steps"] = [float(v) for v in fc[j]]
        if qs:
            f["intervals"] = {k: list(map(float, np.ravel(bands(fc[j, -1:], vol[j:j + 1], q[-1]))))
                              for k, q in qs.items()}
        out.append(f)
    return {"target": target, "horizon": cfg.horizon, "steps": [int(s) for s in steps(cfg, outputs)],
            "forecasts": out, "next": out[-1]["forecast"]}
