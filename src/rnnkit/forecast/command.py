"""What `rnnkit forecast` does with its parsed options: a run, or `--predict` from a saved run
(cli.py builds the parser and maps errors to exit statuses)."""
from __future__ import annotations

from pathlib import Path

from ..core.config import ForecastConfig, UsageError, shown

PREDICT_KEEPS = ("columns", "date_column", "reverse", "fill", "date_format")  # data-reading options;
# the rest is the model's


def cmd_forecast(a) -> int:
    from .report import dumps
    from .run import run_forecast, table
    if a.predict:
        return forecast_predict(a)
    if a.csv and hasattr(a, "series"):
        raise UsageError("--series picks a built-in series; it cannot be used with a CSV file")
    cfg = ForecastConfig.from_args(a)
    name = Path(a.csv).stem if a.csv else cfg.series
    out = a.out or f"runs/forecast-{name}"
    res = run_forecast(cfg, a.csv, out, force=a.force)
    print(table(res))
    where = shown(out)
    print(f"plot: {where}/forecast.png  predictions: {where}/predictions.csv  "
          + (f"future: {where}/future.csv  " if res.future else "")
          + f"model: {where}/forecast.safetensors (rnnkit forecast --predict {where} CSV)")
    if a.json:
        print(dumps(res.to_json()))
    return 0


def forecast_predict(a) -> int:
    from .report import dumps
    from .run import predict_file
    if a.force:
        raise UsageError("--force cannot be used with --predict: nothing is written")
    fixed = sorted(k for k in ForecastConfig.__dataclass_fields__ if hasattr(a, k) and k not in PREDICT_KEEPS)
    if fixed:
        raise UsageError(f"--{fixed[0].replace('_', '-')} cannot be used with --predict: the saved model "
                         "keeps its own settings")
    if a.out:
        raise UsageError("--out cannot be used with --predict: forecasts are printed")
    if not a.csv:
        raise UsageError("--predict RUN_DIR needs the CSV file of rows to forecast from")
    r = predict_file(a.predict, a.csv, getattr(a, "columns", None), getattr(a, "date_column", None),
                     getattr(a, "reverse", False), getattr(a, "fill", None), getattr(a, "date_format", None))
    h, t = r["horizon"], r["target"]
    for f in r["forecasts"]:
        print(f"line {f['line']}{' ' + f['date'] if f['date'] else ''}: {t} {f['last']:.6g} -> "
              f"{f['forecast']:.6g} {h} step(s) later")
    print(f"forecast of {t} {h} step(s) after the last row: {r['next']:.6g}")
    if a.json:
        print(dumps(r))
    return 0
