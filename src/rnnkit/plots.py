"""Pictures: the learning curves of a run (curves.png). Rendered off-screen with matplotlib."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LN2 = math.log(2)


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file; a torn last line (a crash mid-write) is skipped."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot_curves(metrics: Path, png: Path) -> None:
    """Train and validation loss (bits per character) against characters seen."""
    recs = read_metrics(metrics)
    train = [(r["chars"], r["loss"] / LN2) for r in recs if "loss" in r]
    val = [(r["chars"], r["val_loss"] / LN2) for r in recs if "val_loss" in r and math.isfinite(r["val_loss"])]
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
    fig.tight_layout()
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)
