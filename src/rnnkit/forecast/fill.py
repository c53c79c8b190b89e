"""Filling the missing values of a series, as the user asked (`--fill`).

    ffill        each missing value takes the last value before it; leading missing rows are dropped
    interpolate  straight lines between the known neighbours, in time when the rows are dated;
                 leading and trailing missing values take the nearest known value
    drop         rows with any missing value are dropped (a dated series then shows the gaps)
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..core.config import UsageError

FILLS = ("ffill", "interpolate", "drop")


def _rows(s, keep: np.ndarray):
    """The series `s` (a series.Series) with only the rows `keep`."""
    return dataclasses.replace(s, values=s.values[keep], dates=None if s.dates is None else s.dates[keep],
                               lines=None if s.lines is None else s.lines[keep], notes=list(s.notes))


def fill_missing(s, how: str):
    """The Series with its NaNs filled (`how` in FILLS); a note says what was done."""
    if how not in FILLS:
        raise UsageError(f"--fill must be one of {', '.join(FILLS)} (got {how!r})")
    v = s.values.copy()
    missing = np.isnan(v)
    count = int(missing.sum())
    if missing.all(axis=0).any():
        col = s.columns[int(np.flatnonzero(missing.all(axis=0))[0])]
        raise UsageError(f"{s.name}: column {col!r} has no values at all; leave it out of --features")
    if how == "drop":
        out = _rows(s, ~missing.any(axis=1))
        out.notes.append(f"dropped {int(missing.any(axis=1).sum())} row(s) with missing values")
        return out
    if how == "ffill":
        idx = np.where(~missing, np.arange(len(v))[:, None], 0)
        np.maximum.accumulate(idx, axis=0, out=idx)       # (N, C): the last known row of each cell
        v = v[idx, np.arange(v.shape[1])[None, :]]
        lead = np.isnan(v).any(axis=1)                    # before the first known value
        s.values = v
        out = _rows(s, ~lead)
        out.notes.append(f"filled {count} missing value(s) with the last value before them"
                         + (f"; dropped {int(lead.sum())} leading row(s)" if lead.any() else ""))
        return out
    t = (s.dates.astype("datetime64[s]").astype(np.float64) if s.dates is not None
         else np.arange(len(v), dtype=np.float64))
    for c in range(v.shape[1]):
        m = missing[:, c]
        if m.any():
            v[m, c] = np.interp(t[m], t[~m], v[~m, c])
    s.values = v
    out = _rows(s, np.ones(len(v), dtype=bool))
    out.notes.append(f"filled {count} missing value(s) by linear interpolation")
    return out
