"""Built-in series for `rnnkit forecast --series NAME` (no CSV file given).

    goog      GOOG daily prices 2004-08-19 .. 2008-10-14 (matplotlib's sample data): a random walk,
              where nothing beats "tomorrow = today"
    co2       weekly CO2 at Mauna Loa, 1958-2001 (statsmodels' data set): trend and a yearly season;
              its 59 missing weeks are interpolated
    sunspots  yearly sunspot numbers 1700-2008 (statsmodels' data set): an 11-year cycle

co2 and sunspots ship with statsmodels, the `classic` extra: pip install 'rnnkit[classic]'.

`load_series` and `load_panel` are where a forecast's data comes from: a CSV file (series.py reads
it) or, with no file, one of these.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..core.config import UsageError
from .fill import fill_missing
from .series import (
    BUILTIN,
    Series,
    date_column,
    label_columns,
    pick_columns,
    read_table,
    resolve,
    rows_series,
    table_series,
)

DEMOS = {"goog": BUILTIN, "co2": "co2 weekly (statsmodels)", "sunspots": "sunspots yearly (statsmodels)"}


def goog() -> Series:
    """GOOG daily prices (1047 trading days), columns Open, High, Low, Volume, Close as in the
    lecture's file (adj_close equals close here)."""
    from matplotlib import cbook
    with np.load(cbook.get_sample_data("goog.npz", asfileobj=False)) as npz:
        p = npz["price_data"]
    cols = ["Open", "High", "Low", "Volume", "Close"]
    values = np.stack([p[c.lower()].astype(np.float64) for c in cols], axis=1)
    return Series(BUILTIN, cols, values, p["date"].copy(), np.zeros(len(p), dtype=np.int64))


def _statsmodels(name: str):
    try:
        from statsmodels import datasets
    except ImportError:
        raise UsageError(f"--series {name} comes with statsmodels, which is not installed; "
                         "install it with: pip install 'rnnkit[classic]' (or use --series goog)")
    return getattr(datasets, name).load_pandas().data


def co2() -> Series:
    d = _statsmodels("co2")
    v = d["co2"].to_numpy(np.float64)[:, None]
    dates = d.index.to_numpy().astype("datetime64[D]")
    s = Series(DEMOS["co2"], ["co2"], v, dates, np.zeros(len(v), dtype=np.int64))
    return fill_missing(s, "interpolate")


def sunspots() -> Series:
    d = _statsmodels("sunspots")
    v = d["SUNACTIVITY"].to_numpy(np.float64)[:, None]
    dates = np.array([np.datetime64(f"{int(y)}-01-01") for y in d["YEAR"]])
    return Series(DEMOS["sunspots"], ["sunspots"], v, dates, np.zeros(len(v), dtype=np.int64))


def builtin(name: str = "goog") -> Series:
    makers = {"goog": goog, "co2": co2, "sunspots": sunspots}
    if name not in makers:
        raise UsageError(f"--series must be one of {', '.join(makers)} (got {name!r})")
    return makers[name]()


def builtin_series(name: str = "goog") -> Series:
    """A built-in series; GOOG daily prices by default."""
    return builtin(name)


def _keep(s: Series, used: list[str]) -> Series:
    return Series(s.name, used, np.stack([s.column(c) for c in used], axis=1), s.dates, s.lines, s.key, s.notes)


def load_series(path: Optional[str], target: Optional[str] = None, features: Optional[str] = None,
                columns: Optional[str] = None, date_col: Optional[str] = None,
                reverse: bool = False, fill: Optional[str] = None, date_format: Optional[str] = None,
                builtin: str = "goog") -> tuple[Series, list[str], str]:
    """The series (only the columns used), its feature columns and its target column."""
    if path is None:
        s = builtin_series(builtin)
        feats, tgt = pick_columns(s.columns, target, features, None, s.name)
        if reverse:
            raise UsageError("--reverse applies to a CSV file; the built-in series is oldest first")
    else:
        table = read_table(path, columns)
        dcol = date_column(table, date_col, path)
        labels = label_columns(table, dcol)
        several = {c: v for c, v in labels.items() if 1 < len(v) < len(table.rows)}   # all distinct: row labels
        if several and not features:
            c, v = next(iter(several.items()))
            raise UsageError(f"{path}: column {c!r} holds {len(v)} different labels ({', '.join(v[:3])}"
                             f"{', ...' if len(v) > 3 else ''}): the rows are several series; give --id-column {c} "
                             "(one model for them all), or keep one series' rows")
        feats, tgt = pick_columns(table.header, target, features, dcol, path, labels=tuple(labels))
        s = table_series(table, feats + ([tgt] if tgt not in feats else []), dcol, reverse, fill, date_format)
    used = feats + ([tgt] if tgt not in feats else [])
    return _keep(s, used), feats, tgt


def load_panel(path: str, id_col: str, target: Optional[str] = None, features: Optional[str] = None,
               columns: Optional[str] = None, date_col: Optional[str] = None, fill: Optional[str] = None,
               date_format: Optional[str] = None) -> tuple[list[Series], list[str], str]:
    """A long-format file: one row per (series id, date); each id's rows become one Series,
    in the order the ids first appear."""
    table = read_table(path, columns)
    icol = resolve(id_col, table.header, "--id-column", path)
    dcol = date_column(table, date_col, path)
    labels = tuple(c for c in label_columns(table, dcol) if c != icol)     # e.g. a store's name beside its id
    feats, tgt = pick_columns(table.header, target, features, dcol, path, icol, labels)
    used = feats + ([tgt] if tgt not in feats else [])
    j = table.header.index(icol)
    groups: dict[str, list] = {}
    for n, fields in table.rows:
        if not fields[j]:
            raise UsageError(f"{path}: line {n} column {j + 1} ({icol}): empty series id; give every row "
                             "its series' id")
        groups.setdefault(fields[j], []).append((n, fields))
    if len(groups) < 2:
        raise UsageError(f"{path}: --id-column {icol!r} holds one series only; drop --id-column")
    out = [_keep(rows_series(table, rows, used, dcol, False, fill, date_format, f"{path} [{key}]"), used)
           for key, rows in groups.items()]
    for s, key in zip(out, groups):
        s.key = key
    return out, feats, tgt
