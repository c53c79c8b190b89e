"""Pictures: the learning curves of a run (curves.png). Rendered off-screen with matplotlib."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .fileio import write_atomic  # noqa: E402
from .runlog import curves, read_metrics  # noqa: E402

def save(fig, png: Path) -> None:
    """Write the figure atomically. Characters the font lacks (a CJK file name in a title) are drawn
    as boxes without a warning on stderr."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.tight_layout()
        fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(png, buf.getvalue(), "picture")


def plot_curves(metrics: Path, png: Path) -> None:
    """Train and validation loss (bits per character) against characters seen."""
    train, val = curves(read_metrics(metrics))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train", lw=1, alpha=0.8)
    if val:
        ax.plot(*zip(*val), "o-", label="validation", lw=1.5, ms=3)
    ax.set_xlabel("characters seen")
    ax.set_ylabel("loss (bits per character)")
    ax.set_title(f"{metrics.parent.name}: learning curves")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, png)


def plot_forecast(png: Path, x, truth, n_train: int, rows, pred, naive, title: str, target: str) -> None:
    """The whole series, the model's and the naive forecasts over the test part (rows), and a line at
    the train/test boundary. x: dates or row numbers (N,); truth (N,); pred, naive (len(rows),)."""
    fig, (ax, zoom) = plt.subplots(2, 1, figsize=(9, 6.5), dpi=110, height_ratios=(3, 2))
    ax.plot(x, truth, color="black", lw=1, label="truth")
    ax.plot(x[rows], pred, color="tab:red", lw=1, label="model")
    ax.plot(x[rows], naive, color="tab:blue", lw=1, ls="--", alpha=0.8, label="naive (last value)")
    ax.axvline(x[n_train], color="gray", ls=":", lw=1.5)
    ax.text(x[n_train], 1.0, " test ->", transform=ax.get_xaxis_transform(), va="top", color="gray")
    ax.text(x[n_train], 1.0, "<- train ", transform=ax.get_xaxis_transform(), va="top", ha="right", color="gray")
    ax.set_title(title)
    ax.set_ylabel(target)
    ax.legend(loc="best")
    # the last 60 test rows up close: at full scale the three curves overlap
    tail = rows[-60:]
    k = len(tail)
    zoom.plot(x[tail], truth[tail], color="black", lw=1, marker=".", ms=3)
    zoom.plot(x[tail], pred[-k:], color="tab:red", lw=1)
    zoom.plot(x[tail], naive[-k:], color="tab:blue", lw=1, ls="--")
    zoom.set_title(f"last {k} test rows", fontsize=9)
    zoom.set_ylabel(target)
    for a in (ax, zoom):
        a.grid(alpha=0.3)
        a.tick_params(axis="x", labelrotation=20)
    save(fig, png)
