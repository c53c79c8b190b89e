"""The Theta member (forecast/theta.py): its formula against statsmodels' ThetaModel, its lines
against least squares, no look past the origin, the fit and the season test."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.forecast import theta as TH

pytest.importorskip("statsmodels")


def trended(n: int = 200, season: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 50 + 0.3 * t + rng.normal(0, 2, n)
    return y * (1 + 0.2 * np.sin(2 * np.pi * t / season)) if season else y


def test_lines_are_least_squares_through_every_prefix():
    z = trended(30)
    A, B = TH.lines(z)
    assert (A[0], B[0]) == (z[0], 0.0)
    for t in (2, 3, 17, 30):
        slope, intercept = np.polyfit(np.arange(1, t + 1), z[:t], 1)
        assert B[t - 1] == pytest.approx(slope, rel=1e-9) and A[t - 1] == pytest.approx(intercept, rel=1e-9)


def test_standard_theta_is_statsmodels_theta_method_on_a_long_series():
    """theta = 2 with statsmodels' alpha and its first level: the same forecasts (the (1-alpha)^T
    terms by which the two write-ups differ vanish after 200 rows)."""
    from statsmodels.tsa.forecasting.theta import ThetaModel
    y = trended(200)
    r = ThetaModel(y, deseasonalize=False).fit()
    p = TH.ThetaParams("STM", level0=y[0], alpha=float(r.params["alpha"]), theta=2.0, mse=0.0)
    A, B = TH.lines(y)
    ours = TH.paths(y, p, A, B, np.array([199]), 6)[0]
    np.testing.assert_allclose(ours, np.asarray(r.forecast(6)), rtol=1e-9)


def test_a_forecast_uses_no_row_after_its_origin():
    y = trended(96, season=12)
    origins = np.arange(70, 80)
    before = TH.theta_forecasts(y, 60, 12, origins, 12)
    later = y.copy()
    later[81:] *= 3                                     # every row after the last origin's next
    later[80] += 40
    np.testing.assert_allclose(TH.theta_forecasts(later, 60, 12, origins, 12), before, rtol=1e-12)
    # the same forecasts whichever origins are asked (the tail, the test part and --predict slice them)
    np.testing.assert_array_equal(TH.theta_forecasts(y, 60, 12, origins[3::4], 12), before[3::4])
    moved = TH.theta_forecasts(later, 60, 12, np.array([80]), 12)
    assert not np.allclose(moved, TH.theta_forecasts(y, 60, 12, np.array([80]), 12))


def test_the_fit_keeps_the_candidate_with_the_lowest_one_step_error():
    z = trended(80, seed=3)
    fits = {m: TH.fit_one(z, m) for m in TH.MODELS}
    best = TH.fit(z)
    assert best.mse == min(f.mse for f in fits.values())
    assert fits["STM"].theta == 2.0 and fits["DSTM"].theta == 2.0
    assert all(0.1 <= f.alpha <= 0.99 for f in fits.values())
    # the fit beats the optimiser's start (alpha 0.5, theta 2, l_0 = z_1 / 2) on its own loss
    start = TH.ThetaParams("OTM", z[0] / 2, 0.5, 2.0, 0.0)
    loss = lambda p: np.nanmean(np.nanmean(TH.in_sample_errors(z, p, TH.NMSE) ** 2, axis=0))
    assert loss(fits["OTM"]) < loss(start)


def test_the_season_is_found_multiplied_or_added_and_left_out_when_absent():
    idx, mul = TH.season(trended(96, season=12), 12)
    assert mul and idx.shape == (12,) and idx.mean() == pytest.approx(1, abs=1e-9)
    assert np.argmax(idx) == 3                          # sin peaks a quarter of the way through
    assert TH.season(trended(96), 12) is None           # no season: the ACF test says so
    assert TH.season(trended(20, season=12), 12) is None    # fewer than two seasons
    below = trended(96, season=12) - 80                 # values <= 0: added, not multiplied
    assert TH.season(below, 12)[1] is False
    f = TH.theta_forecasts(trended(120, season=12), 84, 12, np.arange(90, 100), 12)
    assert f.shape == (10, 12) and np.isfinite(f).all()


def test_the_numpy_season_test_and_decomposition_are_statsmodels():
    from statsmodels.tsa.seasonal import seasonal_decompose
    from statsmodels.tsa.stattools import acf
    rng = np.random.default_rng(1)
    for n, m in ((96, 12), (97, 12), (50, 4), (77, 7), (300, 52)):
        t = np.arange(n)
        y = 50 + 0.1 * t + 5 * np.sin(2 * np.pi * t / m) + rng.normal(0, 1, n)
        for mul in (True, False):
            ref = seasonal_decompose(y, model="multiplicative" if mul else "additive", period=m).seasonal[:m]
            np.testing.assert_allclose(TH._indices(y, m, mul), ref, atol=1e-12)
        r = acf(y, nlags=m, fft=False)[1:]
        found = TH.season(y, m) is not None
        assert found == bool(abs(r[-1]) > TH.SEASON_Z * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / n))
