"""Several series in one long-format file (--id-column): one global model, per-series reports."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.core.config import ForecastConfig, UsageError
from rnnkit.forecast import run_forecast
from rnnkit.forecast.demo_series import load_panel


def panel_csv(path: Path, n: int = 120, sep: str = ",") -> Path:
    rng = np.random.default_rng(0)
    days = np.datetime64("2020-01-06") + np.arange(n) * np.timedelta64(7, "D")
    lines = [sep.join(["date", "store", "sales"])]
    for key, base in (("north", 100.0), ("south", 5000.0), ("east", 3.0)):
        y = base + np.cumsum(rng.normal(0, 1, n)) + 4 * np.sin(np.arange(n) * 2 * np.pi / 13)
        lines += [sep.join([str(d), key, f"{v:.5f}"]) for d, v in zip(days, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_long_format_is_split_by_id(tmp_path):
    panel, feats, tgt = load_panel(str(panel_csv(tmp_path / "p.csv")), "store")
    assert [s.key for s in panel] == ["north", "south", "east"] and feats == ["sales"] and tgt == "sales"
    assert all(len(s.values) == 120 for s in panel)
    with pytest.raises(UsageError, match="unknown column 'shop' for --id-column"):
        load_panel(str(tmp_path / "p.csv"), "shop")


def test_one_global_model_with_per_series_and_overall_results(capsys, tmp_path):
    path = panel_csv(tmp_path / "p.csv", sep=";")
    run = tmp_path / "run"
    code = main(["forecast", str(path), "--id-column", "store", "--season", "13", "--epochs", "3", "--hidden", "8",
                 "--ensemble", "1", "--classic", "off", "--out", str(run), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    res = json.loads(out.strip().splitlines()[-1])
    assert res["series_count"] == 3 and set(res["per_series"]) == {"north", "south", "east"}
    assert res["test_rows"] == 3 * 36 and res["window"] == 13
    per = res["per_series"]
    assert all(p["test_rows"] == 36 and "seasonal_naive" in p["baselines"] for p in per.values())
    assert 0 <= res["intervals"]["80"]["coverage"] <= 100
    # each series keeps its own train-only scaler inside the one checkpoint
    from rnnkit.forecast import load_forecaster
    rec = load_forecaster(str(run))
    assert rec.meta["panel"] and set(rec.meta["scalers"]) == {"north", "south", "east"}
    lines = (run / "predictions.csv").read_text().splitlines()
    assert lines[0].startswith("series,date,truth,forecast,naive,lower_80,upper_80") and len(lines) == 1 + 108


def test_panel_fits_one_model_for_all(tmp_path):
    cfg = ForecastConfig(id_column="store", season=13, epochs=2, hidden=4, ensemble=1, classic="off")
    res = run_forecast(cfg, str(panel_csv(tmp_path / "p.csv")), None, log=lambda m: None)
    assert len(res.parts) == 3
    assert res.model["rmse"] == pytest.approx(np.sqrt(np.mean(np.concatenate(
        [(p.pred - p.truth) ** 2 for p in res.parts]))))


def test_a_column_of_names_beside_the_id_is_left_out_of_the_features(tmp_path):
    from rnnkit.forecast.demo_series import load_panel
    rows = "".join(f"{u},{name},{2010 + i // 12}-{i % 12 + 1:02d}-01,{100 + i}\n"
                   for u, name in (("A", "North"), ("B", "South")) for i in range(30))
    (tmp_path / "p.csv").write_text("unique_id,store,ds,y\n" + rows)
    series, feats, tgt = load_panel(str(tmp_path / "p.csv"), "unique_id")
    assert (feats, tgt) == (["y"], "y") and len(series) == 2
    assert series[1].dates[0] == np.datetime64("2010-01-01")      # ds found by its values
