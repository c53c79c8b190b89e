"""Pictures: the learning curves of a run (curves.png). Rendered off-screen with matplotlib."""
from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .config import shown  # noqa: E402

LN2 = math.log(2)


# the fields training writes into metrics.jsonl and the types a reader may rely on
NUMBER = (int, float)
FIELDS = {"step": int, "chars": NUMBER, "loss": NUMBER, "val_loss": NUMBER, "val_bpc": NUMBER,
          "lr": NUMBER, "chars_per_s": NUMBER, "time": NUMBER, "sample": str}
NULLABLE = {"val_loss", "val_bpc"}   # null: an evaluation that had nothing to measure


def good_record(rec) -> bool:
    """A metrics record a reader can use: an object whose known fields have their types (bools are
    not numbers), with `chars` beside any loss (the curves' x axis) and steps and chars >= 0."""
    if not isinstance(rec, dict):
        return False
    for k, want in FIELDS.items():
        if k not in rec or (rec[k] is None and k in NULLABLE):
            continue
        v = rec[k]
        if isinstance(v, bool) or not isinstance(v, want) or (isinstance(v, int) and abs(v) >= 2**63):
            return False
    if ("loss" in rec or "val_loss" in rec) and "chars" not in rec:
        return False
    return all(rec.get(k, 0) >= 0 for k in ("step", "chars"))


def read_metrics_checked(path: Path) -> tuple[list[dict], int]:
    """The usable records of a metrics.jsonl file and the number of lines skipped: a torn last line
    (a crash mid-write), junk, or a hand-edited record with fields of the wrong type."""
    out, bad = [], 0
    if not path.exists():
        return out, bad
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            rec = None
        if good_record(rec):
            out.append(rec)
        else:
            bad += 1
    return out, bad


def read_metrics(path: Path) -> list[dict]:
    """The usable records of a metrics.jsonl file (see read_metrics_checked)."""
    return read_metrics_checked(path)[0]


def skipped_note(path: Path, bad: int) -> str:
    return (f"{shown(path)}: skipped {bad} record(s) that are not metrics rnnkit wrote "
            "(junk, a torn line or fields of the wrong type)")


def save(fig, png: Path) -> None:
    """Write the figure atomically. Characters the font lacks (a CJK file name in a title) are drawn
    as boxes without a warning on stderr."""
    tmp = png.with_name(f".{png.name}.tmp.png")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.tight_layout()
        fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)


def plot_curves(metrics: Path, png: Path, warn=None, unit: str = "character") -> int:
    """Train and validation loss (bits per `unit`) against units seen. Records that are not
    usable are skipped and counted (returned; said through `warn`, default stderr)."""
    recs, bad = read_metrics_checked(metrics)
    if bad:
        (warn or (lambda m: print(f"rnnkit: warning: {m}", file=sys.stderr)))(skipped_note(metrics, bad))
    finite = lambda r, k: r.get(k) is not None and math.isfinite(r[k])
    train = [(r["chars"], r["loss"] / LN2) for r in recs if finite(r, "loss")]
    val = [(r["chars"], r["val_loss"] / LN2) for r in recs if finite(r, "val_loss")]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
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
    ax.set_title(shown(title))
    ax.set_ylabel(shown(target))
    ax.legend(loc="best")
    # the last 60 test rows up close: at full scale the three curves overlap
    tail = rows[-60:]
    k = len(tail)
    zoom.plot(x[tail], truth[tail], color="black", lw=1, marker=".", ms=3)
    zoom.plot(x[tail], pred[-k:], color="tab:red", lw=1)
    zoom.plot(x[tail], naive[-k:], color="tab:blue", lw=1, ls="--")
    zoom.set_title(f"last {k} test rows", fontsize=9)
    zoom.set_ylabel(shown(target))
    for a in (ax, zoom):
        a.grid(alpha=0.3)
        a.tick_params(axis="x", labelrotation=20)
    save(fig, png)
