"""What the dates say: the series' frequency, its season, gaps, and calendar features.

    freq = infer_frequency(series.dates)    # Frequency("weekly", season=52, ...)
    window = default_window(freq.season, freq.name)

The frequency comes from the median spacing of the dates (1 day, 7 days, a month, ...). Each row
gets a period number on that scale (day, business day, week, month index, ...), so a missing week
in a weekly series shows as a jump of 2 in the period numbers: a gap, reported, not a shorter
season. Calendar features are computed from period numbers, so they extend past the last row.
A date cell is read by read_date: ISO dates, or periods as R's tsibble and pandas print them.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

import numpy as np

# name -> (season in steps, default window); yearly data has no season but long cycles
SEASONS = {"hourly": 24, "daily": 7, "business daily": 5, "weekly": 52, "monthly": 12,
           "quarterly": 4, "yearly": 1, "irregular": 1}
MIN_WINDOW = 7
YEARLY_WINDOW = 20          # two decades: long enough for cycles such as the sunspots' 11 years


@dataclass
class Frequency:
    """name, season (1: none), periods (N,) int per row on the frequency's scale, gaps found."""

    name: str
    season: int
    periods: Optional[np.ndarray] = None
    gaps: list = field(default_factory=list)      # [(row after the gap, missing steps)]

    def describe(self, dates: Optional[np.ndarray] = None) -> str:
        s = f"{self.name} dates, season {self.season}" if self.season > 1 else f"{self.name} dates, no season"
        if self.gaps:
            row, miss = self.gaps[0]
            first = f" before {dates[row]}" if dates is not None else f" before row {row}"
            total = sum(m for _, m in self.gaps)
            s += f"; {len(self.gaps)} gap(s) in the dates ({total} missing step(s), the first{first})"
        return s


def _days(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[s]").astype(np.int64) / 86400.0


def _periods(name: str, dates: np.ndarray) -> np.ndarray:
    d = dates.astype("datetime64[D]")
    if name == "hourly":
        return dates.astype("datetime64[h]").astype(np.int64)
    if name == "business daily":
        return np.busday_count(d[0], d).astype(np.int64)
    if name == "daily":
        return d.astype(np.int64)
    if name == "weekly":
        return np.round(d.astype(np.int64) / 7.0).astype(np.int64)
    months = dates.astype("datetime64[M]").astype(np.int64)
    if name == "monthly":
        return months
    if name == "quarterly":
        return months // 3
    if name == "yearly":
        return dates.astype("datetime64[Y]").astype(np.int64)
    return np.arange(len(dates))


def infer_frequency(dates: Optional[np.ndarray]) -> Optional[Frequency]:
    """The frequency of dated rows (oldest first); None without dates or with fewer than 3."""
    if dates is None or len(dates) < 3:
        return None
    step = float(np.median(np.diff(_days(dates))))
    if step < 0.5:
        name = "hourly" if abs(step * 24 - 1) < 0.01 else "irregular"
    elif step < 1.5:
        weekday = (dates.astype("datetime64[D]").astype(np.int64) + 3) % 7     # 1970-01-01: a Thursday
        name = "business daily" if len(dates) >= 10 and (weekday < 5).all() else "daily"
    elif 6.5 <= step <= 7.5:
        name = "weekly"
    elif 27.5 <= step <= 31.5:
        name = "monthly"
    elif 88 <= step <= 93:
        name = "quarterly"
    elif 360 <= step <= 367:
        name = "yearly"
    else:
        name = "irregular"
    periods = _periods(name, dates)
    jumps = np.diff(periods)
    gaps = [(int(i) + 1, int(j) - 1) for i, j in zip(np.flatnonzero(jumps > 1), jumps[jumps > 1])] \
        if name != "irregular" else []
    return Frequency(name, SEASONS[name], periods, gaps)


def default_window(season: int, freq_name: Optional[str]) -> int:
    """At least one season, at least 7 steps; yearly data: two decades."""
    if freq_name == "yearly" and season <= 1:
        return YEARLY_WINDOW
    return max(MIN_WINDOW, season)


def calendar_features(freq: Frequency, periods: np.ndarray) -> np.ndarray:
    """Period numbers (M,) -> (M, C) sines and cosines of the calendar's phases.

    hourly: hour of day, day of week; daily: day of week, day of year; business daily: weekday,
    day of year; weekly / monthly / quarterly: time of year. Yearly or irregular: none (C = 0)."""
    p = periods.astype(np.float64)
    phases = []
    if freq.name == "hourly":
        phases = [p / 24, p / (24 * 7)]
    elif freq.name == "daily":
        phases = [(p + 3) / 7, p / 365.25]
    elif freq.name == "business daily":
        phases = [p / 5, p / 261.0]
    elif freq.name == "weekly":
        phases = [p * 7 / 365.25]
    elif freq.name == "monthly":
        phases = [p / 12]
    elif freq.name == "quarterly":
        phases = [p / 4]
    cols = [f(2 * np.pi * ph) for ph in phases for f in (np.sin, np.cos)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(p), 0))


