"""Scale-free inputs (--inputs diff, the default): a series and the same series plus a constant
give the same forecasts plus that constant, in training and in --predict on new levels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnkit.core.config import ForecastConfig
from rnnkit.forecast import fit_forecast, predict_file, run_forecast
from rnnkit.forecast.series import Series

QUICK = dict(epochs=3, hidden=8, ensemble=2, classic="off", seed=0)


def seasonal(n: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 0.2 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.5, n)


def one(y: np.ndarray) -> Series:
    return Series("s", ["y"], y[:, None].copy())


def test_a_constant_shift_shifts_the_forecasts_exactly():
    y = seasonal()
    cfg = ForecastConfig(season=12, **QUICK)
    _, _, a = fit_forecast(cfg, one(y), ["y"], "y", log=lambda m: None)
    _, _, b = fit_forecast(cfg, one(y + 1000), ["y"], "y", log=lambda m: None)
    np.testing.assert_allclose(b.pred - a.pred, 1000, atol=1e-6 * 1000)
    assert b.model["rmse"] == pytest.approx(a.model["rmse"], rel=1e-6)
    assert a.config.window == 12 and a.config.inputs == "diff"


def write(path: Path, y: np.ndarray) -> str:
    path.write_text("t,y\n" + "\n".join(f"{i},{v:.9f}" for i, v in enumerate(y)) + "\n")
    return str(path)


def test_predict_on_new_levels_far_outside_training(tmp_path):
    """The saved model applied to rows shifted by +1000 (outside anything seen in training):
    diff inputs give the same forecasts shifted; level inputs do not."""
    y = seasonal()
    for inputs, same in (("diff", True), ("level", False)):
        run = tmp_path / inputs
        cfg = ForecastConfig(season=12, features="y", inputs=inputs, **QUICK)
        run_forecast(cfg, write(tmp_path / "a.csv", y), str(run), log=lambda m: None)
        new = y[-40:]
        a = predict_file(str(run), write(tmp_path / "n.csv", new))
        b = predict_file(str(run), write(tmp_path / "m.csv", new + 1000))
        fa = np.array([f["forecast"] for f in a["forecasts"]])
        fb = np.array([f["forecast"] for f in b["forecasts"]])
        assert np.allclose(fb - fa, 1000, atol=1e-3) == same, inputs


def test_diff_inputs_refuse_a_level_target_and_a_window_of_one():
    from rnnkit.core.config import UsageError
    with pytest.raises(UsageError, match="inputs='diff' is scale-free and cannot forecast a level"):
        ForecastConfig(target_mode="level").validate()
    with pytest.raises(UsageError, match="inputs='diff' needs window >= 2"):
        ForecastConfig(window=1).validate()
    ForecastConfig(target_mode="level", inputs="level", window=1).validate()


def test_patience_stops_a_member_and_keeps_its_best_epoch():
    """--patience P: training stops P epochs after the tail's lowest error, and the member kept is
    exactly the one trained for that many epochs; --patience 0 trains every epoch."""
    import dataclasses

    import torch

    from rnnkit.forecast.model import new_member, scales, train_member
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(96, 8, 1)), dtype=torch.float32)
    y = rng.normal(size=(96, 2))                           # noise: the tail's best comes early
    cfg = ForecastConfig(season=1, window=8, horizon=2, hidden=8, epochs=60, patience=4, batch=16, seed=0)
    ins, outs = scales(x, y, 1, cfg)
    yt = torch.tensor(y, dtype=torch.float32)
    lines = []

    def train(c):
        m = new_member(c, 1, 0, 0, ins, outs)
        return m, train_member(m, x[:72], yt[:72], x[72:], yt[72:], c, 0, lines.append)

    stopped, history = train(cfg)
    assert len(history) == stopped.kept_epoch + 4 < 60
    assert any("stopped, no better on the tail for 4 epochs" in s for s in lines)
    again, _ = train(dataclasses.replace(cfg, epochs=stopped.kept_epoch, patience=0, val_fraction=0.2))
    for a, b in zip(stopped.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    _, every = train(dataclasses.replace(cfg, patience=0))
    assert len(every) == 60
