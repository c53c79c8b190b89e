"""The model against the naive forecast on the test part, over seeds.

    PYTHONPATH=src python benchmarks/forecast_seeds.py                 # 5 seeds, both series
    PYTHONPATH=src python benchmarks/forecast_seeds.py --seeds 3 --setups default

Series: the built-in GOOG daily prices and ../shared/data/stock_daily.csv (newest first, flipped).
Setups: `default` (rnnkit forecast's defaults: scale-free inputs, the change since the last value,
an ensemble of 3) and `lecture` (rnnkit lab stock: level inputs and target, one LSTM layer of 10,
500 full-batch steps, lr 0.01), both with the scaler fitted on the training part. The classical
yardsticks are left out here (`classic="off"`); benchmarks/forecast_peers.py compares with them.
Prints each seed's row and the medians; skill is
1 - RMSE_model / RMSE_naive (> 0: the model beat "next value = last value").
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rnnkit.core.config import ForecastConfig
from rnnkit.forecast import fit_forecast
from rnnkit.forecast.demo_series import load_series

STOCK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stock_daily.csv"
SETUPS = {
    "default": {},
    "lecture": dict(target_mode="level", inputs="level", ensemble=1, window=7, hidden=10, layers=1, batch=0,
                    lr=0.01, epochs=500, val_fraction=0.0),
}


def series_list() -> list[tuple[str, tuple]]:
    out = [("GOOG built-in", load_series(None))]
    if STOCK.exists():
        out.append(("stock_daily.csv", load_series(str(STOCK), reverse=True)))
    else:
        print(f"({STOCK} not found: skipped)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--setups", default="default,lecture")
    a = ap.parse_args()
    head = f"{'series':<17}{'setup':<9}{'seed':>5}{'RMSE':>9}{'MAE':>9}{'MAPE%':>8}" \
           f"{'naive RMSE':>12}{'MAE':>9}{'MAPE%':>8}{'skill':>9}{'sec':>6}"
    print(head)
    summary = []
    for name, (s, feats, target) in series_list():
        for setup in a.setups.split(","):
            skills, rmses, maes, mapes = [], [], [], []
            for seed in range(a.seeds):
                cfg = ForecastConfig(seed=seed, classic="off", **SETUPS[setup])
                t0 = time.perf_counter()
                r = fit_forecast(cfg, s, feats, target, log=lambda m: None)[2]
                m, b = r.model, r.baseline
                print(f"{name:<17}{setup:<9}{seed:>5}{m['rmse']:>9.3f}{m['mae']:>9.3f}{m['mape']:>8.3f}"
                      f"{b['rmse']:>12.3f}{b['mae']:>9.3f}{b['mape']:>8.3f}{r.skill:>+9.4f}"
                      f"{time.perf_counter() - t0:>6.1f}", flush=True)
                skills.append(r.skill), rmses.append(m["rmse"]), maes.append(m["mae"]), mapes.append(m["mape"])
            summary.append((name, setup, statistics.median(rmses), statistics.median(maes),
                            statistics.median(mapes), b, statistics.median(skills), min(skills), max(skills),
                            sum(k > 0 for k in skills)))
    print("\nmedians over seeds (naive is the same for every seed)")
    print(f"{'series':<17}{'setup':<9}{'RMSE':>9}{'MAE':>9}{'MAPE%':>8}{'naive RMSE':>12}{'MAE':>9}{'MAPE%':>8}"
          f"{'skill':>9}  {'range':<17}beat naive")
    for name, setup, rmse, mae, mape, b, sk, lo, hi, wins in summary:
        print(f"{name:<17}{setup:<9}{rmse:>9.3f}{mae:>9.3f}{mape:>8.3f}{b['rmse']:>12.3f}{b['mae']:>9.3f}"
              f"{b['mape']:>8.3f}{sk:>+9.4f}  {lo:+.3f}..{hi:+.3f}   {wins}/{a.seeds} seeds")


if __name__ == "__main__":
    main()
