"""rnnkit forecast's command line: strict JSON, a saved forecaster is never silently replaced
(--force), awkward --out and file names, built-in series, horizons and levels, 0.1 checkpoints."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import main

QUICK = ["--epochs", "2", "--hidden", "4", "--ensemble", "1", "--classic", "off"]


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def strict(line: str) -> dict:
    def refuse(c):
        raise AssertionError(f"non-strict JSON constant {c}")
    return json.loads(line, parse_constant=refuse)


def refused(capsys, *argv) -> str:
    code, _, err = cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    return lines[0]


def walk_csv(path: Path, n: int = 60, flat_tail: int = 0) -> Path:
    rng = np.random.default_rng(0)
    y = 100 + np.cumsum(rng.normal(0, 1, n))
    if flat_tail:
        y[-flat_tail:] = y[-flat_tail - 1]
    days = np.datetime64("2020-01-01") + np.arange(n)
    path.write_text("Date,t,y\n" + "\n".join(f"{d},{i},{v:.6f}" for i, (d, v) in enumerate(zip(days, y))) + "\n")
    return path


def test_zero_naive_rmse_gives_null_skill_and_strict_json(capsys, tmp_path):
    path = walk_csv(tmp_path / "flat.csv", flat_tail=19)            # the whole test part repeats the last value
    code, out, _ = cli(capsys, "forecast", path, "--out", tmp_path / "r", "--json", *QUICK)
    assert code == 0
    res = strict(out.strip().splitlines()[-1])
    assert res["naive"]["rmse"] == 0 and res["skill"] is None and res["beat_naive"] is False
    assert "naive forecast is exact" in res["skill_reason"] and "skill undefined" in out
    strict((tmp_path / "r" / "metrics.json").read_text())
    assert "Infinity" not in out and "NaN" not in out


def digest(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_a_saved_forecaster_is_replaced_only_with_force(capsys, tmp_path):
    path, run = walk_csv(tmp_path / "a.csv"), tmp_path / "run"
    assert cli(capsys, "forecast", path, "--out", run, *QUICK)[0] == 0
    assert {p.name for p in run.iterdir()} == {"forecast.safetensors", "metrics.json", "predictions.csv", "forecast.png",
                                                "future.csv"}
    before = digest(run)
    msg = refused(capsys, "forecast", path, "--out", run, *QUICK)
    assert "already holds a forecaster" in msg and "--force" in msg
    assert digest(run) == before
    assert cli(capsys, "forecast", path, "--out", run, "--force", "--seed", "3", *QUICK)[0] == 0
    assert digest(run)["forecast.safetensors"] != before["forecast.safetensors"]


def test_out_that_is_a_file_or_someone_elses_directory(capsys, tmp_path):
    path = walk_csv(tmp_path / "a.csv")
    (tmp_path / "file").write_text("mine")
    assert "is a file, not a run directory" in refused(capsys, "forecast", path, "--out", tmp_path / "file", *QUICK)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    msg = refused(capsys, "forecast", path, "--out", other, "--force", *QUICK)
    assert "is not empty and not a forecast run" in msg and "notes.txt" in msg
    assert (tmp_path / "file").read_text() == "mine" and sorted(os.listdir(other)) == ["notes.txt"]


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses file names that are not UTF-8")
def test_a_file_name_that_is_not_utf8(capsys, tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/prix\xff\xfe.csv"
    walk_csv(Path(os.fsdecode(raw)))
    out_dir = os.fsdecode(os.fsencode(str(tmp_path)) + b"/run\xff")
    code, out, err = cli(capsys, "forecast", os.fsdecode(raw), "--out", out_dir, "--json", *QUICK)
    assert code == 0, err
    assert (Path(out_dir) / "forecast.png").stat().st_size > 10_000
    strict(out.strip().splitlines()[-1])


def test_horizon_and_levels_in_json_predictions_and_predict(capsys, tmp_path):
    path, run = walk_csv(tmp_path / "a.csv", n=120), tmp_path / "run"
    code, out, _ = cli(capsys, "forecast", path, "--out", run, "--horizon", "3", "--level", "50", "--level", "90",
                       "--json", *QUICK)
    assert code == 0
    res = strict(out.strip().splitlines()[-1])
    assert [h["step"] for h in res["horizons"]] == [1, 2, 3] and res["horizon"] == 3
    assert set(res["intervals"]) == {"50", "90"}
    assert res["intervals"]["90"]["mean_width"] > res["intervals"]["50"]["mean_width"]
    assert res["model"] == res["horizons"][-1]["model"]                 # the headline is step H
    head = (run / "predictions.csv").read_text().splitlines()[0]
    assert head == "date,truth,forecast,naive,lower_50,upper_50,lower_90,upper_90"
    code, out, _ = cli(capsys, "forecast", "--predict", run, path, "--json")
    pred = strict(out.strip().splitlines()[-1])
    assert pred["steps"] == [1, 2, 3] and len(pred["forecasts"][-1]["steps"]) == 3
    lo, hi = pred["forecasts"][-1]["intervals"]["90"]
    assert lo < pred["next"] < hi


def test_series_option(capsys, monkeypatch, tmp_path):
    path = walk_csv(tmp_path / "a.csv")
    assert "--series picks a built-in series" in refused(capsys, "forecast", path, "--series", "co2")
    monkeypatch.setitem(sys.modules, "statsmodels", None)             # as if the extra were absent
    msg = refused(capsys, "forecast", "--series", "sunspots", "--out", tmp_path / "r")
    assert "statsmodels, which is not installed" in msg and "rnnkit[classic]" in msg


def test_without_statsmodels_the_classic_yardsticks_say_why(monkeypatch):
    from rnnkit.core.config import ForecastConfig
    from rnnkit.forecast import fit_forecast
    from rnnkit.forecast.series import Series
    monkeypatch.setitem(sys.modules, "statsmodels", None)
    y = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, 80))
    _, _, r = fit_forecast(ForecastConfig(epochs=1, hidden=4, ensemble=1, season=1), Series("w", ["y"], y[:, None]),
                           ["y"], "y", log=lambda m: None)
    assert "statsmodels is not installed" in r.baselines["ets"]["reason"] and r.baselines["ets"]["rmse"] is None
    assert r.best_baseline in ("naive", "drift")


def test_a_checkpoint_from_rnnkit_0_1_still_predicts(capsys, tmp_path):
    """0.1 saved one plain model (keys rnn.*, head.*), level inputs, a config without the new keys."""
    from rnnkit.core.checkpoint import save_checkpoint
    from rnnkit.forecast.inputs import Scaler
    path = walk_csv(tmp_path / "a.csv")
    torch.manual_seed(0)
    rnn, head = torch.nn.LSTM(2, 4, batch_first=True), torch.nn.Linear(4, 1)
    old_cfg = {"target": None, "features": None, "columns": None, "date_column": None, "reverse": False,
               "window": 7, "horizon": 1, "test_fraction": 0.3, "target_mode": "change", "cell": "lstm",
               "layers": 1, "hidden": 4, "dropout": 0.0, "epochs": 2, "val_fraction": 0.2, "batch": 32,
               "lr": 0.001, "seed": 0, "threads": 1}
    sc = Scaler(["t", "y"], np.array([0.0, 90.0]), np.array([41.0, 110.0]))
    tensors = {**{f"model.rnn.{k}": v for k, v in rnn.state_dict().items()},
               **{f"model.head.{k}": v for k, v in head.state_dict().items()}}
    (tmp_path / "old").mkdir()
    save_checkpoint(tmp_path / "old" / "forecast.safetensors", tensors,
                    {"kind": "forecast", "config": old_cfg, "features": ["t", "y"], "target": "y",
                     "columns": ["t", "y"], "scaler": sc.to_dict()})
    code, out, err = cli(capsys, "forecast", "--predict", tmp_path / "old", path, "--json")
    assert code == 0, err
    pred = strict(out.strip().splitlines()[-1])
    vals = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2))
    x = torch.tensor(sc.transform(vals)[None, -7:], dtype=torch.float32)
    with torch.no_grad():
        change = head(rnn(x)[0][:, -1]).item()
    assert pred["next"] == pytest.approx(vals[-1, 1] + change * 20.0, rel=1e-6)


def test_calendar_inputs_need_dates(capsys, tmp_path):
    path = walk_csv(tmp_path / "a.csv", n=80)
    code, out, _ = cli(capsys, "forecast", path, "--out", tmp_path / "r", "--calendar", "--json", *QUICK)
    assert code == 0 and strict(out.strip().splitlines()[-1])["frequency"] == "daily"
    code, out, _ = cli(capsys, "forecast", "--predict", tmp_path / "r", path, "--json")
    assert code == 0 and np.isfinite(strict(out.strip().splitlines()[-1])["next"])
    bare = tmp_path / "bare.csv"
    bare.write_text("t,y\n" + "\n".join(f"{i},{i % 7 + i * 0.1}" for i in range(80)) + "\n")
    assert "--calendar needs dates" in refused(capsys, "forecast", bare, "--calendar", "--out", tmp_path / "s", *QUICK)
