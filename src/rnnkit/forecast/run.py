"""Forecasting a numeric series honestly: a recurrent model against the yardsticks forecasters use.

    rnnkit forecast                                   # the built-in GOOG daily series
    rnnkit forecast --series co2 --level 80 --level 95  # a seasonal series (needs rnnkit[classic])
    rnnkit forecast prices.csv --target Close --out runs/prices --json
    rnnkit forecast sales.csv --id-column store --horizon 4 --backtest 3
    rnnkit forecast --predict runs/prices new_rows.csv

The pieces, along the data path: series.py / fill.py / demo_series.py read the rows; seasons.py
infers the frequency, season and window; forecast_inputs.py scales on the training part and cuts
windows; forecast_model.py is the network, its ensemble and the training loop; baselines.py and
classic.py are the yardsticks; intervals.py calibrates the bands; forecast_fit.py fits and
scores; backtest.py rolls the origin; forecast_report.py writes the verdict and the JSON;
forecast_io.py saves, loads and predicts; forecast_future.py refits on every row and forecasts
the steps after the last. This module runs the whole command.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..core.config import ForecastConfig, UsageError, shown
from ..core.fileio import write_atomic
from .baselines import metrics, naive_forecast, skill  # noqa: F401 (API)
from .demo_series import load_panel, load_series
from .files import MODEL_FILE, check_out, load_forecaster, predict_file, predictions_csv, save_forecaster  # noqa: F401
from .fit import Part, choose, fit_parts, make_part, score_part
from .future import add_future, future_csv
from .inputs import Scaler, check_length, min_rows, split_point, windows  # noqa: F401 (API)
from .intervals import coverage
from .model import Ensemble, Forecaster  # noqa: F401 (API)
from .report import ForecastResult, dumps, table  # noqa: F401 (API)
from .series import Series

__all__ = ["ForecastConfig", "ForecastResult", "Forecaster", "Ensemble", "Scaler", "fit_forecast", "fit_panel",
           "run_forecast", "write_run", "load_forecaster", "save_forecaster", "predict_file", "table", "metrics",
           "naive_forecast", "windows", "min_rows", "split_point", "check_length", "MODEL_FILE"]


def _result(sc, s: Series, feats, target, n_train, t0, cfg, freq) -> ForecastResult:
    return ForecastResult(s, feats, target, n_train, sc.rows, sc.truth, sc.pred, sc.naive, sc.model,
                          sc.baseline, sc.skill, time.perf_counter() - t0, config=cfg,
                          baselines=sc.baselines, best_baseline=sc.best_baseline, horizons=sc.horizons,
                          intervals=sc.intervals, bands=sc.bands, frequency=freq.name if freq else None,
                          gaps=len(freq.gaps) if freq else 0, mean_steps=sc.mean_steps,
                          combination=sc.combination)


def fit_forecast(cfg: ForecastConfig, series: Series, feats: list[str], target: str,
                 log: Callable[[str], None] = print) -> tuple[Ensemble, Scaler, ForecastResult]:
    """Split, scale on the train part, train, and score model and baselines on the test part."""
    cfg.validate()
    t0 = time.perf_counter()
    for note in series.notes:
        log(f"{shown(series.name)}: {note}")
    cfg, freq = choose(cfg, [series], log)
    n = len(series.values)
    n_train = check_length(n, cfg, shown(series.name))
    log(f"{shown(series.name)}: {n} rows; train {n_train} rows, test {n - n_train} rows")
    part = make_part(series, n_train, cfg, freq)
    fitted = fit_parts(cfg, [part], feats, target, log, freq)
    sc = score_part(fitted, part, np.arange(n_train, n))
    res = _result(sc, series, feats, target, n_train, t0, fitted.cfg, freq)
    res.extra.update(fitted=fitted, part=part, test_scores=sc.scores)
    return fitted.model, part.scaler, res


def fit_panel(cfg: ForecastConfig, panel: list[Series], feats: list[str], target: str,
              log: Callable[[str], None] = print) -> ForecastResult:
    """One global model over several series; per-series results and the pooled test errors."""
    t0 = time.perf_counter()
    cfg, freq = choose(cfg, panel, log)
    parts: list[Part] = []
    for s in panel:
        parts.append(make_part(s, check_length(len(s.values), cfg, shown(s.name)), cfg, freq))
    log(f"{len(panel)} series; {sum(len(s.values) for s in panel)} rows in all")
    fitted = fit_parts(cfg, parts, feats, target, log, freq)
    cfg = fitted.cfg                              # --anchor auto resolved on the training rows
    scored = [score_part(fitted, p, np.arange(p.n_train, len(p.series.values))) for p in parts]
    results = [_result(sc, p.series, feats, target, p.n_train, t0, cfg, freq) for sc, p in zip(scored, parts)]
    truth = np.concatenate([r.truth for r in results])
    pred = np.concatenate([r.pred for r in results])
    naive = np.concatenate([r.naive for r in results])
    m, b = metrics(truth, pred), metrics(truth, naive)
    first = panel[0]
    overall = Series(first.name.rsplit(" [", 1)[0], first.columns, np.concatenate([s.values for s in panel]))
    res = ForecastResult(overall, feats, target, sum(p.n_train for p in parts), np.arange(len(truth)), truth,
                         pred, naive, m, b, skill(m["rmse"], b["rmse"]), time.perf_counter() - t0, config=cfg,
                         baselines={"naive": b}, best_baseline="naive", frequency=freq.name if freq else None,
                         parts=results)
    for key in results[0].bands:                  # pooled coverage of every series' bands
        lo = np.concatenate([r.bands[key][0] for r in results])
        hi = np.concatenate([r.bands[key][1] for r in results])
        res.intervals[key] = {"nominal": float(key), **coverage(truth, lo, hi)}
    res.extra.update(fitted=fitted, scalers=[p.scaler for p in parts],
                     test_scores=np.concatenate([sc.scores for sc in scored]))
    return res


def run_forecast(cfg: ForecastConfig, csv: Optional[str] = None, out: Optional[str] = None,
                 log: Callable[[str], None] = print, force: bool = False) -> ForecastResult:
    """The whole command: read, fit, score; then (cfg.future) refit on every row and forecast the
    H steps after the last; with `out`, save the model (the refitted one), forecast.png,
    predictions.csv, future.csv and metrics.json (an existing forecaster there only with `force`)."""
    cfg.validate()
    run = check_out(out, force) if out else None
    if cfg.id_column:
        if csv is None:
            raise UsageError("--id-column applies to a long-format CSV file; give the file")
        if cfg.backtest:
            raise UsageError("--backtest is not supported with --id-column yet; backtest one series at a time")
        panel, feats, target = load_panel(csv, cfg.id_column, cfg.target, cfg.features, cfg.columns,
                                          cfg.date_column, cfg.fill, cfg.date_format)
        res = fit_panel(cfg, panel, feats, target, log)
        scalers = res.extra["scalers"]
    else:
        series, feats, target = load_series(csv, cfg.target, cfg.features, cfg.columns, cfg.date_column,
                                            cfg.reverse, cfg.fill, cfg.date_format, cfg.series)
        if cfg.backtest:      # the folds' size is known now: refuse before the main model trains
            from .backtest import fold_step
            from .inputs import split_point
            fold_step(len(series.values) - split_point(len(series.values), cfg.test_fraction), cfg)
        _, scaler, res = fit_forecast(cfg, series, feats, target, log)
        scalers = [scaler]
        if cfg.backtest:
            from .backtest import run_backtest
            res.backtest = run_backtest(res.config, series, feats, target, len(res.rows),
                                        res.extra["fitted"].freq, log)
    if cfg.future:
        add_future(res, panel if cfg.id_column else [series], log)
        scalers = res.extra["refit_scalers"]
    if run is not None:
        write_run(run, res, scalers)
    return res


def _future_xy(r: ForecastResult, h: int) -> Optional[tuple]:
    """x (S,), forecast (S,), {level: (lower, upper)} of a result's future, for the plot."""
    if not r.future:
        return None
    st = r.future["steps"]
    n = len(r.series.values)
    x = np.array([np.datetime64(d["date"]) for d in st]) if st[0]["date"] else np.array([n - 1 + d["step"] for d in st])
    keys = sorted({k.split("_", 1)[1] for k in st[0] if k.startswith("lower_")}, key=float)
    return x, np.array([d["forecast"] for d in st]), {k: (np.array([d[f"lower_{k}"] for d in st]),
                                                           np.array([d[f"upper_{k}"] for d in st])) for k in keys}


