"""The run report: one self-contained HTML file that shows what a character model learned.

    rnnkit report runs/mine                      # -> runs/mine/report.html
    rnnkit report runs/mine --text play.txt --out play.html

    from rnnkit.report import ReportConfig, write_report
    write_report("runs/mine", ReportConfig(chars=1000))

It holds the run's configuration and numbers, the learning curves in bits per character (inline
SVG), samples at a few temperatures and those saved during training, and a passage coloured
character by character: by the probability the model gave each character (where it is surprised)
and by the activation of one hidden unit, chosen from units ranked by their correlation with
simple features of the text (probe.py). Hovering a character lists the top 5 next characters.
Everything is inline (report_template.html holds the CSS and JS); opening it needs no network.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .checkpoint import find_checkpoint, load_model
from .config import ReportConfig, SampleConfig, UsageError
from .corpus import read_text
from .models import count_params
from .fileio import LN2, warn as warn_stderr, write_atomic
from .runlog import curves, read_metrics
from .probe import Activations, activations, rank_units
from .sample import generate
from .vocab import Vocab

TEMPERATURES = (0.5, 0.8, 1.0)


# ---- the passage ----

def corpus_ids(run_dir: Path, vocab: Vocab) -> Optional[np.ndarray]:
    """The run's encoded corpus (data/ids-*.npy written by training), newest first, or None."""
    for meta in sorted((run_dir / "data").glob("ids-*.json"), key=lambda p: -p.stat().st_mtime):
        npy = meta.with_suffix(".npy")
        try:
            if npy.exists() and Vocab.from_json(json.loads(meta.read_text())) == vocab:
                return np.load(npy, mmap_mode="r")
        except (ValueError, UsageError):
            continue
    return None


def validation_passage(ids: np.ndarray, vocab: Vocab, val_fraction: float, n: int) -> tuple[str, str]:
    """The first `n` characters of the validation split, starting at a line; and where it came from."""
    start = len(ids) - int(len(ids) * val_fraction) if val_fraction > 0 else 0
    head = np.asarray(ids[start: start + 300])
    nl = vocab.index.get("\n")
    if nl is not None and (head == nl).any():
        start += int(np.argmax(head == nl)) + 1
        while start < len(ids) - 1 and ids[start] == nl:  # skip blank lines
            start += 1
    chunk = np.asarray(ids[start: start + n])
    if len(chunk) < 2:
        raise UsageError("the run's validation split is too short to show; pass a passage with --text FILE")
    where = "validation split" if val_fraction > 0 else "training text (the run has no validation split)"
    return "".join(vocab.symbols[i] for i in chunk), f"{where}, characters {start:,} to {start + len(chunk):,}"


def passage(run_dir: Path, vocab: Vocab, train: dict, cfg: ReportConfig, warn: Callable[[str], None]) -> tuple[str, str]:
    if cfg.text is not None:
        text = read_text(cfg.text, "bytes" if vocab.kind == "bytes" else "utf-8")[: cfg.chars]
        missing = vocab.unknown(text)
        if missing:
            warn(f"{cfg.text}: {len(missing)} character(s) outside the vocabulary left out: "
                 + ", ".join(map(repr, missing[:10])))
        return text, f"{cfg.text}, first {len(text):,} characters"
    ids = corpus_ids(run_dir, vocab)
    if ids is None:
        raise UsageError(f"{run_dir}/data holds no encoded corpus for this run's vocabulary; "
                         "pass a passage with --text FILE")
    return validation_passage(ids, vocab, float(train.get("val_fraction", 0.1)), cfg.chars)


