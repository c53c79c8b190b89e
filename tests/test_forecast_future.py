"""Issue 27: the future after the last row (refit on every row), Theta and Comb, MASE and sMAPE."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.forecast.baselines import mase_scale, metrics
from rnnkit.forecast.seasons import future_dates, infer_frequency

QUICK = ["--epochs", "2", "--hidden", "4", "--ensemble", "2", "--classic", "off", "--level", "80"]


def monthly_csv(path: Path, n: int = 48, key: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = 100 + t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, n)
    months = np.datetime64("2018-01", "M") + t
    rows = [f"{m}-01,{v:.4f}" for m, v in zip(months, y)]
    path.write_text("date,sales\n" + "\n".join(rows) + "\n")
    return path


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


def test_future_is_forecast_after_the_last_row_and_saved_everywhere(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out = run(capsys, "forecast", monthly_csv(tmp_path / "m.csv"), "--horizon", "3", "--out", out_dir,
                    "--json", *QUICK)
    assert code == 0
    res = json.loads(out.strip().splitlines()[-1])
    fut = res["future"]
    assert [d["date"] for d in fut["steps"]] == ["2022-01-01", "2022-02-01", "2022-03-01"]
    assert fut["rows"] == 48 and fut["after"] == "2021-12-01" and len(fut["epochs"]) == 2
    assert all(d["lower_80"] < d["forecast"] < d["upper_80"] for d in fut["steps"])
    assert "future: 3 step(s) after 2021-12-01" in out and "2022-03-01" in out
    rows = list(csv.reader((out_dir / "future.csv").open()))
    assert rows[0] == ["date", "forecast", "lower_80", "upper_80"] and len(rows) == 4
    assert float(rows[3][1]) == pytest.approx(fut["steps"][2]["forecast"], rel=1e-8)
    # the saved forecaster is the refitted one: --predict's last forecast is the future's step H
    code, out = run(capsys, "forecast", "--predict", out_dir, tmp_path / "m.csv", "--json")
    pred = json.loads(out.strip().splitlines()[-1])
    assert pred["next"] == pytest.approx(fut["steps"][2]["forecast"], rel=1e-6)


def test_no_future_skips_the_refit_and_removes_a_stale_file(capsys, tmp_path):
    out_dir, data = tmp_path / "run", monthly_csv(tmp_path / "m.csv")
    assert run(capsys, "forecast", data, "--out", out_dir, *QUICK)[0] == 0
    assert (out_dir / "future.csv").is_file()
    code, out = run(capsys, "forecast", data, "--out", out_dir, "--force", "--no-future", "--json", *QUICK)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["future"] is None
    assert not (out_dir / "future.csv").exists() and "refit on all" not in out


def test_undated_rows_get_step_numbers(capsys, tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "u.csv"
    data.write_text("y\n" + "\n".join(f"{v:.4f}" for v in 50 + np.cumsum(rng.normal(0, 1, 40))) + "\n")
    code, out = run(capsys, "forecast", data, "--horizon", "2", "--out", tmp_path / "r", "--json", *QUICK)
    fut = json.loads(out.strip().splitlines()[-1])["future"]
    assert code == 0 and fut["after"] == 39 and [d["step"] for d in fut["steps"]] == [1, 2]
    assert next(csv.reader((tmp_path / "r" / "future.csv").open()))[0] == "step"


def test_a_panel_gets_a_future_per_series(capsys, tmp_path):
    lines = ["date,store,sales"]
    for key in "ab":
        one = monthly_csv(tmp_path / f"{key}.csv").read_text().splitlines()[1:]
        lines += [f"{d},{key},{v}" for d, v in (x.split(",") for x in one)]
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    code, out = run(capsys, "forecast", tmp_path / "p.csv", "--id-column", "store", "--horizon", "2",
                    "--out", tmp_path / "r", "--json", *QUICK)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and set(res["future"]["per_series"]) == {"a", "b"}
    assert res["per_series"]["b"]["future"]["steps"][1]["date"] == "2022-02-01"
    rows = list(csv.reader((tmp_path / "r" / "future.csv").open()))
    assert rows[0][:2] == ["series", "date"] and [r[0] for r in rows[1:]] == ["a", "a", "b", "b"]


@pytest.mark.parametrize("dates, want", [
    (["2020-01-31", "2020-02-29", "2020-03-31"], ["2020-04-30", "2020-05-31"]),           # month ends
    (["2020-01-15", "2020-02-15", "2020-03-15"], ["2020-04-15", "2020-05-15"]),
    (["2019-07-01", "2019-10-01", "2020-01-01"], ["2020-04-01", "2020-07-01"]),           # quarterly
    (["2020-01-01", "2020-01-08", "2020-01-15"], ["2020-01-22", "2020-01-29"]),           # weekly
])
def test_future_dates_follow_the_calendar(dates, want):
    d = np.array(dates, dtype="datetime64[D]")
    assert [str(x) for x in future_dates(d, infer_frequency(d), 2)] == want


def test_business_days_skip_the_weekend():
    d = np.busday_offset(np.datetime64("2024-01-01"), np.arange(12))          # Mon 1 Jan .. Tue 16 Jan
    assert [str(x) for x in future_dates(d, infer_frequency(d), 4)] == \
        ["2024-01-17", "2024-01-18", "2024-01-19", "2024-01-22"]


def test_mase_and_smape():
    y = np.array([1.0, 2, 3, 4, 5, 6])
    assert mase_scale(y, 1) == 1.0 and mase_scale(y, 2) == 2.0 and mase_scale(np.ones(5), 1) is None
    m = metrics(np.array([2.0, 4]), np.array([3.0, 4]), scale=2.0)
    assert m["mase"] == pytest.approx(0.25) and m["smape"] == pytest.approx(100 * (2 / 5) / 2)
    assert metrics(np.zeros(2), np.zeros(2))["smape"] == 0.0


def test_comb_is_the_mean_of_ets_arima_and_theta():
    pytest.importorskip("statsmodels")
    from rnnkit.forecast.classic import classic_forecasts
    rng = np.random.default_rng(0)
    t = np.arange(120)
    y = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, 120)
    out = classic_forecasts(y, 80, 12, np.arange(79, 110), 3)
    assert all(out[k].shape == (31, 3) for k in ("ets", "arima", "theta"))
    np.testing.assert_allclose(out["comb"], (out["ets"] + out["arima"] + out["theta"]) / 3)


def test_the_future_bands_are_calibrated_on_the_tail_and_the_test_part():
    """The future follows the test part: its bands come from every out-of-sample error the
    evaluation saw (the training tail's windows and the test part's rows), not the tail alone."""
    from rnnkit.core.config import ForecastConfig
    from rnnkit.forecast import fit_forecast
    from rnnkit.forecast.future import add_future
    from rnnkit.forecast.intervals import quantiles
    from rnnkit.forecast.series import Series
    n, t = 120, np.arange(120)
    y = 100 + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(3).normal(0, 1, n) * np.where(t >= 84, 3, 1)
    dates = (np.datetime64("2010-01", "M") + t).astype("datetime64[D]")
    s = Series("s", ["y"], y[:, None], dates, np.arange(1, n + 1))
    cfg = ForecastConfig(horizon=2, level=[80.0, 95.0], epochs=2, hidden=4, ensemble=1, classic="off")
    logs: list[str] = []
    _, _, res = fit_forecast(cfg, s, ["y"], "y", log=logs.append)
    add_future(res, [s], log=logs.append)
    fitted, again, test = res.extra["fitted"], res.extra["refitted"], res.extra["test_scores"]
    assert test.shape == (n - res.n_train, 2) and len(again.scores) == len(fitted.scores) + len(test)
    want = quantiles(np.concatenate([fitted.scores, test]), [80.0, 95.0])[0]
    for level in (80.0, 95.0):
        np.testing.assert_allclose(again.quantiles[level], want[level])
    assert not np.allclose(again.quantiles[80.0], fitted.quantiles[80.0])
    # the tail's windows are too few for a 95% band; with the test part's rows the future has one
    assert len(fitted.scores) < 19 and 95.0 not in fitted.quantiles and res.intervals["95"]["coverage"] is None
    step = res.future["steps"][1]
    half = (step["upper_95"] - step["lower_95"]) / (step["upper_80"] - step["lower_80"])
    assert half == pytest.approx(want[95.0][1] / want[80.0][1])
    assert f"future intervals: calibrated on {len(again.scores)} out-of-sample windows" in "\n".join(logs)
    assert res.future["calibration_windows"] == len(again.scores)
