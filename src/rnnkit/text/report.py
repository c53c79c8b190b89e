"""The run report: one self-contained HTML file that shows what a character model learned.

    rnnkit report runs/mine                      # -> runs/mine/report.html
    rnnkit report runs/mine --text play.txt --out play.html

    from rnnkit.text.report import ReportConfig, write_report
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

from ..core.checkpoint import find_checkpoint, load_model
from ..core.config import ReportConfig, SampleConfig, UsageError, shown
from ..core.fileio import LN2, write_atomic
from ..core.fileio import warn as warn_stderr
from ..core.models import check_memory, count_params
from ..core.runlog import curves, read_metrics_checked, skipped_note
from ..core.vocab import Vocab
from .corpus import read_text, verified_cache
from .probe import Activations, activations, rank_units
from .sample import generate

TEMPERATURES = (0.5, 0.8, 1.0)


# ---- the passage ----

def corpus_ids(run_dir: Path, vocab: Vocab, warn: Callable[[str], None] = lambda m: None) -> Optional[np.ndarray]:
    """The run's encoded corpus (data/ids-*.npy written by training), newest first, or None. A
    cache that fails its checks (ids out of range, wrong type, truncated, digest) is passed over."""
    for meta in sorted((run_dir / "data").glob("ids-*.json"), key=lambda p: -p.stat().st_mtime):
        ids, why = verified_cache(meta.with_suffix(".npy"), meta, vocab)
        if ids is not None:
            return ids
        if why:
            warn(f"{shown(meta.with_suffix('.npy'))}: {why}; not used")
    return None


def unit_of(vocab: Vocab) -> str:
    """What one symbol is, in words: the report speaks of bytes for a byte-level model."""
    return "byte" if vocab.kind == "bytes" else "character"


def display_symbols(text: str, kind: str) -> list[str]:
    """One label per position of `text`. Characters show as themselves; for a byte vocabulary
    (text holds one Latin-1 character per byte) the bytes of a UTF-8 character show as that
    character at its first byte and as '' at the others, and a byte that is not part of valid
    UTF-8 as an escape such as '\\xff'."""
    if kind != "bytes":
        return list(text)
    raw, out, i = text.encode("latin-1"), [], 0
    while i < len(raw):
        b = raw[i]
        n = 1 if b < 0x80 else 2 if 0xC2 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if 0xF0 <= b < 0xF5 else 0
        try:
            ch = raw[i:i + n].decode("utf-8") if n and i + n <= len(raw) else None
        except UnicodeDecodeError:
            ch = None
        if ch is None:
            out.append(f"\\x{b:02x}")
            i += 1
        else:
            out += [ch] + [""] * (n - 1)
            i += n
    return out


def symbol_label(sym: str, kind: str) -> str:
    """A vocabulary symbol for the top-5 list: a byte outside ASCII as 0xNN (it is part of a character)."""
    return f"0x{ord(sym):02X}" if kind == "bytes" and ord(sym) >= 0x80 else sym


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
    unit = unit_of(vocab)
    return "".join(vocab.symbols[i] for i in chunk), f"{where}, {unit}s {start:,} to {start + len(chunk):,}"


def passage(run_dir: Path, vocab: Vocab, train: dict, cfg: ReportConfig,
            warn: Callable[[str], None]) -> tuple[str, str]:
    if cfg.text is not None:
        text = read_text(cfg.text, "bytes" if vocab.kind == "bytes" else "utf-8")[: cfg.chars]
        missing = vocab.unknown(text)
        if missing:
            warn(f"{shown(cfg.text)}: {len(missing)} character(s) outside the vocabulary left out: "
                 + ", ".join(map(repr, missing[:10])))
        return text, f"{shown(cfg.text)}, first {len(text):,} {unit_of(vocab)}s"
    ids = corpus_ids(run_dir, vocab, warn)
    if ids is None:
        raise UsageError(f"{run_dir}/data holds no encoded corpus for this run's vocabulary; "
                         "pass a passage with --text FILE")
    return validation_passage(ids, vocab, float(train.get("val_fraction", 0.1)), cfg.chars)


def heatmap_data(acts: Activations, per_feature: int, kind: str = "chars") -> dict:
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
        "chars": display_symbols(acts.text, kind),
        "unit": "byte" if kind == "bytes" else "character",
        "p": [None if math.isnan(x) else round(float(x), 4) for x in p],
        "top": [[[symbol_label(acts.symbols[j], kind), round(float(acts.probs[t, j]), 4)] for j in row]
                for t, row in enumerate(top)],
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


def svg_curves(train: list[tuple[float, float]], val: list[tuple[float, float]], w: int = 760, h: int = 320,
               unit: str = "character") -> str:
    """Train (line) and validation (line with dots) bits per `unit` against units seen."""
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
           f'aria-label="learning curves in bits per {unit}">']
    for t in nice_ticks(y0, y1):
        out.append(f'<line class="grid" x1="{left}" x2="{w - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x0, x1):
        out.append(f'<line class="grid" y1="{top}" y2="{h - bottom}" x1="{sx(t):.1f}" x2="{sx(t):.1f}"/>'
                   f'<text x="{sx(t):.1f}" y="{h - bottom + 16}" text-anchor="middle">{short(t)}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle">{unit}s seen</text>'
               f'<text transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">'
               f'bits per {unit}</text>')
    for name, series in (("train", train), ("val", val)):
        if series:
            line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in series)
            out.append(f'<polyline class="{name}" points="{line}"><title>{name}</title></polyline>')
    out += [f'<circle class="val" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"><title>{short(x)} {unit}s: '
            f'{y:.3f} bits/{unit}</title></circle>' for x, y in val]
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
    frac, u = float(t.get("val_fraction", 0.1)), unit_of(vocab)
    if ids is not None:
        n_val = int(len(ids) * frac)
        split = f"{len(ids) - n_val:,} {u}s train (first {1 - frac:.0%}), {n_val:,} validation (last {frac:.0%})"
    else:
        split = f"first {1 - frac:.0%} train, last {frac:.0%} validation"
    elapsed, chars = float(st.get("elapsed", 0.0)), int(st.get("chars", 0))
    best = meta.get("state", {}).get("best_val")
    data = ", ".join(map(shown, t.get("files") or [])) or f"built-in corpus '{t.get('corpus', '?')}'"
    return rows([
        ("data", f"{data} ({t.get('encoding', 'utf-8')})"), ("split", split),
        ("vocabulary", f"{len(vocab)} {vocab.kind}"),
        ("model", f"{m['cell'].upper()} x{m['layers']}, hidden {m['hidden']}, embed {m['embed'] or 'one-hot'}, "
                  f"dropout {m['dropout']}"),
        ("parameters", f"{count_params(model):,}"),
        ("training", f"{st.get('step', 0):,} steps, {chars:,} {u}s in {duration(elapsed)}"),
        ("speed", f"{chars / elapsed:,.0f} {u[:4]}s/s (average)" if elapsed > 0 else "n/a"),
        ("best validation", f"{best / LN2:.3f} bits/{u[:4]} ({best:.4f} nats) "
                            f"at step {meta.get('state', {}).get('step', '?')}"
         if isinstance(best, (int, float)) else "n/a"),
    ])


def samples_html(model, vocab: Vocab, records: list[dict], cfg: ReportConfig) -> tuple[str, str]:
    now = []
    for temp in TEMPERATURES:
        text = generate(model, vocab, SampleConfig(length=cfg.sample_chars, temperature=temp, seed=cfg.seed))[0]
        now.append(f'<h3>temperature {temp}</h3><pre class="sample">{html.escape(text)}</pre>')
    u = unit_of(vocab)
    val = lambda r: f'{r["val_bpc"]:.3f} bits/{u[:4]}' if r.get("val_bpc") is not None else "n/a"
    saved = [f'<h3>step {r.get("step", "?"):,} &middot; {short(r.get("chars", 0))} {u}s &middot; '
             f'validation {val(r)}</h3><pre class="sample">{html.escape(r["sample"])}</pre>'
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
    from ..core.distributed import pick_device
    model, vocab, meta = load_model(run_dir, pick_device(cfg.device), warn=warn)
    check_memory(model.config, 1, cfg.chars, training=False, device=pick_device(cfg.device))  # the probe's pass
    last = find_checkpoint(run_dir, ("last", "prev", "best"), warn).meta if run_dir.is_dir() else meta
    records, bad = read_metrics_checked(run_dir / "metrics.jsonl") if run_dir.is_dir() else ([], 0)
    if bad:
        warn(skipped_note(run_dir / "metrics.jsonl", bad))
    ids = corpus_ids(run_dir, vocab, warn) if run_dir.is_dir() else None
    text, source = passage(run_dir, vocab, meta.get("train", {}), cfg, warn)
    acts = activations(model, vocab, text, unknown="skip")
    now, saved = samples_html(model, vocab, records, cfg)
    config = {"model": meta["model"], "train": meta.get("train", {}),
              "precision ran": meta.get("precision", "not recorded")}
    parts = {
        "title": html.escape(f"rnnkit report: {shown(run_dir.resolve().name)}"),
        "summary": summary(run_dir, meta, last, model, vocab, ids),
        "config": html.escape(json.dumps(config, indent=2)),
        "curves": svg_curves(*curves(records), unit=unit_of(vocab)),
        "unit": unit_of(vocab),
        "samples_now": now, "samples_saved": saved,
        "passage_source": html.escape(source),
        "data": json_script(heatmap_data(acts, cfg.units, vocab.kind)),
    }
    page = resources.files("rnnkit.text").joinpath("report_template.html").read_text(encoding="utf-8")
    # one pass, so text inside a filled slot is never taken for another slot
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], page)


# the first bytes of every page `rnnkit report` writes (report_template.html): an existing --out
# file that does not start this way is someone else's, and is never overwritten
MARK = b"<!doctype html>\n<!-- The page of `rnnkit report`"


def check_out(out: Path, flag: str = "--out ") -> None:
    """Refuse an --out that would clobber what rnnkit did not write, before any work: a directory,
    a symlink, a checkpoint or any file that is not an earlier report (one rule, no --force)."""
    name = f"{flag}{shown(out)}"
    if out.is_symlink():
        raise UsageError(f"{name}: is a symbolic link; rnnkit never writes through one, choose another --out")
    if out.is_dir():
        raise UsageError(f"{name}: is a directory; give a file name such as {shown(out)}/report.html")
    if not out.exists():
        if out.parent.exists() and not out.parent.is_dir():
            raise UsageError(f"{name}: {shown(out.parent)} is a file, not a directory")
        return
    try:
        with open(out, "rb") as f:
            head = f.read(len(MARK)) if out.is_file() else b""
    except OSError as e:
        raise UsageError(f"{name}: cannot read ({e.strerror or e}); choose another --out")
    if head != MARK:
        what = "a checkpoint" if out.suffix == ".safetensors" else "a file rnnkit did not write"
        raise UsageError(f"{name}: exists and is {what}; it is never overwritten, choose another "
                         "--out (or remove it yourself)")


def write_report(run_dir: str | os.PathLike, cfg: Optional[ReportConfig] = None,
                 warn: Callable[[str], None] = warn_stderr) -> Path:
    """Build the report and write it (atomically) to cfg.out or RUN_DIR/report.html. An existing
    file there is replaced only when it is an earlier rnnkit report (check_out)."""
    cfg = (cfg or ReportConfig()).validate()
    out = Path(cfg.out) if cfg.out else Path(run_dir) / "report.html"
    check_out(out, "--out " if cfg.out else "")
    page = build_report(run_dir, cfg, warn)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a name that is not UTF-8 was made printable by shown(); anything left is escaped, not a crash
    write_atomic(out, page.encode("utf-8", "backslashreplace"), "report")
    return out
