"""Built-in series for `rnnkit forecast --series NAME` (no CSV file given).

    goog      GOOG daily prices 2004-08-19 .. 2008-10-14 (matplotlib's sample data): a random walk,
              where nothing beats "tomorrow = today"
    co2       weekly CO2 at Mauna Loa, 1958-2001 (statsmodels' data set): trend and a yearly season;
              its 59 missing weeks are interpolated
    sunspots  yearly sunspot numbers 1700-2008 (statsmodels' data set): an 11-year cycle

co2 and sunspots ship with statsmodels, the `classic` extra: pip install 'rnnkit[classic]'.
"""
from __future__ import annotations

import numpy as np

from .config import UsageError
from .series import BUILTIN, Series

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
    from .fill import fill_missing
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
