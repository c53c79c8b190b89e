"""benchmarks/forecast_peers.py still runs and prints its table and targets (one seed, one small
series, statsmodels standing in for statsforecast: this checks that it works, not the numbers)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_forecast_peers_prints_the_table_and_the_targets():
    pytest.importorskip("statsmodels")
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    done = subprocess.run([sys.executable, str(BENCH / "forecast_peers.py"), "--seeds", "1", "--series", "sunspots"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "| sunspots | 309 | 20, 1 |" in out and "statsmodels ETS / ARIMA" in out
    assert "sunspots: RMSE" in out and "80% interval coverage" in out


def test_forecast_future_check_scores_the_future_bands_on_the_rows_after_a_cut():
    pytest.importorskip("statsmodels")
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    done = subprocess.run([sys.executable, str(BENCH / "forecast_future_check.py"), "--series", "realgdp",
                           "--cuts", "1", "--jobs", "1", "--quick"], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "| realgdp | 1 x 4 = 4 |" in out and "1 runs in" in out
    assert "80%: pooled coverage" in out and "95%: pooled coverage" in out and "exchangeable errors would give" in out
