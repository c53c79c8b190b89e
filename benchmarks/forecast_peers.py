"""rnnkit forecast's defaults against the forecasters people use, on the same rows.

    PYTHONPATH=src python benchmarks/forecast_peers.py --peers-python /path/to/venv/bin/python
    PYTHONPATH=src python benchmarks/forecast_peers.py --seeds 1 --series sunspots   # quick look

Protocol (issue 15): the first 70% of the rows train, the last 30% are the test part, one-step
forecasts from the true past. rnnkit runs with its defaults (no --window: the season and window
come from the dates), a median over --seeds seeds. The peers are statsforecast 2.x's AutoETS and
AutoARIMA, fitted once on the training part, then run with those parameters over the whole series
(`forward(..., fitted=True)`: the same numbers as `cross_validation(h=1, refit=False)`, one pass
instead of one per test row), naive and seasonal naive, run by a second interpreter that has statsforecast installed (`--peers-python`;
a separate venv keeps numba and pandas out of rnnkit's). Without it, statsmodels' ETS and ARIMA
(rnnkit's own classical yardsticks, classic.py) stand in, and the table says so.

Series: sunspots (yearly) and co2 (weekly, missing weeks interpolated) from statsmodels, GOOG daily
(built in), ../shared/data/stock_daily.csv (newest first, no dates). Targets: on sunspots and co2
rnnkit's RMSE <= the better of AutoETS and AutoARIMA and within 5% of the best peer; on the stock
series skill >= -0.005; interval coverage within 8 points of the nominal level.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from rnnkit.core.config import ForecastConfig
from rnnkit.forecast import fit_forecast
from rnnkit.forecast.demo_series import load_series

STOCK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stock_daily.csv"
STRUCTURED = ("sunspots", "co2")

PEER_SCRIPT = r"""
import json, sys, time
import numpy as np
from statsforecast.models import AutoARIMA, AutoETS
out = {}
for s in json.load(sys.stdin):
    y, n, season = np.asarray(s["y"], float), s["n_train"], s["season"]
    r = {}
    for name, model in (("AutoETS", AutoETS(season_length=season)), ("AutoARIMA", AutoARIMA(season_length=season))):
        t0 = time.perf_counter()
        model.fit(y[:n])                            # parameters from the training part only
        f = model.forward(y=y, h=1, fitted=True)["fitted"]   # one-step forecasts from the true past
        r[name] = float(np.sqrt(np.mean((f[n:] - y[n:]) ** 2)))
        r[name + "_s"] = time.perf_counter() - t0
    r["Naive"] = float(np.sqrt(np.mean((y[n - 1:-1] - y[n:]) ** 2)))
    r["SeasonalNaive"] = float(np.sqrt(np.mean((y[n - season:len(y) - season] - y[n:]) ** 2)))
    out[s["name"]] = r
