"""Reading real files: missing values refused with their count, or filled as asked (fill.py);
`;` and tab delimiters; --date-format."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnkit.core.config import UsageError
from rnnkit.forecast.demo_series import load_series

ROWS = ["2020-01-01,1,10", "2020-01-02,,20", "2020-01-03,3,", "2020-01-04,4,40", "2020-01-05,,50",
        "2020-01-06,6,60"]


def csv(tmp_path: Path, rows=ROWS, header="Date,A,Close", sep=",") -> str:
    p = tmp_path / "m.csv"
    p.write_text("\n".join([header.replace(",", sep)] + [r.replace(",", sep) for r in rows]) + "\n")
    return str(p)


def test_missing_values_are_refused_with_count_and_first_line(tmp_path):
    with pytest.raises(UsageError) as e:
        load_series(csv(tmp_path))
    msg = str(e.value)
    assert "line 3 column 2 (A): empty cell" in msg and "3 missing value(s)" in msg and "--fill" in msg


def test_nan_and_na_count_as_missing(tmp_path):
    with pytest.raises(UsageError, match=r"line 2 column 2 \(A\): 'NA' is not a finite number \(2 missing"):
        load_series(csv(tmp_path, ["2020-01-01,NA,1", "2020-01-02,nan,2", "2020-01-03,3,3"]))


def test_fill_ffill(tmp_path):
    s, _, _ = load_series(csv(tmp_path), fill="ffill")
    np.testing.assert_array_equal(s.column("A"), [1, 1, 3, 4, 4, 6])
    np.testing.assert_array_equal(s.column("Close"), [10, 20, 20, 40, 50, 60])
    assert "filled 3 missing value(s)" in s.notes[0]


def test_fill_ffill_drops_leading_missing_rows(tmp_path):
    s, _, _ = load_series(csv(tmp_path, ["2020-01-01,,1"] + ROWS[1:]), fill="ffill")   # A: 2 leading gaps
    assert len(s.values) == 4 and str(s.dates[0]) == "2020-01-03"
    assert "dropped 2 leading row(s)" in s.notes[0]


def test_fill_interpolate_in_time(tmp_path):
    rows = ["2020-01-01,0,1", "2020-01-02,,2", "2020-01-05,8,3"]       # 1 day after, then 3 days
    s, _, _ = load_series(csv(tmp_path, rows), fill="interpolate")
    np.testing.assert_allclose(s.column("A"), [0, 2, 8])                 # 1/4 of the way in time
    s, _, _ = load_series(csv(tmp_path), fill="interpolate")
    np.testing.assert_allclose(s.column("A"), [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(s.column("Close"), [10, 20, 30, 40, 50, 60])


def test_fill_drop(tmp_path):
    s, _, _ = load_series(csv(tmp_path), fill="drop")
    assert [str(d) for d in s.dates] == ["2020-01-01", "2020-01-04", "2020-01-06"]
    assert list(s.lines) == [2, 5, 7]


def test_only_used_columns_count(tmp_path):
    s, feats, _ = load_series(csv(tmp_path, [r for r in ROWS if not r.endswith(",")]), features="Close")
    assert feats == ["Close"] and len(s.values) == 5                     # A's gaps do not matter


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_delimiters(tmp_path, sep):
    s, feats, tgt = load_series(csv(tmp_path, ROWS[:1] + ROWS[3:4], sep=sep))
    assert feats == ["A", "Close"] and tgt == "Close"
    np.testing.assert_array_equal(s.values, [[1, 10], [4, 40]])


def test_date_format(tmp_path):
    rows = ["31/01/2020,1,2", "01/02/2020,2,3", "02/02/2020,3,4"]
    s, _, _ = load_series(csv(tmp_path, rows), date_format="%d/%m/%Y")
    assert str(s.dates[0]).startswith("2020-01-31")
    with pytest.raises(UsageError, match=r"line 2 column 1 \(Date\): cannot read date '31/01/2020'.*--date-format"):
        load_series(csv(tmp_path, rows))
