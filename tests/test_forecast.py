"""rnnkit forecast and rnnkit lab stock: strict CSV reading, train-only scaling, the naive
baseline, the saved model's round trip, and the lab on the lecture's file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.core.config import ForecastConfig, UsageError
from rnnkit.forecast import fit_forecast, load_forecaster, metrics, naive_forecast, predict_file, run_forecast
from rnnkit.forecast.demo_series import builtin_series, load_series
from rnnkit.labs import LabOptions, run_lab

STOCK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stock_daily.csv"
FAST = dict(epochs=2, hidden=4, batch=0, seed=0)          # enough to exercise the path, not to learn
HEADER = "Date,Open,High,Low,Volume,Close"


def walk(n: int, seed: int = 0) -> np.ndarray:
    """(n, 5) Open, High, Low, Volume, Close of a positive random walk."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    return np.stack([close + rng.normal(0, .3, n), close + 1 + rng.random(n), close - 1 - rng.random(n),
                     rng.integers(1000, 5000, n), close], axis=1)


def write_csv(path: Path, values: np.ndarray, dates: bool = True, newest_first: bool = False) -> Path:
    days = np.arange("2020-01-01", len(values), dtype="datetime64[D]") if dates else None
    lines = [HEADER if dates else HEADER.split(",", 1)[1]]
    order = range(len(values) - 1, -1, -1) if newest_first else range(len(values))
    for i in order:
        cells = [f"{v:.6f}" for v in values[i]]
        lines.append(",".join(([str(days[i + 0])] if dates else []) + cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv: str) -> str:
    """Run the CLI, expect exit 2 with one line on stderr and no traceback; return the line."""
    code, out, err = cli(capsys, *argv)
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("rnnkit: error: ")
    return lines[0]


# ---- bad input: one line, exit 2, line and column named ------------------------------------

@pytest.fixture
def good(tmp_path) -> Path:
    return write_csv(tmp_path / "good.csv", walk(60))


def edit(path: Path, line: int, column: int, value: str) -> Path:
    """Replace field `column` (1-based) of file line `line` (1-based)."""
    lines = path.read_text().splitlines()
    fields = lines[line - 1].split(",")
    fields[column - 1] = value
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("value, words", [("abc", "not a number ('abc')"), ("", "empty cell"),
                                          ("nan", "not a finite number"), ("inf", "not a finite number"),
                                          ("-Infinity", "not a finite number")])
def test_bad_cell_names_line_and_column(capsys, good, value, words):
    msg = refused(capsys, "forecast", str(edit(good, 9, 4, value)))
    assert "line 9 column 4 (Low)" in msg and words in msg


def test_missing_and_unreadable_files(capsys, tmp_path):
    assert "no such file" in refused(capsys, "forecast", str(tmp_path / "nope.csv"))
    assert "is a directory" in refused(capsys, "forecast", str(tmp_path))
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert "not a UTF-8 text file" in refused(capsys, "forecast", str(tmp_path / "bin.csv"))


def test_no_numeric_rows(capsys, tmp_path):
    (tmp_path / "empty.csv").write_text("# prices\nOpen,Close\n\n")
    assert "no data rows" in refused(capsys, "forecast", str(tmp_path / "empty.csv"))


def test_wrong_number_of_fields(capsys, good):
    lines = good.read_text().splitlines()
    lines[20] += ",7"
    good.write_text("\n".join(lines) + "\n")
    msg = refused(capsys, "forecast", str(good))
    assert "line 21: 7 field(s), expected 6" in msg


def test_unknown_column(capsys, good):
    msg = refused(capsys, "forecast", str(good), "--target", "Price")
    assert "unknown column 'Price' for --target" in msg and "Close" in msg
    assert "for --features" in refused(capsys, "forecast", str(good), "--features", "Open,Volumen")


def test_constant_column(capsys, tmp_path):
    v = walk(60)
    v[:, 3] = 1234.0
    msg = refused(capsys, "forecast", str(write_csv(tmp_path / "c.csv", v)))
    assert "column 'Volume' is constant (1234)" in msg
    v[:, 4] = 55.0                       # the target (Close) constant too: the line says what it means
    msg = refused(capsys, "forecast", str(write_csv(tmp_path / "c2.csv", v)), "--features", "Open,Close")
    assert "column 'Close' is constant (55)" in msg and "its forecast is 55" in msg


def test_constant_only_in_test_part_is_fine_but_in_train_part_is_refused(tmp_path):
    v = walk(60)
    v[50:, 3] = 7.0                      # constant over the test rows only: the scaler never looks
    s, feats, tgt = load_series(str(write_csv(tmp_path / "t.csv", v)))
    fit_forecast(ForecastConfig(**FAST), s, feats, tgt, log=lambda m: None)


def test_too_few_rows_and_window_zero(capsys, tmp_path):
    path = write_csv(tmp_path / "short.csv", walk(9))
    msg = refused(capsys, "forecast", str(path))
    assert "9 rows are too few for --window 7" in msg and "need at least 11 rows" in msg
    s, feats, tgt = load_series(str(write_csv(tmp_path / "enough.csv", walk(11))))
    res = fit_forecast(ForecastConfig(**FAST), s, feats, tgt, log=lambda m: None)[2]
    assert len(res.rows) == 3                                  # 11 rows: 8 train, 3 test
    assert "--window must be >= 1 (got 0)" in refused(capsys, "forecast", str(path), "--window", "0")


def test_header_problems(capsys, tmp_path):
    (tmp_path / "nohead.csv").write_text("1,2\n3,4\n")
    assert "line 1: no header row" in refused(capsys, "forecast", str(tmp_path / "nohead.csv"))
    (tmp_path / "dates.csv").write_text("Date,Close\n2020-01-02,1\n2020-01-01,2\n2020-01-03,3\n")
    assert "line 4: date 2020-01-03 is out of order" in refused(capsys, "forecast", str(tmp_path / "dates.csv"))
    (tmp_path / "baddate.csv").write_text("Date,Close\n2020-01-02,1\n02/01/2020,2\n")
    assert "line 3 column 1 (Date): cannot read date" in refused(capsys, "forecast", str(tmp_path / "baddate.csv"))


# ---- reading -----------------------------------------------------------------------------

def test_newest_first_dates_are_flipped_and_columns_option(tmp_path):
    v = walk(30)
    s, _, _ = load_series(str(write_csv(tmp_path / "new.csv", v, newest_first=True)))
    np.testing.assert_allclose(s.column("Close"), v[:, 4], atol=1e-6)
    assert s.dates[0] < s.dates[-1]
    path = tmp_path / "bare.csv"
    path.write_text("\n".join(",".join(f"{x:.6f}" for x in row) for row in v[::-1]) + "\n")
    s, feats, tgt = load_series(str(path), columns="o,h,l,vol,close", reverse=True)
    assert tgt == "close" and feats == ["o", "h", "l", "vol", "close"]
    np.testing.assert_allclose(s.column("close"), v[:, 4], atol=1e-6)


def test_a_column_of_iso_dates_is_the_dates_whatever_its_name(tmp_path):
    # the classic monthly file: Month,#Passengers with 1949-01 (no column named date)
    rows = "".join(f"{1949 + i // 12}-{i % 12 + 1:02d},{100 + i % 12}\n" for i in range(36))
    (tmp_path / "air.csv").write_text("Month,#Passengers\n" + rows)
    s, feats, tgt = load_series(str(tmp_path / "air.csv"))
    assert tgt == "#Passengers" and feats == ["#Passengers"]
    assert s.dates[0] == np.datetime64("1949-01") and s.dates[-1] == np.datetime64("1951-12")
    # numbers (a year alone) and other words stay columns
    (tmp_path / "years.csv").write_text("year,sales\n" + "".join(f"{1990 + i},{i}\n" for i in range(20)))
    s, feats, _ = load_series(str(tmp_path / "years.csv"))
    assert s.dates is None and feats == ["year", "sales"]
    (tmp_path / "ids.csv").write_text("code,sales\n" + "".join(f"A{i},{i}\n" for i in range(20)))
    s, feats, _ = load_series(str(tmp_path / "ids.csv"))          # a code per row: a label, left out
    assert s.dates is None and feats == ["sales"]


def test_files_written_by_r_and_pandas_read_as_they_look(tmp_path):
    rows = [(f"{1987 + i // 12}-{i % 12 + 1:02d}", 100.0 + i) for i in range(30)]
    r_csv = '"","Month","Sales"\n' + "".join(f'"{i + 1}","{m}",{v}\n' for i, (m, v) in enumerate(rows))
    pandas_csv = ",Month,Sales\n" + "".join(f"{i},{m},{v}\n" for i, (m, v) in enumerate(rows))
    rdatasets_csv = "rownames,Month,Sales\n" + "".join(f"{i + 1},{m},{v}\n" for i, (m, v) in enumerate(rows))
    for name, text in (("r.csv", r_csv), ("pandas.csv", pandas_csv), ("rdatasets.csv", rdatasets_csv)):
        (tmp_path / name).write_text(text)
        s, feats, tgt = load_series(str(tmp_path / name))
        assert (feats, tgt) == (["Sales"], "Sales"), name          # quotes gone, row numbers dropped
        assert s.dates[0] == np.datetime64("1987-01") and s.column("Sales")[-1] == 129.0
    (tmp_path / "odd.csv").write_text(",Month,Sales\n" + "".join(f"{7 * i},{m},{v}\n" for i, (m, v) in enumerate(rows)))
    with pytest.raises(UsageError, match="the first column has no name in the header and does not hold row numbers"):
        load_series(str(tmp_path / "odd.csv"))


def test_a_decimal_comma_between_semicolons_or_tabs_is_a_decimal_point(tmp_path):
    rows = [(f"{2010 + i // 12}-{i % 12 + 1:02d}-01", 100.25 + i) for i in range(30)]
    for name, sep in (("semi.csv", ";"), ("tabs.tsv", "\t")):
        (tmp_path / name).write_text(f"date{sep}sales\n" + "".join(f"{d}{sep}{v:.2f}\n".replace(".", ",")
                                                                    for d, v in rows))
        s, _, _ = load_series(str(tmp_path / name))
        np.testing.assert_allclose(s.column("sales"), [v for _, v in rows])
    # between commas a comma cannot be a decimal: the quoted cell is refused with the hint
    (tmp_path / "commas.csv").write_text("date,sales\n" + "".join(f'{d},"{v:.2f}"\n'.replace(".", ",")
                                                                 for d, v in rows))
    with pytest.raises(UsageError, match="a decimal comma"):
        load_series(str(tmp_path / "commas.csv"))


def test_a_column_of_labels_is_left_out_or_names_the_series(tmp_path):
    # statsforecast's long format with one series: unique_id,ds,y
    rows = [(f"{2010 + i // 12}-{i % 12 + 1:02d}-01", 100.0 + i) for i in range(30)]
    (tmp_path / "one.csv").write_text("unique_id,ds,y\n" + "".join(f"A,{d},{v}\n" for d, v in rows))
    s, feats, tgt = load_series(str(tmp_path / "one.csv"))
    assert (feats, tgt) == (["y"], "y") and s.dates[0] == np.datetime64("2010-01-01")
    # two series in one file: the line says which column names them
    (tmp_path / "two.csv").write_text("unique_id,ds,y\n" + "".join(f"{u},{d},{v}\n" for u in "AB" for d, v in rows))
    with pytest.raises(UsageError, match="column 'unique_id' holds 2 different labels .A, B.: the rows are several "
                                         "series; give --id-column unique_id"):
        load_series(str(tmp_path / "two.csv"))
    (tmp_path / "words.csv").write_text("ds,name\n" + "".join(f"{d},w{i % 3}\n" for i, (d, _) in enumerate(rows)))
    with pytest.raises(UsageError, match=r"several series"):
        load_series(str(tmp_path / "words.csv"))
    (tmp_path / "codes.csv").write_text("ds,name\n" + "".join(f"{d},w{i}\n" for i, (d, _) in enumerate(rows)))
    with pytest.raises(UsageError, match=r"no column of numbers to forecast \(columns: ds, name\); the file needs one"):
        load_series(str(tmp_path / "codes.csv"))
    # a numeric column with a word in its first row is a bad cell, not labels
    (tmp_path / "bad.csv").write_text("ds,x,y\n" + "".join(f"{d},{'oops' if i == 0 else i},{v}\n"
                                                           for i, (d, v) in enumerate(rows)))
    with pytest.raises(UsageError, match=r"line 2 column 2 \(x\): not a number \('oops'\)"):
        load_series(str(tmp_path / "bad.csv"))


def test_comment_header_of_the_lecture_file():
    if not STOCK.exists():
        pytest.skip("../shared/data/stock_daily.csv is not here")
    s, feats, tgt = load_series(str(STOCK), reverse=True)
    assert feats == ["Open", "High", "Low", "Volume", "Close"] and tgt == "Close"
    assert s.lines[-1] == 3                                  # the newest row is the file's first
    assert s.values.shape == (732, 5)


def test_builtin_series_is_oldest_first_goog():
    s = builtin_series()
    assert s.columns == ["Open", "High", "Low", "Volume", "Close"] and len(s.values) == 1047
    assert (np.diff(s.dates.astype("int64")) > 0).all()


# ---- honesty: scaling from the train part, the naive baseline ------------------------------

def test_scaler_comes_from_the_training_rows_only(tmp_path):
    cfg = ForecastConfig(**FAST, future=False, classic="off")   # the evaluation's model; no yardsticks needed
    v = walk(100)
    base = run_forecast(cfg, str(write_csv(tmp_path / "a.csv", v)), str(tmp_path / "a"), log=lambda m: None)
    n_train = base.n_train
    changed = v.copy()
    changed[n_train:] *= 3.0                                  # the future: ranges far outside the past
    run_forecast(cfg, str(write_csv(tmp_path / "b.csv", changed)), str(tmp_path / "b"), log=lambda m: None)
    changed_train = v.copy()
    changed_train[n_train - 1] *= 3.0                         # the last training row: must matter
    run_forecast(cfg, str(write_csv(tmp_path / "c.csv", changed_train)), str(tmp_path / "c"), log=lambda m: None)
    sa, sb, sc = (load_forecaster(str(tmp_path / d)).scaler for d in "abc")
    np.testing.assert_array_equal(sa.lo, sb.lo)
    np.testing.assert_array_equal(sa.hi, sb.hi)
    assert not np.array_equal(sa.hi, sc.hi)
    np.testing.assert_allclose(sa.hi, v[:n_train].max(axis=0), rtol=1e-6)


def test_naive_baseline_on_a_known_series(tmp_path):
    # y_t = t^2: the last value misses row t by t^2 - (t-h)^2 = 2th - h^2
    t = np.arange(40.0)
    y = t ** 2 + 1
    for h in (1, 3):
        rows = np.arange(30, 40)
        np.testing.assert_array_equal(naive_forecast(y, rows, h), (rows - h) ** 2 + 1)
        err = 2 * rows * h - h * h
        m = metrics(y[rows], naive_forecast(y, rows, h))
        assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)))
        assert m["mae"] == pytest.approx(np.mean(err))
        assert m["mape"] == pytest.approx(np.mean(err / (rows ** 2 + 1)) * 100)
    # and the command uses it: a table of t, t^2+1 with 10 test rows
    path = tmp_path / "sq.csv"
    path.write_text("t,y\n" + "\n".join(f"{a:g},{b:g}" for a, b in zip(t, y)) + "\n")
    s, feats, tgt = load_series(str(path), target="y")
    res = fit_forecast(ForecastConfig(test_fraction=0.25, horizon=3, **FAST), s, feats, tgt, log=lambda m: None)[2]
    rows = np.arange(30, 40)
    assert res.baseline["rmse"] == pytest.approx(np.sqrt(np.mean((6 * rows - 9) ** 2)))
    assert res.skill == pytest.approx(1 - res.model["rmse"] / res.baseline["rmse"])