def future_dates(dates: np.ndarray, freq: Frequency, horizon: int) -> np.ndarray:
    """The H dates after the last row, on the frequency's calendar, in the dates' own unit.

    Monthly, quarterly and yearly steps keep the last row's day of the month (a series dated on
    month ends stays on month ends); business days skip weekends; an irregular series steps by its
    median spacing."""
    last, k = dates[-1], np.arange(1, horizon + 1)
    day = last.astype("datetime64[D]")
    if freq.name in ("monthly", "quarterly", "yearly"):
        months = {"monthly": 1, "quarterly": 3, "yearly": 12}[freq.name]
        m = day.astype("datetime64[M]") + k * months                     # (H,) month starts
        into = (day - day.astype("datetime64[M]")).astype(np.int64)      # days into the month
        month_end = (day + 1).astype("datetime64[M]") != day.astype("datetime64[M]")
        ends = (m + 1).astype("datetime64[D]") - 1
        out = ends if month_end else np.minimum(m.astype("datetime64[D]") + into, ends)
        return (out + (last - day)).astype(dates.dtype)                  # keep a time of day
    if freq.name == "business daily":
        return (np.busday_offset(day, k, roll="forward") + (last - day)).astype(dates.dtype)
    step = {"hourly": np.timedelta64(1, "h"), "daily": np.timedelta64(1, "D"),
            "weekly": np.timedelta64(7, "D")}.get(freq.name)
    if step is None:                                 # irregular: the median spacing, in seconds
        step = np.timedelta64(int(np.median(np.diff(dates.astype("datetime64[s]").astype(np.int64)))), "s")
    return (last + k * step).astype(dates.dtype)


MONTHS = {name: i + 1 for i, full in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                                "august", "september", "october", "november", "december"))
          for name in (full, full[:3])}            # january and jan -> 1


def read_date(text: str) -> Optional[np.datetime64]:
    """An ISO date (1949-01, 2017-01-31, 2017-01-31 09:30; also 2017/01/31 and 2017-1-5; a time
    zone is read as UTC), or a period as R's tsibble and pandas print them: 1981 Q1 / 1981Q1,
    1987 Jan / Jan 1987 / 1987-January, 2016 W05 (ISO week, its Monday); None otherwise. Quarters
    and months become the month they start."""
    t = text.strip()
    if t.lower() in ("", "nat", "today", "now"):      # numpy reads these as no date or the machine's clock
        return None
    if m := re.fullmatch(r"(\d{4})\s*-?\s*[Qq]([1-4])", t):
        return np.datetime64(f"{m[1]}-{3 * int(m[2]) - 2:02d}")
    if m := re.fullmatch(r"(\d{4})[ -]([A-Za-z]{3,9})|([A-Za-z]{3,9})[ -](\d{4})", t):
        year, name = (m[1], m[2]) if m[1] else (m[4], m[3])
        month = MONTHS.get(name.lower())
        return np.datetime64(f"{year}-{month:02d}") if month else None
    if m := re.fullmatch(r"(\d{4})\s*-?\s*W(\d{2})", t):
        try:
            return np.datetime64(datetime.strptime(f"{m[1]} {m[2]} 1", "%G %V %u").date())
        except ValueError:
            return None
    if m := re.fullmatch(r"(\d{4})[-/](\d{1,2})(?:[-/](\d{1,2}))?", t):   # 2017/01/31, 1987-1, 2017-1-5
        t = f"{m[1]}-{int(m[2]):02d}" + (f"-{int(m[3]):02d}" if m[3] else "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")           # "no explicit representation of timezones": read as UTC
            d = np.datetime64(t)
    except ValueError:
        return None
    return None if np.isnat(d) else d
