"""Split-conformal intervals: the coverage they promise, on data where it can be checked."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.core.config import ForecastConfig
from rnnkit.forecast import fit_forecast
from rnnkit.forecast.intervals import bands, calibrate, coverage
from rnnkit.forecast.series import Series


@pytest.mark.parametrize("level", [50.0, 80.0, 95.0])
def test_conformal_quantile_covers_exchangeable_errors(level):
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(200):                                     # many calibration / test draws
        cal = rng.standard_t(3, size=(100, 1))                # heavy-tailed errors
        q, note = calibrate(cal, np.ones(100), [level])
        assert note is None
        test = rng.standard_t(3, size=200)
        lo, hi = bands(np.zeros(200), np.ones(200), q[level][0])
        covered.append(coverage(test, lo, hi)["coverage"])
    # split conformal: level <= E[coverage] <= level + 100 / (n + 1)
    assert level - 1.0 <= np.mean(covered) <= level + 100 / 101 + 1.0


def test_too_few_calibration_windows_are_reported():
    q, note = calibrate(np.ones((5, 1)), np.ones(5), [95.0])
    assert q == {} and "5 calibration windows are too few for a 95% interval" in note
    q, note = calibrate(np.ones((5, 1)), np.ones(5), [80.0, 95.0])     # the level that can be had stays
    assert list(q) == [80.0] and "too few for a 95% interval" in note
    assert calibrate(np.ones((0, 1)), np.ones(0), [80.0])[1].startswith("no calibration windows")


def test_coverage_on_a_synthetic_series_is_near_nominal():
    """An AR(1) series with a changing noise level: the bands scale with each window's volatility."""
    rng = np.random.default_rng(0)
    n = 1200
    sigma = np.where(np.arange(n) % 400 < 200, 1.0, 3.0)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = y[t - 1] + 0.5 * (y[t - 1] - y[t - 2] if t > 1 else 0) + sigma[t] * rng.normal()
    cfg = ForecastConfig(season=1, window=10, epochs=8, hidden=8, ensemble=1, classic="off", level=[80.0, 95.0])
    _, _, r = fit_forecast(cfg, Series("ar", ["y"], y[:, None]), ["y"], "y", log=lambda m: None)
    assert abs(r.intervals["80"]["coverage"] - 80) <= 8, r.intervals
    assert abs(r.intervals["95"]["coverage"] - 95) <= 5, r.intervals
    assert r.intervals["95"]["mean_width"] > r.intervals["80"]["mean_width"] > 0
    assert set(r.bands) == {"80", "95"} and len(r.bands["80"][0]) == len(r.rows)
