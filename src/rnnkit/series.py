"""Numeric series: reading a CSV file strictly, and the built-in GOOG daily prices.

A CSV file has a header row, or a `# A,B,C` comment line naming its columns (the lecture's
stock_daily.csv), or `--columns A,B,C`. Lines starting with `#` and blank lines are skipped. An
optional date column (named date/time/timestamp/datetime, or `--date-column`) orders the rows:
newest-first files are flipped. Without dates, `--reverse` says the file is newest-first.

Every problem is a UsageError naming the file, line and column, e.g.
    data.csv: line 12 column 3 (Low): not a number ('n/a')
"""
from __future__ import annotations

import csv
import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .config import UsageError

DATE_NAMES = ("date", "datetime", "time", "timestamp", "day")
BUILTIN = "GOOG daily (matplotlib sample data)"


@dataclass
class Series:
    """Rows oldest first. values (N, C) float64 in `columns` order; dates (N,) or None;
    lines (N,) the source line of each row (0 for built-in data)."""

    name: str
    columns: list[str]
    values: np.ndarray
    dates: Optional[np.ndarray] = None
    lines: Optional[np.ndarray] = None

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


@dataclass
class Table:
    """A CSV file split into fields, before any number is read."""

    name: str
    header: list[str]
    rows: list[tuple[int, list[str]]]   # (line number, fields)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _fields(line: str) -> list[str]:
    return [f.strip() for f in next(csv.reader([line]))]


def _names(text: str, where: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise UsageError(f"{where}: empty column name in {text!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"{where}: column name(s) {', '.join(dup)} appear more than once")
    return names


def _comment_header(comment: str) -> Optional[list[str]]:
    """`# Open,High,Low,Volume,Close` -> the names; anything else (a URL, prose) -> None."""
    fields = [f.strip() for f in comment.lstrip("#").split(",")]
    if len(fields) >= 2 and all(f and not _is_number(f) and len(f.split()) <= 3 for f in fields):
        return fields
    return None


def read_text_lines(path: str) -> list[str]:
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file")
    except OSError as e:  # a symlink loop, permissions
        raise UsageError(f"{path}: cannot read ({e.strerror or e})")
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path}: is a directory, not a CSV file")
    if not stat.S_ISREG(st.st_mode):  # reading a pipe would wait for a writer forever
        raise UsageError(f"{path}: not a regular file (a pipe or device); save the rows to a file")
    try:
        return p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not a UTF-8 text file (byte {e.start}); save it as CSV text")
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror or e})")


