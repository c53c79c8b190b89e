"""Do the future's intervals hold? rnnkit forecast's whole pipeline (evaluation, refit on every row,
the H steps after the last row) run on earlier cuts of each series, its bands checked against the
rows that followed (issue 27: coverage within 5 points of nominal at 80% and 95%).

    PYTHONPATH=src python benchmarks/forecast_future_check.py                 # 24 series, 3 cuts each
    PYTHONPATH=src python benchmarks/forecast_future_check.py --series a10,usmelec --cuts 2

Protocol: for k = 1..K the series is cut after row N - k*H (H = one season); rnnkit's defaults
with `--horizon H --level 80 --level 95` see only the rows before the cut, and the future they
print is scored on the H rows after it. Coverage is the share of those rows inside each band,
per series (K*H rows) and pooled over every series. For scale, the script also prints how many
series would land within 5 points if every error were exchangeable (each series' calibration
and check sizes, Gaussian errors, 4000 draws): a single series' few dozen rows cannot pin its
coverage down closer than that. Series: benchmarks/forecast_season.py's 24 textbook series.
"""
from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from rnnkit.core.config import ForecastConfig
from rnnkit.forecast import fit_forecast
from rnnkit.forecast.future import add_future
from rnnkit.forecast.series import Series

LEVELS = (80.0, 95.0)
QUICK = {"epochs": 3, "ensemble": 1, "hidden": 8}     # --quick: checks that the script works, not the numbers


def check_cut(args: tuple) -> dict:
    """One cut: the future's bands from rows [0, cut) against rows cut .. cut + H - 1."""
    name, dates, y, season, cut, seed, quick = args
    s = Series(name, ["y"], y[:cut, None], dates[:cut].astype("datetime64[D]"), np.arange(1, cut + 1))
    cfg = ForecastConfig(seed=seed, horizon=season, level=list(LEVELS), **(QUICK if quick else {}))
    _, _, res = fit_forecast(cfg, s, ["y"], "y", log=lambda m: None)
    add_future(res, [s], log=lambda m: None)
    steps = res.future["steps"]
    truth = y[cut:cut + season]
    out = {"name": name, "cut": cut, "rows": len(truth),
           "n_cal": res.future["calibration_windows"] or 0}
    for level in LEVELS:
        k = f"{level:g}"
        if f"lower_{k}" not in steps[0]:
            out[k] = None
            continue
        lo = np.array([d[f"lower_{k}"] for d in steps])
        hi = np.array([d[f"upper_{k}"] for d in steps])
        out[k] = int(np.sum((truth >= lo) & (truth <= hi)))
    return out


def exchangeable_within(n_cal: int, n_check: int, level: float, rng: np.random.Generator, draws: int = 4000) -> float:
    """P(|coverage - level| <= 5 points) for split-conformal bands from n_cal exchangeable scores
    checked on n_check fresh ones."""
    k = math.ceil((n_cal + 1) * level / 100)
    if k > n_cal:
        return float("nan")
    q = np.sort(np.abs(rng.normal(size=(draws, n_cal))), axis=1)[:, k - 1]
    cov = (np.abs(rng.normal(size=(draws, n_check))) <= q[:, None]).mean(1) * 100
    return float(np.mean(np.abs(cov - level) <= 5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuts", type=int, default=3, help="cuts per series, one season apart")
    ap.add_argument("--series", default=None, help="comma-separated names; none: all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="series run at once (each on one thread)")
    ap.add_argument("--quick", action="store_true", help="a tiny network (a smoke test, not the figures)")
    a = ap.parse_args()
    from _bench import machine
    from forecast_season import textbook
    data = textbook()
    names = a.series.split(",") if a.series else list(data)
    tasks = [(n, data[n][0], data[n][1], data[n][2], len(data[n][1]) - k * data[n][2], a.seed, a.quick)
             for n in names for k in range(a.cuts, 0, -1)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as pool:
        results = list(pool.map(check_cut, tasks))
    print(f"{machine()}; {len(tasks)} runs in {time.perf_counter() - t0:.0f} s ({a.jobs} at once)")
    rng = np.random.default_rng(0)
    print("| series | cuts x H rows | calibration windows | 80% coverage | 95% coverage |\n|---|---|---|---|---|")
    per = {k: [] for k in LEVELS}
    ideal = {k: [] for k in LEVELS}
    pooled = {k: [0, 0] for k in LEVELS}
    for name in names:
        rs = [r for r in results if r["name"] == name]
        rows = sum(r["rows"] for r in rs)
        cells = []
        for level in LEVELS:
            k = f"{level:g}"
            got = [r for r in rs if r[k] is not None]
            if not got:
                cells.append("n/a")
                continue
            n = sum(r["rows"] for r in got)
            c = 100 * sum(r[k] for r in got) / n
            per[level].append(c)
            pooled[level][0] += sum(r[k] for r in got)
            pooled[level][1] += n
            ideal[level].append(exchangeable_within(int(np.median([r["n_cal"] for r in got])), n, level, rng))
            cells.append(f"{c:.1f}")
        print(f"| {name} | {len(rs)} x {rs[0]['rows']} = {rows} | {int(np.median([r['n_cal'] for r in rs]))} | "
              + " | ".join(cells) + " |")
    for level in LEVELS:
        c = np.array(per[level])
        if not len(c):
            continue
        print(f"{level:g}%: pooled coverage {100 * pooled[level][0] / pooled[level][1]:.1f} over {pooled[level][1]} rows; "
              f"mean over series {c.mean():.1f}; within 5 points on {int(np.sum(np.abs(c - level) <= 5))} of {len(c)} "
              f"series (exchangeable errors would give {np.nansum(ideal[level]):.1f})")


if __name__ == "__main__":
    main()