def heatmap_data(acts: Activations, per_feature: int) -> dict:
    """What the page's script needs: characters, p(actual char), top 5 next chars, ranked units.
    Unit values are sent as integers in [-100, 100] with one scale per unit, to keep the file small."""
    values, names = acts.units()
    scores = rank_units(acts, per_feature)
    chosen, options = [], []
    for s in sorted(scores, key=lambda s: (s.feature, -abs(s.r))):
        if s.column not in chosen:
            chosen.append(s.column)
        options.append({"feature": s.feature, "unit": chosen.index(s.column), "r": round(s.r, 3)})
    units = []
    for col in chosen:
        v = values[:, col]
        scale = float(np.abs(v).max()) or 1.0
        units.append({"name": names[col], "scale": round(scale, 4), "q": np.rint(v / scale * 100).astype(int).tolist()})
    top = np.argsort(-acts.probs, axis=1, kind="stable")[:, :5]                # (T, 5)
    p = acts.actual_probs()
    return {
        "chars": list(acts.text),
        "p": [None if math.isnan(x) else round(float(x), 4) for x in p],
        "top": [[[acts.symbols[j], round(float(acts.probs[t, j]), 4)] for j in row] for t, row in enumerate(top)],
        "units": units,
        "options": sorted(options, key=lambda o: -abs(o["r"])),
    }


# ---- learning curves as inline SVG ----

def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round numbers spanning [lo, hi]."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def short(x: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def svg_curves(train: list[tuple[float, float]], val: list[tuple[float, float]], w: int = 760, h: int = 320) -> str:
    """Train (line) and validation (line with dots) bits per character against characters seen."""
    pts = train + val
    if not pts:
        return '<p class="note">metrics.jsonl holds no losses yet.</p>'
    left, right, top, bottom = 56, 16, 12, 40
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = 0.0, max(xs) or 1.0
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.05 or 0.5
    y0, y1 = max(0.0, y0 - pad), y1 + pad
    sx = lambda x: left + (x - x0) / (x1 - x0) * (w - left - right)
    sy = lambda y: top + (y1 - y) / (y1 - y0) * (h - top - bottom)
    out = [f'<svg id="curves" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
           'aria-label="learning curves in bits per character">']
    for t in nice_ticks(y0, y1):
        out.append(f'<line class="grid" x1="{left}" x2="{w - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x0, x1):
        out.append(f'<line class="grid" y1="{top}" y2="{h - bottom}" x1="{sx(t):.1f}" x2="{sx(t):.1f}"/>'
                   f'<text x="{sx(t):.1f}" y="{h - bottom + 16}" text-anchor="middle">{short(t)}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle">characters seen</text>'
               f'<text transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">'
               'bits per character</text>')
    for name, series in (("train", train), ("val", val)):
        if series:
            line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in series)
            out.append(f'<polyline class="{name}" points="{line}"><title>{name}</title></polyline>')
    out += [f'<circle class="val" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"><title>{short(x)} chars: '
            f'{y:.3f} bpc</title></circle>' for x, y in val]
    out.append("</svg>")
    return "".join(out)


# ---- the page ----

def rows(pairs: list[tuple[str, object]]) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def summary(run_dir: Path, meta: dict, last: dict, model, vocab: Vocab, ids: Optional[np.ndarray]) -> str:
    m, t, st = meta["model"], meta.get("train", {}), last.get("state", {})
    frac = float(t.get("val_fraction", 0.1))
    if ids is not None:
        n_val = int(len(ids) * frac)
        split = f"{len(ids) - n_val:,} chars train (first {1 - frac:.0%}), {n_val:,} validation (last {frac:.0%})"
    else:
        split = f"first {1 - frac:.0%} train, last {frac:.0%} validation"
    elapsed, chars = float(st.get("elapsed", 0.0)), int(st.get("chars", 0))
    best = meta.get("state", {}).get("best_val")
    data = ", ".join(t.get("files") or []) or f"built-in corpus '{t.get('corpus', '?')}'"
    return rows([
        ("data", f"{data} ({t.get('encoding', 'utf-8')})"), ("split", split),
        ("vocabulary", f"{len(vocab)} {vocab.kind}"),
        ("model", f"{m['cell'].upper()} x{m['layers']}, hidden {m['hidden']}, embed {m['embed'] or 'one-hot'}, "
                  f"dropout {m['dropout']}"),
        ("parameters", f"{count_params(model):,}"),
        ("training", f"{st.get('step', 0):,} steps, {chars:,} characters in {duration(elapsed)}"),
        ("speed", f"{chars / elapsed:,.0f} chars/s (average)" if elapsed > 0 else "n/a"),
        ("best validation", f"{best / LN2:.3f} bits/char ({best:.4f} nats) at step {meta.get('state', {}).get('step', '?')}"
         if isinstance(best, (int, float)) else "n/a"),
    ])