print(json.dumps(out))
"""


def series_list(names: list[str]) -> list[tuple[str, tuple]]:
    out = []
    for name in names:
        if name in ("sunspots", "co2"):
            out.append((name, load_series(None, builtin=name)))
        elif name == "goog":
            out.append((name, load_series(None)))
        elif name == "stock" and STOCK.exists():
            out.append((name, load_series(str(STOCK), reverse=True)))
        else:
            print(f"({name}: not available, skipped)")
    return out


def rnnkit_runs(s, feats, target, seeds: int, levels: list[float]) -> dict:
    rmses, skills, covs, secs, choices = [], [], {f"{v:g}": [] for v in levels}, [], None
    for seed in range(seeds):
        t0 = time.perf_counter()
        # rnnkit's defaults: with statsmodels installed, the network combined with ETS / ARIMA / Theta
        _, _, r = fit_forecast(ForecastConfig(seed=seed, level=levels), s, feats, target,
                               log=lambda m: None)
        secs.append(time.perf_counter() - t0)
        rmses.append(r.model["rmse"])
        skills.append(r.skill)
        for k in covs:
            covs[k].append(r.intervals[k]["coverage"])
        choices = (r.config.window, r.config.season, r)
        print(f"  {target:<10} seed {seed}: RMSE {r.model['rmse']:.4g} skill {r.skill:+.4f} "
              f"coverage {', '.join(f'{k}%: {v[-1]:.1f}' for k, v in covs.items())} ({secs[-1]:.1f} s)", flush=True)
    return {"rmse": statistics.median(rmses), "skill": statistics.median(skills), "rmse_range": (min(rmses), max(rmses)),
            "coverage": {k: statistics.median(v) for k, v in covs.items()}, "seconds": statistics.median(secs),
            "window": choices[0], "season": choices[1], "result": choices[2]}


def peers_statsforecast(python: str, jobs: list[dict]) -> dict:
    """One process per series (AutoARIMA with a season of 52 takes many minutes)."""
    out = {}
    for job in jobs:
        t0 = time.perf_counter()
        done = subprocess.run([python, "-c", PEER_SCRIPT], input=json.dumps([job]), capture_output=True,
                              text=True, timeout=7200)
        if done.returncode != 0:
            raise SystemExit(f"the peers' interpreter failed:\n{done.stderr[-3000:]}")
        out.update(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  peers on {job['name']}: {out[job['name']]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def peers_statsmodels(results: dict) -> dict:
    """rnnkit's own yardsticks (statsmodels ETS/ARIMA) when statsforecast is not at hand."""
    out = {}
    for name, r in results.items():
        from rnnkit.forecast.classic import classic_forecasts
        res = r["result"]
        y = res.series.column(res.target)
        origins = res.rows - 1
        fc = classic_forecasts(y, res.n_train, res.config.season, origins, 1)
        def rmse(f):
            return float(np.sqrt(np.mean((f[:, 0] - y[res.rows]) ** 2))) if isinstance(f, np.ndarray) else None
        out[name] = {"AutoETS": rmse(fc["ets"]), "AutoARIMA": rmse(fc["arima"]),
                     "Naive": res.baseline["rmse"],
                     "SeasonalNaive": res.baselines.get("seasonal_naive", res.baseline)["rmse"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--series", default="sunspots,co2,goog,stock")
    ap.add_argument("--peers-python", default=None, help="an interpreter with statsforecast installed")
    ap.add_argument("--peers-cache", default=None, help="a JSON file: the peers' results are read from it when "
                    "it exists, else computed and saved there (statsforecast's AutoARIMA takes ~25 min on co2)")
    ap.add_argument("--level", type=float, action="append", default=None)
    a = ap.parse_args()
    levels = a.level or [80.0, 95.0]
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if line.startswith("Model name")), platform.processor())
    print(f"CPU: {cpu}; python {platform.python_version()}; medians over {a.seeds} seed(s)")
    data = series_list(a.series.split(","))
    results = {}
    for name, (s, feats, target) in data:
        print(f"{name}: {len(s.values)} rows", flush=True)
        results[name] = rnnkit_runs(s, feats, target, a.seeds, levels)
    cache = Path(a.peers_cache) if a.peers_cache else None
    if cache is not None and cache.exists():
        peers, source = json.loads(cache.read_text()), f"statsforecast AutoETS / AutoARIMA (from {cache})"
        missing = sorted(set(results) - set(peers))
        if missing:
            raise SystemExit(f"{cache} has no peers' results for {', '.join(missing)}; remove it to recompute")
    elif a.peers_python:
        jobs = [{"name": n, "y": r["result"].series.column(r["result"].target).tolist(),
                 "n_train": r["result"].n_train, "season": max(1, r["season"])} for n, r in results.items()]
        peers, source = peers_statsforecast(a.peers_python, jobs), "statsforecast AutoETS / AutoARIMA"
        if cache is not None:
            cache.write_text(json.dumps(peers, indent=1) + "\n")
    else:
        peers, source = peers_statsmodels(results), "statsmodels ETS / ARIMA (rnnkit's classic.py; no --peers-python)"
    print(f"\npeers: {source}; test RMSE (skill = 1 - RMSE / RMSE_naive)")
    print("| series | rows | window, season | naive | seasonal naive | ETS | ARIMA | rnnkit (median) | "
          "rnnkit range | coverage | s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for name, r in results.items():
        p = peers[name]
        nv = p["Naive"]
        def cell(v):
            return "n/a" if v is None else f"{v:.4g} ({1 - v / nv:+.3f})"
        cov = ", ".join(f"{k}%: {v:.1f}" for k, v in r["coverage"].items())
        print(f"| {name} | {len(r['result'].series.values)} | {r['window']}, {r['season']} | {nv:.4g} | "
              f"{cell(p['SeasonalNaive'])} | {cell(p['AutoETS'])} | {cell(p['AutoARIMA'])} | {cell(r['rmse'])} | "
              f"{r['rmse_range'][0]:.4g}..{r['rmse_range'][1]:.4g} | {cov} | {r['seconds']:.1f} |")
        if name in STRUCTURED:
            classic = [v for v in (p["AutoETS"], p["AutoARIMA"]) if v is not None]
            best_peer = min(classic + [nv] + ([p["SeasonalNaive"]] if p["SeasonalNaive"] else []))
            ok1 = bool(classic) and r["rmse"] <= min(classic)
            ok2 = r["rmse"] <= 1.05 * best_peer
            verdicts.append(f"{name}: RMSE {r['rmse']:.4g} vs better of ETS/ARIMA {min(classic):.4g}: "
                            f"{'met' if ok1 else 'NOT met'}; within 5% of the best peer ({best_peer:.4g}): "
                            f"{'met' if ok2 else 'NOT met'} (ratio {r['rmse'] / best_peer:.3f})")
        else:
            verdicts.append(f"{name}: skill {r['skill']:+.4f} >= -0.005: {'met' if r['skill'] >= -0.005 else 'NOT met'}")
        for k, v in r["coverage"].items():
            ok = abs(v - float(k)) <= 8
            verdicts.append(f"{name}: {k}% interval coverage {v:.1f}: within 8 points {'met' if ok else 'NOT met'}")
    print("\ntargets")
    for v in verdicts:
        print("  " + v)


if __name__ == "__main__":
    main()