# ---- the command, the saved model, the lab ----------------------------------------------

def test_forecast_cli_json_plot_and_predict_round_trip(capsys, tmp_path, good):
    run = tmp_path / "run"
    # the evaluation's model is saved (no refit); the network alone, as --predict refits the
    # classical members of a combination on the rows it is given
    code, out, _ = cli(capsys, "forecast", str(good), "--out", str(run), "--epochs", "2", "--hidden", "4",
                       "--json", "--no-future", "--combine", "off")
    assert code == 0
    res = json.loads(out.strip().splitlines()[-1])
    assert res["future"] is None and not (run / "future.csv").exists()
    assert {"model", "naive", "skill", "beat_naive"} <= set(res) and res["test_rows"] == 18
    assert "did NOT beat" in out or "beat the naive" in out
    assert (run / "forecast.png").stat().st_size > 10_000
    # predicting the same file reproduces the test forecasts: same weights, same saved scaler
    code, out, _ = cli(capsys, "forecast", "--predict", str(run), str(good), "--json")
    assert code == 0
    pred = json.loads(out.strip().splitlines()[-1])
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["model"] == res["model"]
    fc = np.array([f["forecast"] for f in pred["forecasts"]])   # window ends 6 .. 59
    truth = walk(60)[:, 4]
    rows = np.arange(42, 60)
    rmse = np.sqrt(np.mean((fc[rows - 1 - 6] - truth[rows]) ** 2))
    assert rmse == pytest.approx(res["model"]["rmse"], rel=1e-4)
    assert pred["next"] == fc[-1] and pred["forecasts"][-1]["date"] == "2020-02-29"
    # predict refuses the model's own settings and runs without a model
    assert "--window cannot be used with --predict" in refused(capsys, "forecast", "--predict", str(run),
                                                               str(good), "--window", "3")
    assert "no forecast model here" in refused(capsys, "forecast", "--predict", str(tmp_path), str(good))


