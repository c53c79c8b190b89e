"""Fitting a forecaster on the training parts of one or more series, and scoring it on test rows.

    parts = [make_part(series, n_train, cfg, freq)]       # scaler fitted on rows < n_train
    fitted = fit_parts(cfg, parts, feats, target)          # ensemble + interval calibration
    scored = score_part(fitted, parts[0], rows)            # forecasts, baselines, intervals, per step

Several parts (a long-format file) train one global model: each series keeps its own scaler, and
the scale-free inputs make their windows comparable.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..core.config import ForecastConfig, UsageError
from ..core.update import torch_threads
from .baselines import best_of, mase_scale, mean_metrics, metrics, simple_baselines, skill
from .classic import CLASSIC, ClassicFit, forecasts_for
from .combine import choose_weights, combine
from .combine import members as classic_members
from .inputs import Scaler, choose_anchor, prepare, split_point, steps, to_units, train_origins
from .intervals import bands, coverage, floor_vol, level_key, quantiles, scores
from .model import Ensemble, fit_ensemble, predict_scaled
from .seasons import Frequency, calendar_features, default_window, infer_frequency
from .series import Series


@dataclass
class Part:
    """One series cut in time: rows [0, n_train) fit, the rest is scored."""

    series: Series
    n_train: int
    scaler: Scaler
    calendar: Optional[np.ndarray] = None      # (N + H, C): row r holds the calendar of row r + 1


@dataclass
class Fitted:
    model: Ensemble
    cfg: ForecastConfig               # resolved: window and season set
    feats: list[str]
    target: str
    quantiles: dict                   # level -> (S,) conformal score quantiles
    interval_note: Optional[str]
    vol_ref: float                    # the training windows' median volatility (the band floor)
    freq: Optional[Frequency] = None
    weights: Optional[dict] = None    # member -> (S,) combination weights (combine.py); None: the network
    classic: Optional[ClassicFit] = None  # the classical forecasts fitted for the weights, reused in scoring
    scores: Optional[np.ndarray] = None   # (n, S) the conformal scores the quantiles came from


def choose(cfg: ForecastConfig, series: list[Series],
           log: Callable[[str], None]) -> tuple[ForecastConfig, Optional[Frequency]]:
    """Season and window from the dates (or --season / --window); the log says why."""
    freq = infer_frequency(series[0].dates)
    if freq is not None:
        log(f"{series[0].name}: {freq.describe(series[0].dates)}")
    season = cfg.season or (freq.season if freq else 1)
    why_s = "given" if cfg.season else ("from the dates" if freq else "no dates; give --season N")
    window, why_w = cfg.window, "given"
    if window is None:
        window = default_window(season, freq.name if freq else None)
        why_w = "one season" if window == season else ("two decades of yearly data" if freq and freq.name == "yearly"
                                                       else "the minimum")
        shortest = min(split_point(len(s.values), cfg.test_fraction) for s in series)
        if window > max(7, shortest // 3):              # keep enough training windows
            window, why_w = max(7, shortest // 3), f"a third of the {shortest} training rows"
    if cfg.calendar and (freq is None or not calendar_features(freq, np.arange(2)).shape[1]):
        raise UsageError("--calendar needs dates with a calendar season (hourly to quarterly); "
                         f"{'the rows have no dates' if freq is None else f'these are {freq.name}'}")
    log(f"season {season} ({why_s}); window {window} ({why_w}); inputs {cfg.inputs}; "
        f"ensemble of {cfg.ensemble}")
    return dataclasses.replace(cfg, season=season, window=window).validate(), freq


def make_part(s: Series, n_train: int, cfg: ForecastConfig, freq: Optional[Frequency],
              scaler: Optional[Scaler] = None) -> Part:
    scaler = scaler or Scaler.fit(s.values[:n_train], s.columns, s.name)
    cal = None
    if cfg.calendar and freq is not None:
        own = infer_frequency(s.dates) or freq
        periods = np.concatenate([own.periods, own.periods[-1] + np.arange(1, cfg.horizon + 2)])
        cal = calendar_features(own, periods[1:])                  # (N + H + 1 - 1, C)
    return Part(s, n_train, scaler, cal)


def fit_parts(cfg: ForecastConfig, parts: list[Part], feats: list[str], target: str,
              log: Callable[[str], None] = print, freq: Optional[Frequency] = None,
              epochs: Optional[list[int]] = None) -> Fitted:
    """Train on every part's training windows; the chronological tail of each part's windows
    (--val-fraction) picks the epoch and calibrates the intervals."""
    H = cfg.horizon
    if cfg.anchor == "auto" and cfg.target_mode == "change":
        votes = [choose_anchor(p.series.column(target), p.n_train, cfg) for p in parts]
        cfg = dataclasses.replace(cfg, anchor=max(set(votes), key=votes.count))
        log(f"anchor {cfg.anchor}: changes measured from "
            f"{'the same point one season back' if cfg.anchor == 'season' else 'the last value'} "
            "(the smaller error over steps 1..H on the training rows)")
    tr, va = [], []
    for p in parts:
        o = train_origins(p.n_train, cfg, H)
        d = prepare(p.series.values, p.series.columns, feats, target, p.scaler, cfg, o, H, p.calendar)
        m = len(o)
        n_val = min(m - 1, round(m * cfg.val_fraction)) if cfg.val_fraction else 0
        tr.append((d.x[:m - n_val], d.y[:m - n_val], d.vol[:m - n_val]))
        va.append((p, d.x[m - n_val:], d.y[m - n_val:], d.origins[m - n_val:], d.vol[m - n_val:]))
    x = torch.cat([t[0] for t in tr])
    y = np.concatenate([t[1] for t in tr])
    xv = torch.cat([v[1] for v in va])
    yv = np.concatenate([v[2] for v in va])
    n_cal = len(yv)
    log(f"train {sum(p.n_train for p in parts)} rows ({len(y)} windows, {n_cal} more to pick the epoch and "
        f"calibrate); window {cfg.window} x {len(feats)} features -> {target} 1..{H} step(s) ahead"
        if H > 1 else f"train {sum(p.n_train for p in parts)} rows ({len(y)} windows, {n_cal} more to pick "
        f"the epoch and calibrate); window {cfg.window} x {len(feats)} features -> {target} 1 step ahead")
    cal = parts[0].calendar.shape[1] if parts[0].calendar is not None else 0
    with torch_threads(cfg.threads):
        model = fit_ensemble(cfg, x, y, xv, yv, len(feats), cal, log, epochs)
        errors, vols, weights, how, classic = [], [], None, "the network alone", None
        for p, xvp, _, ov, vv in va:
            if len(ov):
                yu = p.series.column(target)
                S = steps(cfg, model.outputs)
                members = {"network": to_units(predict_scaled(model, xvp), yu, *_lo_span(p, target), cfg, ov)}
                if cfg.combine == "auto" and cfg.classic == "auto" and len(parts) == 1:
                    # fitted once from the first tail origin on: score_part slices the test part's
                    classic = ClassicFit.from_origin(yu, p.n_train, cfg.season or 1, int(ov.min()), H)
                    members.update(classic_members(classic.at(ov), S))
                truth = yu[ov[:, None] + S[None, :]]
                weights, how = choose_weights({k: v - truth for k, v in members.items()})
                errors.append(combine(weights, members) - truth)
                vols.append(vv)
        log(f"forecast: {how}")
    vol_ref = float(np.median(np.concatenate([t[2] for t in tr]))) if len(y) else 1.0
    if errors:
        cal_scores = scores(np.concatenate(errors), floor_vol(np.concatenate(vols), vol_ref))
        q, note = quantiles(cal_scores, cfg.level)
    else:
        cal_scores, q, note = None, {}, "no calibration windows (--val-fraction 0)"
    return Fitted(model, cfg, feats, target, q, note, vol_ref, freq, weights, classic, cal_scores)


def _lo_span(p: Part, target: str) -> tuple[float, float]:
    i = p.scaler.columns.index(target)
    return float(p.scaler.lo[i]), float(p.scaler.hi[i] - p.scaler.lo[i])


@dataclass
class Scored:
    """A part's test rows scored at step H (the headline), and every step's errors."""

    rows: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    naive: np.ndarray
    model: dict
    baseline: dict
    skill: Optional[float]
    baselines: dict
    best_baseline: Optional[str]
    horizons: list
    intervals: dict
    bands: dict = field(default_factory=dict)      # level key -> (lower, upper) at step H
    mean_steps: dict = field(default_factory=dict)  # name -> errors averaged over steps 1..H
    mase_scale: Optional[float] = None               # the seasonal naive's in-sample MAE
    combination: Optional[dict] = None               # weights, and the network's own errors
    scores: Optional[np.ndarray] = None              # (rows, S) conformal scores at every step


def _step(truth, pred, base: dict, scale, cfg: ForecastConfig) -> tuple[dict, dict]:
    """One step's metrics: the model's, and every yardstick's (or why it is missing)."""
    table = {name: metrics(truth, fc, scale) if isinstance(fc, np.ndarray) else {"rmse": None, "reason": fc}
             for name, fc in base.items()}
    if cfg.classic == "off":
        table.update({name: {"rmse": None, "reason": "--classic off"} for name in CLASSIC})
    return metrics(truth, pred, scale), table


