"""Scoring text: bits per character of each line (or segment), with the state carried.

The text is read as one stream, as `rnnkit eval` reads it: every character after the first is
predicted from all the characters before it, so the total equals eval's on the same text. Each
predicted character is then charged to the line (or `segment`-character piece) it belongs to:

    text:    R O M E O : \\n A y e \\n
    scored:    * * * * * *  * * * *      (the first character has no prediction)
    line 1: 6 characters scored;  line 2: 4

Lines holding characters outside the vocabulary are reported (`unknown`) and left out; the state
runs on from the line before them. Text that does not belong (another language, a table, noise)
scores worst.

    rnnkit score runs/shakespeare play.txt --json
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from torch import nn

from ..core.config import UsageError
from ..core.fileio import LN2
from ..core.vocab import Vocab

CHUNK = 1024   # characters per forward call (as rnnkit eval)


@dataclass
class Scored:
    """Per-unit rows and the total; `probs` (when asked) is each kept character's probability."""

    rows: list[dict]
    total: dict
    probs: list[float] | None = field(default=None)


def split_units(text: str, segment: int | None) -> list[str]:
    """Lines (each with its newline) or pieces of `segment` characters."""
    if segment:
        return [text[i:i + segment] for i in range(0, len(text), segment)]
    parts = text.split("\n")          # only "\n" ends a line, as the model saw the text
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@torch.inference_mode()
def char_nll(model: nn.Module, ids: list[int], device="cpu") -> torch.Tensor:
    """(len(ids) - 1,) nats of each character after the first, one stream with the state carried."""
    model.eval()
    ids_t = torch.tensor(ids, dtype=torch.long, device=device)
    x_all, y_all = ids_t[:-1], ids_t[1:]
    out, state = [], None
    for j in range(0, len(x_all), CHUNK):
        logits, state = model(x_all[None, j:j + CHUNK], state)                 # (1, T, V)
        out.append(nn.functional.cross_entropy(logits[0].float(), y_all[j:j + CHUNK], reduction="none"))
    return torch.cat(out).cpu() if out else torch.zeros(0)


def score_text(model: nn.Module, vocab: Vocab, text: str, segment: int | None = None,
               device="cpu", probs: bool = False, unknown: str = "error") -> Scored:
    """Bits per character of each line (or segment) of `text` (in the vocabulary's symbols).
    unknown="skip" scores a line without its characters outside the vocabulary (counted in the
    total's `unknown_skipped`) instead of leaving the line out."""
    key = "segment" if segment else "line"
    units = split_units(text, segment)
    kept, ids, rows, dropped = [], [], [], 0
    for n, unit in enumerate(units, 1):
        missing = vocab.unknown(unit)
        if missing and unknown == "skip":
            known = "".join(c for c in unit if c in vocab.index)
            dropped, unit, missing = dropped + len(unit) - len(known), known, []
        if missing:
            rows.append({key: n, "chars": 0, "bpc": None, "unknown": missing[:20]})
            continue
        kept.append((len(rows), len(ids), len(unit)))
        rows.append({key: n, "chars": len(unit), "bpc": None})
        ids += vocab.encode(unit)
    nll = char_nll(model, ids, device) if len(ids) >= 2 else torch.zeros(0)
    nll64 = nll.double()
    for r, start, size in kept:                       # character i of the stream is nll[i - 1]
        lo, hi = max(start - 1, 0), start + size - 1
        chars = hi - lo
        rows[r]["chars"] = chars
        rows[r]["bpc"] = nll64[lo:hi].sum().item() / chars / LN2 if chars > 0 else None
    total_nats, count = nll64.sum().item(), len(nll)
    total = {"chars": count, "loss": total_nats / count if count else None,
             "bpc": total_nats / count / LN2 if count else None,
             "skipped": sum(1 for r in rows if "unknown" in r), **({"unknown_skipped": dropped} if dropped else {})}
    return Scored(rows, total, torch.exp(-nll).tolist() if probs else None)


def worst(scored: Scored, k: int = 1) -> list[dict]:
    """The k rows with the highest bits per character."""
    return sorted((r for r in scored.rows if r["bpc"] is not None), key=lambda r: -r["bpc"])[:k]


def read_scored_text(name: str, kind: str) -> str:
    """FILE or - (standard input) as the model's symbols: strict UTF-8, or bytes as Latin-1."""
    import sys

    from .corpus import check_file
    data = sys.stdin.buffer.read() if name == "-" else check_file(name).read_bytes()
    if kind == "bytes":
        return data.decode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{name}: not valid UTF-8 at byte {e.start}; this model reads UTF-8 text")


def crlf_hint(scored: Scored, name: str) -> str | None:
    """Lines left out for a carriage return alone: Windows line ends the model never saw."""
    if any("\r" in r.get("unknown", ()) for r in scored.rows):
        return (f"{name}: lines end in \\r\\n (Windows line ends) and '\\r' is not in the vocabulary; "
                "pass --unknown skip to score them without it, or convert the file (dos2unix)")
    return None


def print_scores(scored: Scored, text: str, segment: int | None, as_json: bool, name: str) -> None:
    """`rnnkit score`'s output: a line per unit, then the total (JSON lines with --json)."""
    key = "segment" if segment else "line"
    units = split_units(text, segment) if segment else text.split("\n")
    for r in scored.rows:
        if as_json:
            print(json.dumps(r))
        elif r["bpc"] is None:
            why = f"characters not in the vocabulary: {', '.join(map(repr, r['unknown']))}" if "unknown" in r \
                else "nothing scored"
            print(f"{key} {r[key]}: {why}")
        else:
            print(f"{key} {r[key]}: {r['bpc']:.3f} bpc over {r['chars']} chars  {units[r[key] - 1][:60]!r}")
    t = scored.total
    if t["chars"] == 0:
        raise UsageError(f"{name}: needs at least 2 characters in the vocabulary to score")
    if as_json:
        print(json.dumps({"total": t}))
    else:
        print(f"total: {t['bpc']:.4f} bits/char over {t['chars']:,} characters"
              + (f" ({t['skipped']} {key}(s) with unknown characters left out)" if t["skipped"] else "")
              + (f" ({t['unknown_skipped']} unknown character(s) skipped)" if t.get("unknown_skipped") else ""))
