"""Rolling-origin backtests: every fold is fitted on rows before its test part and never sees a
row after it."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.core.config import ForecastConfig, UsageError
from rnnkit.forecast.backtest import folds, run_backtest
from rnnkit.forecast.series import Series

CFG = dict(season=1, window=7, epochs=3, hidden=4, ensemble=1, classic="off", backtest=3, seed=0)


def walk(n: int = 200, seed: int = 0) -> np.ndarray:
    return 100 + np.cumsum(np.random.default_rng(seed).normal(0, 1, n))


def series(y: np.ndarray) -> Series:
    return Series("w", ["y"], y[:, None].copy())


def test_folds_tile_the_end_of_the_series():
    cfg = ForecastConfig(**CFG)
    assert folds(200, 60, cfg) == [(140, 160), (160, 180), (180, 200)]
    assert folds(200, 60, ForecastConfig(**{**CFG, "step": 10})) == [(170, 180), (180, 190), (190, 200)]
    with pytest.raises(UsageError, match="--backtest 3 with --step 70 leaves 0 rows"):
        folds(200, 60, ForecastConfig(**{**CFG, "step": 70}))


@pytest.mark.parametrize("refit", [True, False])
def test_folds_never_see_their_test_rows_or_later(refit):
    cfg = ForecastConfig(**{**CFG, "refit": refit})
    y = walk()
    base = run_backtest(cfg, series(y), ["y"], "y", 60, None, log=lambda m: None)
    for k, f in enumerate(base["folds"]):
        cut = f["test_first_row"]
        assert f["train_rows"] <= cut
        changed = y.copy()
        changed[cut + 1:] += np.random.default_rng(k).normal(0, 50, len(y) - cut - 1)   # the future of
        again = run_backtest(cfg, series(changed), ["y"], "y", 60, None, log=lambda m: None)  # fold k's
        before = [g["model"] for g in again["folds"][:k]]                                 # first row
        assert before == [g["model"] for g in base["folds"][:k]]       # earlier folds: bit for bit
    assert len(base["folds"]) == 3 and base["mean"]["skill"] is not None
    assert {"naive", "drift"} <= set(base["folds"][0]["baselines"])


def test_refit_changes_later_folds_and_one_model_does_not():
    y = walk()
    one = run_backtest(ForecastConfig(**CFG), series(y), ["y"], "y", 60, None, log=lambda m: None)
    assert {f["train_rows"] for f in one["folds"]} == {140}
    refit = run_backtest(ForecastConfig(**{**CFG, "refit": True}), series(y), ["y"], "y", 60, None, log=lambda m: None)
    assert [f["train_rows"] for f in refit["folds"]] == [140, 160, 180]


def test_each_fit_is_given_only_rows_before_its_cut(monkeypatch):
    import rnnkit.forecast.backtest as bt
    seen = []
    real = bt.fit_parts

    def spy(cfg, parts, *a, **k):
        seen.append((len(parts[0].series.values), parts[0].n_train))
        return real(cfg, parts, *a, **k)
    monkeypatch.setattr(bt, "fit_parts", spy)
    run_backtest(ForecastConfig(**{**CFG, "refit": True}), series(walk()), ["y"], "y", 60, None, log=lambda m: None)
    assert seen == [(160, 140), (180, 160), (200, 180)]    # (rows the fold holds, rows it fits on)


def test_folds_report_mase_for_the_model_and_the_yardsticks():
    out = run_backtest(ForecastConfig(**CFG), series(walk()), ["y"], "y", 60, None, log=lambda m: None)
    assert out["folds"][0]["mase"]["model"] > 0 and "naive" in out["folds"][0]["mase"]
    assert out["mean"]["mase"]["model"] == pytest.approx(sum(f["mase"]["model"] for f in out["folds"]) / 3)