def score_part(f: Fitted, p: Part, rows: np.ndarray, classic_n_train: Optional[int] = None) -> Scored:
    """Forecast every test row from the true past at each step 1..H; baselines beside."""
    cfg, H = f.cfg, f.cfg.horizon
    S = steps(cfg, f.model.outputs)
    origins = np.arange(rows.min() - S.max(), rows.max())        # every origin some step needs
    d = prepare(p.series.values, p.series.columns, f.feats, f.target, p.scaler, cfg, origins,
                f.model.outputs, p.calendar)
    with torch_threads(cfg.threads):
        units = to_units(predict_scaled(f.model, d.x), p.series.column(f.target), *_lo_span(p, f.target), cfg, origins)
    y = p.series.column(f.target)
    n_fit = classic_n_train or p.n_train
    classic = {} if cfg.classic == "off" else forecasts_for(f.classic, y, n_fit, cfg.season or 1, origins, H)
    scale = mase_scale(y[:n_fit], cfg.season or 1)
    truth = y[rows]
    horizons, head, steps_m, steps_t, network, test_scores = [], None, [], [], [], []
    for j, h in enumerate(S):
        idx = rows - h - origins[0]
        base = simple_baselines(y, rows, int(h), cfg.season or 1)
        for name, fc in classic.items():
            base[name] = fc[idx, h - 1] if isinstance(fc, np.ndarray) else fc
        pred = combine(f.weights, {"network": units[idx, j], **base}, j)
        test_scores.append(np.abs(pred - truth) / floor_vol(d.vol[idx], f.vol_ref))
        network.append(metrics(truth, units[idx, j], scale))
        m, table = _step(truth, pred, base, scale, cfg)
        horizons.append({"step": int(h), "model": m, "naive": table["naive"],
                         "skill": skill(m["rmse"], table["naive"]["rmse"]),
                         "baselines": {k: v["rmse"] for k, v in table.items()},
                         "mase": {"model": m.get("mase"), **{k: v.get("mase") for k, v in table.items()}}})
        steps_m.append(m)
        steps_t.append(table)
        head = (pred, base["naive"], m, table)
    pred, naive, m, table = head
    mean = {"model": mean_metrics(steps_m)}
    mean.update({k: mean_metrics([t[k] for t in steps_t]) for k, v in table.items() if v.get("rmse") is not None})
    o = rows - H
    vol = floor_vol(d.vol[o - origins[0]], f.vol_ref)
    ivs, bnd = _intervals(f, truth, pred, vol)
    comb = None if not f.weights else {
        "members": list(f.weights), "weights": {k: [float(x) for x in w] for k, w in f.weights.items()},
        "network": network[-1], "network_mean_steps": mean_metrics(network)}
    return Scored(rows, truth, pred, naive, m, table["naive"], skill(m["rmse"], table["naive"]["rmse"]),
                  table, best_of(table), horizons, ivs, bnd, mean, scale, comb, np.stack(test_scores, axis=1))


def _intervals(f: Fitted, truth: np.ndarray, pred: np.ndarray, vol: np.ndarray) -> tuple[dict, dict]:
    """Each level's bands at step H and their coverage of the test rows."""
    ivs, bnd = {}, {}
    for level in f.cfg.level:
        key = level_key(level)
        if level in f.quantiles:
            lo, hi = bands(pred, vol, f.quantiles[level][-1])
            bnd[key] = (lo, hi)
            ivs[key] = {"nominal": level, **coverage(truth, lo, hi)}
        else:
            ivs[key] = {"nominal": level, "coverage": None, "mean_width": None, "reason": f.interval_note}
    return ivs, bnd
