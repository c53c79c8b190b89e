"""The forecast people came for: the H steps after the last row, from a model refitted on every row.

    rows   0 ........................................ N-1 | N .. N+H-1
           [ evaluation: fit on the first 70%, score the rest ]
           [ refit: every row, same settings, each member  ]  [ future ]
             trained for the epochs it kept in the evaluation

No rows are left over after the refit to pick an epoch or calibrate the intervals, so both come
from the evaluation: the epochs it kept, and conformal quantiles (scale-free: multiples of a
window's typical change) of every out-of-sample error it saw, the training tail's windows and the
test part's rows together: the tail alone is short (12-95 windows on 24 textbook series, too few
for a 95% band on 5 of them) and older than the rows the future follows. Scored on the season
after 3 earlier cuts of each (benchmarks/forecast_future_check.py), the 80% bands covered 78.7% of
600 rows (78.2% from the tail alone) and the 95% bands 91.3%, now on every series (90.8% of the
456 rows that had one).
The bands are the forecast +- q(step) * the last window's volatility.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from typing import Callable, Optional

import numpy as np

from ..core.update import torch_threads
from .combine import with_classics
from .fit import Fitted, Part, _lo_span, fit_parts, make_part
from .inputs import prepare, steps, to_units
from .intervals import bands, floor_vol, level_key, quantiles
from .model import predict_scaled
from .seasons import Frequency, future_dates, infer_frequency
from .series import Series


def refit_all(fitted: Fitted, panel: list[Series], log: Callable[[str], None] = print,
              test_scores: Optional[np.ndarray] = None) -> tuple[Fitted, list[Part]]:
    """The evaluation's settings on every row of every series, its epochs, and bands calibrated on
    its out-of-sample scores: the tail's (fitted.scores) and the test part's (rows, S)."""
    cfg = fitted.cfg
    parts = [make_part(s, len(s.values), cfg, fitted.freq) for s in panel]
    epochs = fitted.model.epochs
    log(f"refit on all {sum(len(s.values) for s in panel)} rows for the future: epochs {', '.join(map(str, epochs))} "
        "(kept in the evaluation)")
    again = fit_parts(dataclasses.replace(cfg, val_fraction=0.0), parts, fitted.feats, fitted.target,
                      lambda m: None, fitted.freq, epochs)
    q, note, pooled = fitted.quantiles, fitted.interval_note, fitted.scores
    if fitted.scores is not None and test_scores is not None and len(test_scores):
        pooled = np.concatenate([fitted.scores, test_scores])
        q, note = quantiles(pooled, cfg.level)
        log(f"future intervals: calibrated on {len(pooled)} out-of-sample windows ({len(fitted.scores)} "
            f"from the training tail, {len(test_scores)} from the test part)")
    return dataclasses.replace(again, cfg=cfg, quantiles=q, interval_note=note, weights=fitted.weights,
                               scores=pooled), parts


def future_of(f: Fitted, p: Part, epochs: list[int]) -> dict:
    """The H steps after p's last row: step, date (None for undated rows), forecast, bounds."""
    cfg, n = f.cfg, len(p.series.values)
    o = np.array([n - 1])
    d = prepare(p.series.values, p.series.columns, f.feats, f.target, p.scaler, cfg, o, f.model.outputs, p.calendar)
    y = p.series.column(f.target)
    with torch_threads(cfg.threads):
        fc = to_units(predict_scaled(f.model, d.x), y, *_lo_span(p, f.target), cfg, o)[0]     # (S,)
    S = steps(cfg, f.model.outputs)
    # the classical members refitted on every row, weighted as in the evaluation
    fc = with_classics(f.weights, fc[None, :], y, n, cfg.season or 1, o, cfg.horizon, S)[0]
    vol = floor_vol(d.vol, f.vol_ref)                                                         # (1,)
    dates = _dates(p.series, f.freq, int(S.max()))
    out = []
    for j, h in enumerate(S):
        row = {"step": int(h), "date": None if dates is None else str(dates[h - 1]), "forecast": float(fc[j])}
        for level in cfg.level:
            if level in f.quantiles:
                lo, hi = bands(fc[j:j + 1], vol, f.quantiles[level][j])
                row[f"lower_{level_key(level)}"], row[f"upper_{level_key(level)}"] = float(lo[0]), float(hi[0])
        out.append(row)
    after = str(p.series.dates[-1]) if p.series.dates is not None else n - 1
    res = {"after": after, "rows": n, "epochs": epochs, "steps": out,
           "calibration_windows": None if f.scores is None else len(f.scores)}
    if any(level not in f.quantiles for level in cfg.level):
        res["intervals_note"] = f.interval_note
    return res


def _dates(s: Series, freq: Optional[Frequency], horizon: int) -> Optional[np.ndarray]:
    own = infer_frequency(s.dates)                  # a panel's series may be shorter than the first
    if own is None:
        return None
    return future_dates(s.dates, own if freq is None else dataclasses.replace(freq, name=own.name), horizon)


def add_future(res, panel: list[Series], log: Callable[[str], None] = print) -> None:
    """Refit, forecast every series' future into res (and its parts); the refitted model and
    scalers go to res.extra for saving."""
    fitted = res.extra["fitted"]
    again, parts = refit_all(fitted, panel, log, res.extra.get("test_scores"))
    epochs = fitted.model.epochs
    futures = [future_of(again, p, epochs) for p in parts]
    if res.parts:
        for r, fut in zip(res.parts, futures):
            r.future = fut
        res.future = {"per_series": {p.series.key: fut for p, fut in zip(parts, futures)}}
    else:
        res.future = futures[0]
    res.extra.update(refitted=again, refit_scalers=[p.scaler for p in parts])


def future_csv(res) -> str:
    """future.csv: [series,] date or step, forecast, the bounds of each level (the csv module)."""
    results = res.parts or [res]
    first = results[0].future["steps"]
    bounds = [k for k in first[0] if k.startswith(("lower_", "upper_"))]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow((["series"] if res.parts else []) + ["date" if first[0]["date"] else "step", "forecast"] + bounds)
    for r in results:
        for d in r.future["steps"]:
            w.writerow(([r.series.key] if res.parts else []) + [d["date"] or d["step"], f"{d['forecast']:.10g}"]
                       + [f"{d[k]:.10g}" for k in bounds])
    return buf.getvalue()

