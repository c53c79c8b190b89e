"""Pictures: the learning curves of a run (curves.png). Rendered off-screen with matplotlib,
imported when the first picture is drawn: pyplot takes about a second to import, which commands
that draw nothing (sample, eval, serve) should not pay."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

from .config import shown
from .fileio import warn as warn_stderr
from .fileio import write_atomic
from .runlog import curves, read_metrics_checked, skipped_note


def pyplot():
    """matplotlib.pyplot on the off-screen Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, png: Path) -> None:
    """Write the figure atomically. Characters the font lacks (a CJK file name in a title) are drawn
    as boxes without a warning on stderr."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.tight_layout()
        fig.savefig(buf, format="png")
    pyplot().close(fig)
    write_atomic(png, buf.getvalue(), "picture")


def plot_curves(metrics: Path, png: Path, warn=None, unit: str = "character") -> int:
    """Train and validation loss (bits per `unit`) against units seen. Records that are not
    usable are skipped and counted (returned; said through `warn`, default stderr)."""
    recs, bad = read_metrics_checked(metrics)
    if bad:
        (warn or warn_stderr)(skipped_note(metrics, bad))
    train, val = curves(recs)
    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train", lw=1, alpha=0.8)
    if val:
        ax.plot(*zip(*val), "o-", label="validation", lw=1.5, ms=3)
    ax.set_xlabel(f"{unit}s seen")
    ax.set_ylabel(f"loss (bits per {unit})")
    ax.set_title(f"{shown(metrics.parent.name)}: learning curves")  # a name that is not UTF-8 has no glyphs
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, png)
    return bad


def plot_forecast(png: Path, x, truth, n_train: int, rows, pred, naive, title: str, target: str,
                  bands: dict | None = None, horizons: list | None = None, future: tuple | None = None) -> None:
    """The whole series, the model's and the naive forecasts over the test part (rows), and a line at
    the train/test boundary. x: dates or row numbers (N,); truth (N,); pred, naive (len(rows),).
    bands: level -> (lower, upper) (len(rows),) drawn as shaded intervals; horizons: the per-step
    errors (a third panel when there is more than one step); future: (x, forecast, bands) of the
    steps after the last row, drawn after the history on both panels."""
    bands = bands or {}
    multi = horizons is not None and len(horizons) > 1
    fig, axes = pyplot().subplots(3 if multi else 2, 1, figsize=(9, 9 if multi else 6.5), dpi=110,
                             height_ratios=(3, 2, 2) if multi else (3, 2))
    ax, zoom = axes[0], axes[1]
    shades = sorted(bands, key=float, reverse=True)          # widest first, drawn lightest
    for i, key in enumerate(shades):
        lo, hi = bands[key]
        for a, sel in ((ax, slice(None)), (zoom, slice(-60, None))):
            a.fill_between(x[rows][sel], lo[sel], hi[sel], color="tab:red", alpha=0.12 + 0.1 * i, lw=0,
                           label=f"{key}% interval" if a is ax else None)
    ax.plot(x, truth, color="black", lw=1, label="truth")
    ax.plot(x[rows], pred, color="tab:red", lw=1, label="model")
    ax.plot(x[rows], naive, color="tab:blue", lw=1, ls="--", alpha=0.8, label="naive (last value)")
    if future is not None:
        _draw_future(ax, zoom, future)
    ax.axvline(x[n_train], color="gray", ls=":", lw=1.5)
    ax.text(x[n_train], 1.0, " test ->", transform=ax.get_xaxis_transform(), va="top", color="gray")
    ax.text(x[n_train], 1.0, "<- train ", transform=ax.get_xaxis_transform(), va="top", ha="right", color="gray")
    ax.set_title(shown(title))
    ax.set_ylabel(shown(target))
    ax.legend(loc="best")
    # the last 60 test rows up close: at full scale the three curves overlap
    tail = rows[-60:]
    k = len(tail)
    zoom.plot(x[tail], truth[tail], color="black", lw=1, marker=".", ms=3)
    zoom.plot(x[tail], pred[-k:], color="tab:red", lw=1)
    zoom.plot(x[tail], naive[-k:], color="tab:blue", lw=1, ls="--")
    zoom.set_title(f"last {k} test rows" + (" and the future" if future is not None else ""), fontsize=9)
    zoom.set_ylabel(shown(target))
    for a in (ax, zoom):
        a.grid(alpha=0.3)
        a.tick_params(axis="x", labelrotation=20)
    if multi:
        per = axes[2]
        st = [d["step"] for d in horizons]
        per.plot(st, [d["model"]["rmse"] for d in horizons], "o-", color="tab:red", label="model")
        per.plot(st, [d["naive"]["rmse"] for d in horizons], "s--", color="tab:blue", label="naive")
        per.set_xticks(st)
        per.set_xlabel("steps ahead")
        per.set_ylabel("test RMSE")
        per.set_title("error per step ahead", fontsize=9)
        per.grid(alpha=0.3)
        per.legend(loc="best")
    save(fig, png)


def _draw_future(ax, zoom, future: tuple) -> None:
    xf, fc, fb = future
    for i, key in enumerate(sorted(fb, key=float, reverse=True)):
        for a in (ax, zoom):
            a.fill_between(xf, *fb[key], color="tab:green", alpha=0.15 + 0.1 * i, lw=0,
                           label=f"future {key}%" if a is ax else None)
    for a in (ax, zoom):
        a.plot(xf, fc, color="tab:green", lw=1.5, marker=".", ms=4, label="future" if a is ax else None)
