"""Issue 27 part 4: changes measured from the last season (--anchor), seasonal ARIMA and log ETS,
and the network combined with the classical models by their errors on the training tail."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.core.config import ForecastConfig
from rnnkit.forecast.combine import choose_weights, combine, cv_ratio, tail_weights
from rnnkit.forecast.inputs import anchor_rows, choose_anchor

QUICK = ["--epochs", "3", "--hidden", "8", "--ensemble", "1", "--level", "80"]


def seasonal(n: int = 120, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 100 + 0.3 * t + 15 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(seed).normal(0, noise, n)


def test_anchor_rows_point_at_the_last_value_or_the_same_month_last_year():
    o = np.array([20, 30])
    last = ForecastConfig(horizon=14, season=12, anchor="last")
    np.testing.assert_array_equal(anchor_rows(last, o, 14), np.repeat(o[:, None], 14, 1))
    season = ForecastConfig(horizon=14, season=12, anchor="season")
    rows = anchor_rows(season, o, 14)
    h = np.arange(1, 15)
    np.testing.assert_array_equal(rows[0], 20 + h - np.where(h <= 12, 12, 24))   # step 13 goes 2 seasons back
    assert (rows <= o[:, None]).all()                                           # never a future row


def test_choose_anchor_follows_the_training_rows():
    cfg = ForecastConfig(horizon=12, season=12)
    assert choose_anchor(seasonal(), 84, cfg) == "season"
    walk = np.cumsum(np.random.default_rng(1).normal(0, 1, 120)) + 50
    assert choose_anchor(walk, 84, cfg) == "last"
    assert choose_anchor(seasonal(), 84, ForecastConfig(horizon=3, season=1)) == "last"


def test_tail_weights_favour_the_member_with_the_smaller_errors():
    rng = np.random.default_rng(0)
    err = {"network": rng.normal(0, 1, (40, 3)), "ets": rng.normal(0, 3, (40, 3)), "arima": "failed"}
    w = tail_weights(err)
    assert set(w) == {"network", "ets"}
    np.testing.assert_allclose(w["network"] + w["ets"], 1.0)
    assert (w["network"] > 0.9).all()                       # 1 / MSE^2: a member 3x off gets ~1/81
    assert tail_weights({"network": err["network"][:5], "ets": err["ets"][:5]}) is None   # too few windows
    fc = {"network": np.ones((2, 3)), "ets": np.zeros((2, 3))}
    np.testing.assert_allclose(combine(w, fc), np.broadcast_to(w["network"], (2, 3)))
    np.testing.assert_array_equal(combine(None, fc), fc["network"])


def test_too_few_tail_windows_give_the_plain_mean_of_the_members():
    rng = np.random.default_rng(1)
    err = {"network": rng.normal(0, 1, (5, 3)), "ets": rng.normal(0, 3, (5, 3)), "theta": rng.normal(0, 2, (5, 3)),
           "arima": "failed"}
    w, how = choose_weights(err)
    assert set(w) == {"network", "ets", "theta"}
    for v in w.values():
        np.testing.assert_allclose(v, np.full(3, 1 / 3))
    assert how.startswith("the mean of network, ets, theta (5 tail windows are too few")
    w, _ = choose_weights({k: v[:1] for k, v in err.items() if k != "arima"})   # one window is enough for a mean
    assert set(w) == {"network", "ets", "theta"}
    assert choose_weights({"network": err["network"]}) == (None, "the network alone")
    # the boundary: 9 windows are still too few, 10 give weights from the tail
    wide = {k: rng.normal(0, s_, (10, 3)) for k, s_ in (("network", 1), ("ets", 3), ("arima", 2), ("theta", 2))}
    w9, how9 = choose_weights({k: v[:9] for k, v in wide.items()})
    assert how9.startswith("the mean of") and all(np.allclose(v, 0.25) for v in w9.values())
    w10, how10 = choose_weights(wide)
    assert "the mean of" not in how10
    assert w10 is None or w10["network"][0] > 0.5       # the network, 3x smaller errors, dominates


def test_the_combination_must_pay_in_a_check_across_the_tail():
    rng = np.random.default_rng(3)
    # members with independent errors of the same size: their weighted mean halves the variance
    equal = {k: rng.normal(0, 1, (60, 2)) for k in ("network", "ets", "arima", "theta")}
    assert cv_ratio(equal) < 0.5
    w, how = choose_weights(equal)
    assert w is not None and "4-fold check" in how
    # a network far ahead and classical members that share its errors plus noise: weights from a
    # short tail cannot help, and the forecast stays the network's
    net = rng.normal(0, 1, (40, 1))
    ahead = {"network": net, **{k: net + rng.normal(0, 1.5, (40, 1)) for k in ("ets", "arima", "theta")}}
    assert cv_ratio(ahead) >= 1
    w, how = choose_weights(ahead)
    assert w is None and how.startswith("the network alone (the combination")
    assert choose_weights({"network": net, "ets": "the fit failed"})[0] is None


def test_the_check_needs_windows_that_do_not_overlap():
    rng = np.random.default_rng(4)
    net = rng.normal(0, 1, (39, 1))
    ahead = {"network": net, **{k: net + rng.normal(0, 1.5, (39, 1)) for k in ("ets", "arima", "theta")}}
    assert choose_weights(ahead)[0] is None            # one step: 39 independent windows, the check decides
    # the same errors over 4 steps: 39 windows of 4 steps hold 10 that do not overlap, still enough
    wide = {k: np.repeat(v, 4, axis=1) for k, v in ahead.items()}
    assert cv_ratio(wide) >= 1 and choose_weights(wide)[0] is None
    # 36 windows of 4 steps hold 9: too few for the check, the tail weights are kept
    short = {k: v[:36] for k, v in wide.items()}
    assert cv_ratio(short) >= 1                        # the check would have said: the network alone
    w, how = choose_weights(short)
    assert w is not None and "9 that do not overlap, too few to check against the network alone" in how
    np.testing.assert_allclose(sum(w.values()), 1.0)
    assert w["network"][0] == max(v[0] for v in w.values())


def test_seasonal_arima_and_log_ets_track_a_multiplicative_season():
    pytest.importorskip("statsmodels")
    from rnnkit.forecast.classic import arima_forecasts, ets_forecasts, season_strength
    t = np.arange(144)
    y = np.exp(4 + 0.01 * t + 0.2 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(2).normal(0, 0.02, 144))
    assert season_strength(y[:100], 12) > 0.64
    origins = np.arange(100, 131)
    truth = y[origins[:, None] + np.arange(1, 13)[None, :]]
    snaive = y[origins[:, None] + np.arange(1, 13)[None, :] - 12]
    for f in (arima_forecasts, ets_forecasts):
        fc = f(y, 100, 12, origins, 12)
        assert np.isfinite(fc).all()
        assert np.mean(np.abs(fc - truth)) < np.mean(np.abs(snaive - truth))   # beats last year's numbers


def test_ets_keeps_the_better_of_two_fits_and_concentrates_a_long_season():
    """Initial states estimated or concentrated out: the fit kept has the higher likelihood; with
    24 hourly states only the concentrated fit is made (the estimated one took 34 s on 2,100 rows)."""
    pytest.importorskip("statsmodels")
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing

    from rnnkit.forecast.classic import _ets
    rng = np.random.default_rng(0)
    t = np.arange(96)
    y = (100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 2, 96)
    best = _ets(y, 12)
    llfs = [ExponentialSmoothing(y, trend=True, damped_trend=True, seasonal=12, initialization_method=i)
            .fit(disp=False, maxiter=100).llf for i in ("estimated", "concentrated")]
    assert best.llf == pytest.approx(max(llfs), abs=1e-6)
    hourly = 10 + np.sin(2 * np.pi * np.arange(24 * 8) / 24) + rng.normal(0, 0.1, 24 * 8)
    assert _ets(hourly, 24).model.initialization_method == "concentrated"


def test_arima_differences_a_short_random_walk_and_not_noise():
    pytest.importorskip("statsmodels")
    from rnnkit.forecast.classic import differences
    noise = [np.random.default_rng(s).normal(size=40) for s in range(40)]
    walks = sum(differences(np.cumsum(e)) for e in noise)
    # statsmodels' data-dependent lags ("auto") differenced 18 of these 40 walks; the short lags 30
    assert walks >= 28
    assert sum(differences(e) for e in noise) <= 3


def test_arima_candidates_with_a_root_on_the_unit_circle_are_dropped():
    from types import SimpleNamespace as NS

    from rnnkit.forecast.classic import invertible
    assert invertible(NS(arparams=np.array([0.5]), maparams=np.array([-0.5])))
    assert invertible(NS(arparams=np.array([]), maparams=np.array([])))
    assert not invertible(NS(arparams=np.array([0.5]), maparams=np.array([-0.9999])))   # MA at -1
    assert not invertible(NS(arparams=np.array([0.995]), maparams=np.array([])))        # AR root 1.005
    assert not invertible(NS(arparams=np.array([1.2, -0.2]), maparams=np.array([])))    # a unit root


def test_arima_finds_the_seasonal_ma_term_of_an_airline_series():
    """(0,1,1)(0,1,1)12, the airline model: the seasonal MA(1) candidate wins the AIC on the seasonal
    differences, with the coefficient it was simulated with, and forecasts better than the
    candidates without it."""
    pytest.importorskip("statsmodels")
    from rnnkit.forecast.classic import _arima, h_step
    e = np.random.default_rng(4).normal(0, 1, 400)
    w = e.copy()
    w[1:] += -0.4 * e[:-1]
    w[12:] += -0.6 * e[:-12]
    w[13:] += 0.24 * e[:-13]                      # (1 - 0.4B)(1 - 0.6B^12) e
    z = np.cumsum(w)                              # the seasonal differences: one regular difference
    r = _arima(z[:280], 12)
    assert r.model.seasonal_order == (0, 0, 1, 12)
    assert dict(zip(r.model.param_names, r.params))["ma.S.L12"] == pytest.approx(-0.6, abs=0.15)
    origins = np.arange(280, 380)
    truth = z[origins[:, None] + np.arange(1, 13)[None, :]]
    err = {k: np.mean(np.abs(h_step(m.apply(z), origins, 12) - truth))
           for k, m in (("seasonal", r), ("plain", _arima(z[:280])))}
    assert err["seasonal"] < 0.95 * err["plain"]


def write(path: Path, y: np.ndarray) -> Path:
    months = np.datetime64("2010-01", "M") + np.arange(len(y))
    path.write_text("date,sales\n" + "\n".join(f"{m}-01,{v:.4f}" for m, v in zip(months, y)) + "\n")
    return path


def test_the_forecast_combines_the_network_with_the_classical_models(tmp_path, capsys):
    pytest.importorskip("statsmodels")
    f = write(tmp_path / "s.csv", seasonal(150))
    assert main([str(a) for a in ["forecast", str(f), "--horizon", "6", "--json", "--out", tmp_path / "on", *QUICK]]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    c = res["combination"]
    assert c["members"][0] == "network" and {"ets", "arima", "theta"} <= set(c["members"])
    np.testing.assert_allclose(np.sum([c["weights"][k] for k in c["members"]], axis=0), 1.0)
    # the saved forecaster keeps its weights: --predict refits the classics on the rows it is
    # given, so from the same last row it gives the future `rnnkit forecast` printed
    assert main(["forecast", "--predict", str(tmp_path / "on"), str(f), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    np.testing.assert_allclose(pred["forecasts"][-1]["steps"], [s["forecast"] for s in res["future"]["steps"]],
                               rtol=1e-6)
    # --combine off: the model is the network alone, the same numbers as the combination's own record
    assert main([str(a) for a in ["forecast", str(f), "--horizon", "6", "--json", "--no-future", "--combine", "off", "--out", tmp_path / "off", *QUICK]]) == 0
    off = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert off["combination"] is None
    assert off["model"]["mase"] == pytest.approx(c["network"]["mase"], rel=1e-9)
