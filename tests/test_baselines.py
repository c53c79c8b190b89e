"""baselines.py and classic.py: the yardsticks on series where the answer is known."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnnkit.forecast.baselines import best_of, drift, seasonal_naive, simple_baselines, skill


def test_seasonal_naive_and_drift_on_known_series():
    y = np.arange(30.0) ** 1 + 10 * (np.arange(30) % 4)         # a line plus a season of 4
    rows = np.arange(20, 30)
    for h in (1, 3, 5):
        back = 4 * int(np.ceil(h / 4))
        np.testing.assert_array_equal(seasonal_naive(y, rows, h, 4), y[rows - back])
    line = 3.0 + 2.0 * np.arange(30)
    np.testing.assert_allclose(drift(line, rows, 3), line[rows])     # drift is exact on a line
    assert set(simple_baselines(y, rows, 1, 4)) == {"naive", "drift", "seasonal_naive"}
    assert set(simple_baselines(y, rows, 1, 1)) == {"naive", "drift"}


def test_skill_is_none_when_the_yardstick_is_exact():
    assert skill(1.0, 0.0) is None and skill(1.0, 2.0) == 0.5
    assert best_of({"naive": {"rmse": 2.0}, "ets": {"rmse": None, "reason": "x"}, "drift": {"rmse": 1.5}}) == "drift"


def test_classic_h_step_matches_statsmodels_forecast_from_each_origin():
    pytest.importorskip("statsmodels")
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    from rnnkit.forecast.classic import classic_forecasts, h_step
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=200)) + 3 * np.sin(np.arange(200) * 2 * np.pi / 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the optimiser's chatter while fitting the reference
        res = SARIMAX(y[:140], order=(2, 1, 1)).fit(disp=False)
    full = res.apply(y)
    for o in (139, 170, 195):
        refit = SARIMAX(y[:o + 1], order=(2, 1, 1)).filter(res.params)
        np.testing.assert_allclose(h_step(full, np.array([o]), 4)[0], refit.forecast(4), rtol=1e-8)
    out = classic_forecasts(y, 140, 12, np.arange(139, 199), 2)
    assert out["ets"].shape == out["arima"].shape == (60, 2)
    # the forecasts use the true past only: changing a later row leaves earlier origins alone
    y2 = y.copy()
    y2[180:] += 100
    out2 = classic_forecasts(y2, 140, 12, np.arange(139, 199), 2)
    np.testing.assert_allclose(out2["arima"][:180 - 139], out["arima"][:180 - 139])