def test_predict_applies_the_saved_scaler_to_new_rows(tmp_path):
    cfg = ForecastConfig(**FAST)
    run_forecast(cfg, str(write_csv(tmp_path / "a.csv", walk(80))), str(tmp_path / "r"), log=lambda m: None)
    model, scaler, _, _ = load_forecaster(str(tmp_path / "r"))
    new = walk(10, seed=5) + 50                                # rows after training, new levels
    got = predict_file(str(tmp_path / "r"), str(write_csv(tmp_path / "n.csv", new)))
    import torch
    x = torch.tensor(scaler.transform(new)[None, -7:], dtype=torch.float32)
    with torch.no_grad():
        change = model(x).item()
    assert got["next"] == pytest.approx(new[-1, 4] + change * scaler.span("Close"), rel=1e-6)
    assert len(got["forecasts"]) == 4


def test_lab_stock_on_the_lecture_file():
    if not STOCK.exists():
        pytest.skip("../shared/data/stock_daily.csv is not here")
    logs = []
    res = run_lab("stock", LabOptions(data=str(STOCK), epochs=30, log=logs.append))
    out = res.extra
    assert out["test_rows"] == 220 and out["train_rows"] == 512
    close = np.loadtxt(STOCK, delimiter=",", comments="#")[::-1, 4]   # oldest first
    naive = close[511:-1] - close[512:]
    assert out["naive"]["rmse"] == pytest.approx(np.sqrt(np.mean(naive ** 2)))
    assert np.isfinite(out["model"]["rmse"]) and "naive (last value)" in "\n".join(logs)
    assert "training rows only" in "\n".join(logs)


def test_lab_stock_refuses_a_file_without_close(capsys, tmp_path):
    (tmp_path / "x.csv").write_text("Open,High,Low,Volume\n1,2,3,4\n")
    msg = refused(capsys, "lab", "stock", "--data", str(tmp_path / "x.csv"))
    assert "unknown column 'Close'" in msg
