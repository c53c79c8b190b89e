"""The run's voice: console lines, the live progress bar, and `RUN_DIR/metrics.jsonl`.

Only rank 0 speaks and writes. metrics.jsonl holds one JSON object per line: training records
(`step`, `chars`, `loss`, `lr`, `chars_per_s`, `time`) and evaluation records (`step`, `chars`,
`val_loss`, `val_bpc`, `time`, optionally `sample`). Every value written is finite JSON: an
undefined loss is written as null.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

from .config import shown
from .fileio import append_line, bits

METRICS = "metrics.jsonl"


def finite_or_none(rec: dict) -> dict:
    """A record with NaN and infinities replaced by null, so the line is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}


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


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curves(records: list[dict]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(chars seen, bits per char) pairs of the training and the validation losses."""
    train = [(r["chars"], bits(r["loss"])) for r in records
             if _number(r.get("chars")) and _number(r.get("loss"))]
    val = [(r["chars"], bits(r["val_loss"])) for r in records
           if _number(r.get("chars")) and _number(r.get("val_loss"))]
    return train, val


class RunLog:
    """What a training run prints and records. `main` is False on ranks other than 0."""

    def __init__(self, out: Path, main: bool = True, quiet: bool = False):
        self.out, self.main, self.quiet = out, main, quiet
        self.tty = sys.stdout.isatty()

    def say(self, msg: str) -> None:
        if self.main and not self.quiet:
            print(("\r\033[K" if self.tty else "") + msg, flush=True)

    def record(self, rec: dict) -> None:
        if self.main:
            append_line(self.out / METRICS, json.dumps(finite_or_none(rec), allow_nan=False))

    def progress(self, rec: dict, total_steps: Optional[int], time_left: Optional[float], best: float) -> None:
        """A live bar on a terminal (step, loss, val bpc, chars/s, ETA); plain log lines otherwise.
        `time_left`: seconds to the end, if known."""
        if not self.main or self.quiet:
            return
        eta = (f" ETA {int(time_left) // 60}:{int(time_left) % 60:02d}"
               if time_left is not None and math.isfinite(time_left) else "")
        total = f"/{total_steps}" if total_steps else ""
        val = f" val {bits(best):.3f} bpc" if math.isfinite(best) else ""
        line = (f"step {rec['step']}{total} loss {rec['loss']:.4f} ({bits(rec['loss']):.3f} bpc){val} "
                f"lr {rec['lr']:.1e} {rec['chars_per_s']:,.0f} chars/s{eta}")
        if self.tty:
            print(f"\r\033[K{line}", end="", flush=True)
        else:
            print(line, flush=True)
