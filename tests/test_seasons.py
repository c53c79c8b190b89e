"""seasons.py: the frequency, season, gaps and default window from the dates."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.forecast.seasons import calendar_features, default_window, infer_frequency, read_date


def days(start: str, n: int, step: int = 1) -> np.ndarray:
    return np.datetime64(start) + np.arange(n) * np.timedelta64(step, "D")


@pytest.mark.parametrize("dates, name, season", [
    (days("2020-01-01", 60), "daily", 7),
    (np.busday_offset("2020-01-06", np.arange(60)), "business daily", 5),
    (days("2020-01-04", 60, 7), "weekly", 52),
    (np.arange("2000-01", "2010-01", dtype="datetime64[M]").astype("datetime64[D]"), "monthly", 12),
    (np.arange("2000-01", "2010-01", 3, dtype="datetime64[M]").astype("datetime64[D]"), "quarterly", 4),
    (np.arange("1700", "1800", dtype="datetime64[Y]").astype("datetime64[D]"), "yearly", 1),
    (np.datetime64("2020-01-01T00") + np.arange(100) * np.timedelta64(1, "h"), "hourly", 24),
])
def test_frequency_and_season_from_dates(dates, name, season):
    f = infer_frequency(dates)
    assert (f.name, f.season) == (name, season)
    assert f.gaps == []
    assert (np.diff(f.periods) == 1).all()


def test_a_missing_week_is_a_gap_not_a_shorter_season():
    d = days("2020-01-04", 60, 7)
    d = np.delete(d, [10, 30, 31])                    # one week missing, then two
    f = infer_frequency(d)
    assert (f.name, f.season) == ("weekly", 52)
    assert f.gaps == [(10, 1), (29, 2)]
    assert "2 gap(s) in the dates (3 missing step(s)" in f.describe(d)


def test_no_dates_or_too_few():
    assert infer_frequency(None) is None and infer_frequency(days("2020-01-01", 2)) is None


def test_default_window_covers_a_season():
    assert default_window(7, "daily") == 7
    assert default_window(52, "weekly") == 52
    assert default_window(12, "monthly") == 12
    assert default_window(4, "quarterly") == 7          # at least 7 steps
    assert default_window(1, "yearly") == 20
    assert default_window(1, None) == 7


def test_calendar_features_repeat_with_the_season():
    f = infer_frequency(np.arange("2000-01", "2004-01", dtype="datetime64[M]").astype("datetime64[D]"))
    cal = calendar_features(f, f.periods)
    assert cal.shape == (48, 2)
    np.testing.assert_allclose(cal[:12], cal[12:24], atol=1e-12)    # same month, same features
    assert not np.allclose(cal[0], cal[6])


@pytest.mark.parametrize("text, want", [
    ("1949-01", "1949-01"), ("2017-01-31", "2017-01-31"), ("2020-01-02 09:30", "2020-01-02T09:30"),
    ("1981 Q1", "1981-01"), ("1981Q4", "1981-10"), ("1981-Q2", "1981-04"),           # tsibble, pandas
    ("1987 Jan", "1987-01"), ("Jan 1987", "1987-01"), ("1987-December", "1987-12"),
    ("2016 W05", "2016-02-01"), ("2015 W53", "2015-12-28"),                           # ISO weeks: Monday
    ("2017/01/31", "2017-01-31"), ("1987-1", "1987-01"), ("2017-1-5", "2017-01-05"),
    ("2017-01-31T00:00:00Z", "2017-01-31T00:00:00"),
])
def test_read_date_reads_iso_dates_and_printed_periods(text, want):
    assert read_date(text) == np.datetime64(want)


@pytest.mark.parametrize("text", ["1987 Janu", "Q1 1981", "1981 Q5", "2015 W54", "A1", "", "today", "now", "NaT",
                                  "2017-13", "2017/02/30"])
def test_read_date_refuses_what_is_not_a_date(text):
    assert read_date(text) is None


def test_printed_periods_in_a_file_give_their_frequency(tmp_path):
    from rnnkit.forecast.demo_series import load_series
    months = [f"{1987 + i // 12} {'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split()[i % 12]}" for i in range(48)]
    (tmp_path / "souvenirs.csv").write_text("Month,Sales\n" + "".join(f"{m},{100 + i}\n" for i, m in enumerate(months)))
    s, _, _ = load_series(str(tmp_path / "souvenirs.csv"))
    assert infer_frequency(s.dates).name == "monthly" and s.dates[-1] == np.datetime64("1990-12")
    quarters = [f"{1998 + i // 4} Q{i % 4 + 1}" for i in range(40)]
    (tmp_path / "takings.csv").write_text("Quarter,Takings\n" + "".join(f"{q},{i}\n" for i, q in enumerate(quarters)))
    s, _, _ = load_series(str(tmp_path / "takings.csv"))
    assert infer_frequency(s.dates).name == "quarterly" and infer_frequency(s.dates).season == 4