def samples_html(model, vocab: Vocab, records: list[dict], cfg: ReportConfig) -> tuple[str, str]:
    now = []
    for temp in TEMPERATURES:
        text = generate(model, vocab, SampleConfig(length=cfg.sample_chars, temperature=temp, seed=cfg.seed))[0]
        now.append(f'<h3>temperature {temp}</h3><pre class="sample">{html.escape(text)}</pre>')
    saved = [f'<h3>step {r.get("step", "?"):,} &middot; {short(r.get("chars", 0))} chars &middot; '
             f'validation {r.get("val_bpc", float("nan")):.3f} bpc</h3><pre class="sample">{html.escape(r["sample"])}</pre>'
             for r in records if isinstance(r.get("sample"), str)]
    return "".join(now), "".join(saved) or '<p class="note">No samples were saved during training.</p>'


def json_script(data: dict) -> str:
    """JSON that is safe inside <script>: no '</' can close the tag early."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def build_report(run_dir: str | os.PathLike, cfg: Optional[ReportConfig] = None,
                 warn: Callable[[str], None] = lambda m: None) -> str:
    """The report of a run directory, as one HTML string."""
    cfg = (cfg or ReportConfig()).validate()
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _build_report(Path(run_dir), cfg, warn)
    finally:
        torch.set_num_threads(threads)


def _build_report(run_dir: Path, cfg: ReportConfig, warn: Callable[[str], None]) -> str:
    from .distributed import pick_device
    model, vocab, meta = load_model(run_dir, pick_device(cfg.device), warn=warn)
    last = find_checkpoint(run_dir, ("last", "prev", "best"), warn).meta if run_dir.is_dir() else meta
    records = read_metrics(run_dir / "metrics.jsonl") if run_dir.is_dir() else []
    ids = corpus_ids(run_dir, vocab) if run_dir.is_dir() else None
    text, source = passage(run_dir, vocab, meta.get("train", {}), cfg, warn)
    acts = activations(model, vocab, text, unknown="skip")
    now, saved = samples_html(model, vocab, records, cfg)
    config = {"model": meta["model"], "train": meta.get("train", {}), "precision ran": meta.get("precision", "not recorded")}
    parts = {
        "title": html.escape(f"rnnkit report: {run_dir.resolve().name}"),
        "summary": summary(run_dir, meta, last, model, vocab, ids),
        "config": html.escape(json.dumps(config, indent=2)),
        "curves": svg_curves(*curves(records)),
        "samples_now": now, "samples_saved": saved,
        "passage_source": html.escape(source),
        "data": json_script(heatmap_data(acts, cfg.units)),
    }
    page = resources.files("rnnkit").joinpath("report_template.html").read_text(encoding="utf-8")
    # one pass, so text inside a filled slot is never taken for another slot
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], page)


def write_report(run_dir: str | os.PathLike, cfg: Optional[ReportConfig] = None,
                 warn: Callable[[str], None] = warn_stderr) -> Path:
    """Build the report and write it (atomically) to cfg.out or RUN_DIR/report.html."""
    cfg = (cfg or ReportConfig()).validate()
    out = Path(cfg.out) if cfg.out else Path(run_dir) / "report.html"
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory; give a file name such as {out}/report.html")
    page = build_report(run_dir, cfg, warn)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page, "report")
    return out