def write_run(run: Path, res: ForecastResult, scalers: list[Scaler]) -> None:
    from ..core.plots import plot_forecast
    run.mkdir(parents=True, exist_ok=True)
    f = res.extra.get("refitted") or res.extra["fitted"]        # the model fitted on every row, if any
    extra = {"intervals": {f"{k:g}": v.tolist() for k, v in f.quantiles.items()}, "vol_ref": f.vol_ref,
             "frequency": res.frequency}
    if f.weights:                                  # --predict combines with the classics refitted on its rows
        extra["combination"] = {k: [float(x) for x in w] for k, w in f.weights.items()}
    if res.future:
        extra["refit"] = {"rows": int(sum(len(p.series.values) for p in (res.parts or [res]))),
                          "epochs": f.model.epochs}
    if res.parts:
        extra.update(panel=True, scalers={p.series.key: s.to_dict() for p, s in zip(res.parts, scalers)})
    save_forecaster(run / MODEL_FILE, f.model, scalers, res.config, res.features, res.target, extra)
    first = res.parts[0] if res.parts else res
    s = first.series
    x = s.dates if s.dates is not None else np.arange(len(s.values))
    h = res.config.horizon
    plot_forecast(run / "forecast.png", x, s.column(res.target), first.n_train, first.rows, first.pred,
                  first.naive, f"{shown(Path(s.name).name)}: {res.target}, {h} step(s) ahead, "
                  f"skill {'n/a' if first.skill is None else f'{first.skill:+.3f}'}", res.target,
                  bands=first.bands, horizons=first.horizons, future=_future_xy(first, h))
    res.run_dir = shown(str(run))
    write_atomic(run / "predictions.csv", predictions_csv(res))
    if res.future:
        write_atomic(run / "future.csv", future_csv(res))
    elif (run / "future.csv").is_file():               # a stale future from an earlier run here
        (run / "future.csv").unlink()
    write_atomic(run / "metrics.json", dumps(res.to_json(), indent=1) + "\n")