def read_table(path: str, columns: Optional[str] = None) -> Table:
    """Split a CSV file into header and rows; every row must have the header's number of fields."""
    header, comment_header, rows = None, None, []
    if columns:
        header = _names(columns, "--columns")
    for n, line in enumerate(read_text_lines(path), start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if header is None and not rows:
                comment_header = _comment_header(s) or comment_header
            continue
        try:
            fields = _fields(s)
        except csv.Error as e:
            raise UsageError(f"{path}: line {n}: cannot split into fields ({e})")
        if columns and not rows and not any(_is_number(f) for f in fields):
            raise UsageError(f"{path}: line {n} is a header row; drop --columns (it names the "
                             "columns of a file without one)")
        if header is None:
            if not any(_is_number(f) for f in fields):
                header = _names(s, f"{path}: line {n}")   # a header row
                continue
            if comment_header is None:
                raise UsageError(f"{path}: line {n}: no header row; add one or name the columns "
                                 "with --columns A,B,...")
            header = comment_header
        if len(fields) != len(header):
            raise UsageError(f"{path}: line {n}: {len(fields)} field(s), expected {len(header)} "
                             f"({','.join(header)})")
        rows.append((n, fields))
    if not rows:
        raise UsageError(f"{path}: no data rows (only {'a header and ' if header else ''}comments or blank lines)")
    return Table(path, header, rows)


def resolve(name: str, columns: list[str], flag: str, where: str) -> str:
    """A column name as the user typed it -> the column (exact, else case-insensitive)."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise UsageError(f"{where}: unknown column {name!r} for {flag}; columns: {', '.join(columns)}")


def date_column(header: list[str], given: Optional[str], where: str) -> Optional[str]:
    if given:
        return resolve(given, header, "--date-column", where)
    found = [c for c in header if c.lower() in DATE_NAMES]
    return found[0] if found else None


def _cell(path: str, line: int, col: int, name: str, text: str) -> float:
    where = f"{path}: line {line} column {col} ({name})"
    if not text:
        raise UsageError(f"{where}: empty cell")
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"{where}: not a number ({text!r})")
    if not math.isfinite(v):
        raise UsageError(f"{where}: {text!r} is not a finite number; remove or fill that row")
    return v


def _date(path: str, line: int, col: int, name: str, text: str) -> np.datetime64:
    try:
        return np.datetime64(text)
    except ValueError:
        raise UsageError(f"{path}: line {line} column {col} ({name}): cannot read date {text!r} "
                         "(use ISO dates such as 2017-01-31)")


def _order(dates: np.ndarray, lines: np.ndarray, path: str) -> bool:
    """True when the dates run newest first; an unsorted or repeated date is an error."""
    d = np.diff(dates.astype("datetime64[s]").astype(np.int64))
    if len(d) == 0 or (d > 0).all():
        return False
    if (d < 0).all():
        return True
    bad = int(np.flatnonzero(d == 0)[0]) if (d == 0).any() else \
        int(np.flatnonzero(np.sign(d) != np.sign(d[0]))[0])
    raise UsageError(f"{path}: line {lines[bad + 1]}: date {dates[bad + 1]} is out of order or repeated; "
                     "rows must be sorted by date (oldest or newest first)")


def table_series(table: Table, use: list[str], date_col: Optional[str] = None,
                 reverse: bool = False) -> Series:
    """Read the `use` columns as numbers (and the date column), rows put oldest first."""
    idx = [table.header.index(c) for c in use]
    values = np.array([[_cell(table.name, n, i + 1, table.header[i], f[i]) for i in idx]
                       for n, f in table.rows], dtype=np.float64).reshape(len(table.rows), len(use))
    lines = np.array([n for n, _ in table.rows])
    dates = None
    if date_col is not None:
        j = table.header.index(date_col)
        dates = np.array([_date(table.name, n, j + 1, date_col, f[j]) for n, f in table.rows])
        newest_first = _order(dates, lines, table.name)
        if reverse and not newest_first and len(dates) > 1:
            raise UsageError(f"{table.name}: the dates in {date_col!r} run oldest first; drop --reverse")
        reverse = newest_first
    if reverse:
        values, lines = values[::-1].copy(), lines[::-1].copy()
        dates = dates[::-1].copy() if dates is not None else None
    return Series(table.name, list(use), values, dates, lines)


def builtin_series() -> Series:
    """GOOG daily prices 2004-08-19 .. 2008-10-14 (1047 trading days) that matplotlib ships,
    columns Open, High, Low, Volume, Close as in the lecture's file (adj_close equals close here)."""
    from matplotlib import cbook
    with np.load(cbook.get_sample_data("goog.npz", asfileobj=False)) as npz:
        p = npz["price_data"]
    cols = ["Open", "High", "Low", "Volume", "Close"]
    values = np.stack([p[c.lower()].astype(np.float64) for c in cols], axis=1)
    return Series(BUILTIN, cols, values, p["date"].copy(), np.zeros(len(p), dtype=np.int64))


def pick_columns(columns: list[str], target: Optional[str], features: Optional[str],
                 date_col: Optional[str], where: str) -> tuple[list[str], str]:
    """(feature columns, target column). Defaults: every non-date column as a feature; the target
    is the column named close (any case), else the last feature."""
    numeric = [c for c in columns if c != date_col]
    if features:
        feats = [resolve(f, columns, "--features", where) for f in _names(features, "--features")]
        if date_col in feats:
            raise UsageError(f"{where}: {date_col!r} holds dates; it cannot be a feature")
    else:
        feats = numeric
    if target:
        tgt = resolve(target, columns, "--target", where)
    else:
        closes = [c for c in numeric if c.lower() == "close"]
        tgt = closes[0] if closes else feats[-1]
    if tgt == date_col:
        raise UsageError(f"{where}: {date_col!r} holds dates; it cannot be the --target")
    if not feats:
        raise UsageError(f"{where}: no numeric columns to use as features")
    return feats, tgt


def load_series(path: Optional[str], target: Optional[str] = None, features: Optional[str] = None,
                columns: Optional[str] = None, date_col: Optional[str] = None,
                reverse: bool = False) -> tuple[Series, list[str], str]:
    """The series (only the columns used), its feature columns and its target column."""
    if path is None:
        s = builtin_series()
        feats, tgt = pick_columns(s.columns, target, features, None, s.name)
        if reverse:
            raise UsageError("--reverse applies to a CSV file; the built-in series is oldest first")
    else:
        table = read_table(path, columns)
        dcol = date_column(table.header, date_col, path)
        feats, tgt = pick_columns(table.header, target, features, dcol, path)
        s = table_series(table, feats + ([tgt] if tgt not in feats else []), dcol, reverse)
    used = feats + ([tgt] if tgt not in feats else [])
    s = Series(s.name, used, np.stack([s.column(c) for c in used], axis=1), s.dates, s.lines)
    return s, feats, tgt
