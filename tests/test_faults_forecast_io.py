"""Issue 26, forecast inputs and files (table-driven; each case failed before its fix):
5. finite but huge values (near 1e300, 1.7e308) are refused at reading, naming line and column
   (they gave inf errors, nan skill and a verdict built on them, or a statsmodels traceback);
6. cells that are not dates (empty, NaT, today, now) are refused on their own line;
7. predictions.csv is written with the csv module: an id holding a comma or a quote stays one field;
and the gaps: an empty series id, a decimal comma or digit groups, --backtest with too many folds
said before any training."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from rnnkit.cli import main

QUICK = ["--epochs", "2", "--hidden", "4", "--ensemble", "1", "--classic", "off", "--threads", "1"]


def write(path, header: str, rows: list[str]):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def walk(n: int = 80, scale: float = 1.0, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(scale * (100 + np.cumsum(rng.normal(0, 1, n))))


def dated(values, start="2020-01-01") -> list[str]:
    days = np.datetime64(start) + np.arange(len(values))
    return [f"{d},{float(v)!r}" for d, v in zip(days, values)]


def refused(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


HUGE = [  # (id, rows of date,value): each a finite float the arithmetic cannot carry
    ("near 1e300", dated(walk(80, 1e298))),
    ("near 1.7e308", dated([1.7e308 * (1 - 0.001 * i) for i in range(80)])),
    ("one huge row", dated(walk(79) + [1e200])),
    ("huge and negative", dated(walk(79) + [-1e150])),
]


@pytest.mark.parametrize("rows", [c[1] for c in HUGE], ids=[c[0] for c in HUGE])
def test_huge_values_are_refused_with_their_line(capsys, tmp_path, rows):
    path = write(tmp_path / "s.csv", "date,value", rows)
    err = refused(capsys, "forecast", path, "--out", tmp_path / "run", *QUICK)
    assert "rescale the column" in err and "line " in err
    assert not (tmp_path / "run").exists()


def test_huge_values_are_refused_by_predict_too(capsys, tmp_path):
    path = write(tmp_path / "s.csv", "date,value", dated(walk()))
    assert main(["forecast", str(path), "--out", str(tmp_path / "run"), *QUICK]) == 0
    capsys.readouterr()
    new = write(tmp_path / "new.csv", "date,value", dated(walk(30)[:-1] + [1e300]))
    assert "rescale the column" in refused(capsys, "forecast", "--predict", tmp_path / "run", new)


NOT_DATES = [  # (id, the date cell, the line it is on)
    ("empty in the last row", "", 81), ("empty in the middle", "", 40), ("NaT", "NaT", 81),
    ("nat", "nat", 12), ("today", "today", 81), ("now", "now", 30), ("blank", " ", 81),
]


@pytest.mark.parametrize("cell,line", [c[1:] for c in NOT_DATES], ids=[c[0] for c in NOT_DATES])
def test_cells_that_are_not_dates_are_refused_on_their_line(capsys, tmp_path, cell, line):
    rows = dated(walk())
    rows[line - 2] = f"{cell},{rows[line - 2].split(',')[1]}"
    path = write(tmp_path / "s.csv", "date,value", rows)
    err = refused(capsys, "forecast", path, "--out", tmp_path / "run", *QUICK)
    assert f"line {line} column 1 (date): cannot read date" in err, err


NUMBERS = [  # (id, the cell, what the hint says)
    ("decimal comma", '"100,1257"', "decimal comma"), ("digit groups", '"1,234,567.5"', "digit groups"),
    ("dotted groups", '"1.234.567,5"', "digit groups"), ("a word", "abc", "not a number ('abc')"),
]


@pytest.mark.parametrize("cell,hint", [c[1:] for c in NUMBERS], ids=[c[0] for c in NUMBERS])
def test_numbers_in_another_notation_get_a_hint(capsys, tmp_path, cell, hint):
    rows = dated(walk())
    rows[10] = rows[10].split(",")[0] + "," + cell
    path = write(tmp_path / "s.csv", "date,value", rows)
    assert hint in refused(capsys, "forecast", path, "--out", tmp_path / "run", *QUICK)


def panel(tmp_path, ids: list[str]):
    rows = []
    for k, key in enumerate(ids):
        quoted = '"' + key.replace('"', '""') + '"'
        rows += [f"{quoted},{r}" for r in dated(walk(60, seed=k))]
    return write(tmp_path / "p.csv", "store,date,sales", rows)


IDS = [("comma", ["north, east", "south"]), ('quote', ['the "big" one', "small"]),
       ("newline-free but both", ['a,"b"', "c"])]


@pytest.mark.parametrize("ids", [c[1] for c in IDS], ids=[c[0] for c in IDS])
def test_predictions_csv_keeps_one_field_per_column(capsys, tmp_path, ids):
    run = tmp_path / "run"
    assert main(["forecast", str(panel(tmp_path, ids)), "--id-column", "store", "--season", "7",
                 "--out", str(run), *QUICK]) == 0
    rows = list(csv.reader(io.StringIO((run / "predictions.csv").read_text())))
    assert all(len(r) == len(rows[0]) for r in rows) and rows[0][0] == "series"
    assert {r[0] for r in rows[1:]} == set(ids)


def test_an_empty_series_id_is_refused(capsys, tmp_path):
    path = panel(tmp_path, ["north", "south"])
    text = path.read_text().splitlines()
    text[5] = text[5].replace('"north"', "")
    path.write_text("\n".join(text) + "\n")
    assert "line 6 column 1 (store): empty series id" in refused(
        capsys, "forecast", path, "--id-column", "store", "--out", tmp_path / "run", *QUICK)


def test_too_many_folds_are_refused_before_training(capsys, tmp_path):
    path = write(tmp_path / "s.csv", "date,value", dated(walk()))
    err = refused(capsys, "forecast", path, "--backtest", "100", "--out", tmp_path / "run", *QUICK)
    assert "fewer than one per fold" in err and "--step 0" not in err
    assert "epoch" not in capsys.readouterr().out and not (tmp_path / "run").exists()
