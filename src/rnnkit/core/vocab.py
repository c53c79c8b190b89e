"""Vocabulary: characters <-> ids, deterministic (sorted), with one-hot and JSON round trip.

The lecture's `list(set(text))` gives a different order in every Python process; a sorted
vocabulary gives the same ids for the same text everywhere, so checkpoints stay meaningful.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from .config import UsageError, setting


class Vocab:
    """An ordered set of symbols. `kind` is "chars" (Unicode text) or "bytes" (one symbol a byte,
    stored as the Latin-1 character of that byte value)."""

    def __init__(self, symbols: Sequence[str], kind: str = "chars"):
        if kind not in ("chars", "bytes"):
            raise UsageError(f"vocabulary kind must be chars or bytes (got {kind!r})")
        symbols = list(symbols)
        if len(set(symbols)) != len(symbols) or any(len(s) != 1 for s in symbols):
            raise UsageError("vocabulary symbols must be distinct single characters")
        self.symbols = symbols
        self.kind = kind
        self.index = {s: i for i, s in enumerate(symbols)}

    @classmethod
    def from_text(cls, text: str | Iterable[str], kind: str = "chars") -> "Vocab":
        return cls(sorted(set(text)), kind)

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self.symbols, self.kind) == (other.symbols, other.kind)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} {self.kind}: {''.join(self.symbols)[:40]!r})"

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        n = len(self)
        return np.dtype(np.uint8 if n <= 1 << 8 else np.uint16 if n <= 1 << 16 else np.uint32)

    def unknown(self, text: str) -> list[str]:
        """The distinct symbols of `text` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        """Ids of `text`. unknown="error" refuses characters outside the vocabulary and lists
        them; unknown="skip" drops them."""
        missing = self.unknown(text)
        if missing and unknown == "error":
            shown = ", ".join(repr(c) for c in missing[:20])
            raise UsageError(f"{len(missing)} character(s) not in the vocabulary: {shown} "
                             f"(remove them or pass {setting('unknown', 'skip')})")
        return [self.index[c] for c in text if c in self.index]

    def encode_array(self, text: str) -> np.ndarray:
        """Vectorised encode of a large string to an array of `self.dtype` (all symbols known)."""
        if self.kind == "bytes":
            codes = np.frombuffer(text.encode("latin-1"), dtype=np.uint8).astype(np.int64)
        else:
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        table = np.array([ord(s) for s in self.symbols], dtype=np.int64)  # sorted by code point
        ids = np.searchsorted(table, codes)
        bad = (ids >= len(table)) | (table[np.minimum(ids, len(table) - 1)] != codes)
        if bad.any():
            self.encode(text)  # raises with the list of unknown characters
        return ids.astype(self.dtype)

    def decode(self, ids: Iterable[int]) -> str:
        """Symbols of `ids` joined; for a byte vocabulary, the bytes decoded as UTF-8 where valid."""
        text = "".join(self.symbols[int(i)] for i in ids)
        if self.kind == "bytes":
            return text.encode("latin-1").decode("utf-8", errors="replace")
        return text

    def one_hot(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """(..., ) ids -> (..., V) float one-hot vectors."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        return torch.nn.functional.one_hot(ids, len(self)).float()

    def to_json(self) -> dict:
        d = {"kind": self.kind, "symbols": "".join(self.symbols)}
        if any(is_pair(a, b) for a, b in zip(self.symbols, self.symbols[1:])):
            # a lone high and a lone low surrogate side by side would be read back from JSON as one
            # astral character: the code points say what the symbols are
            d["codepoints"] = [ord(c) for c in self.symbols]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Vocab":
        if not isinstance(d, dict) or not isinstance(d.get("symbols"), str):
            raise UsageError("vocabulary JSON must be an object with a 'symbols' string")
        symbols = d["symbols"]
        points = d.get("codepoints")
        if points is not None:
            if not isinstance(points, list) or not all(isinstance(c, int) and 0 <= c < MAX_SYMBOLS for c in points):
                raise UsageError("vocabulary JSON: 'codepoints' must be a list of code points")
            symbols = "".join(map(chr, points))
        check_symbols(symbols, d.get("kind", "chars"))
        return cls(list(symbols), d.get("kind", "chars"))


MAX_SYMBOLS = 0x110000   # every Unicode code point


def is_pair(a: str, b: str) -> bool:
    """A high surrogate followed by a low one: what a JSON reader joins into one character."""
    return "\ud800" <= a <= "\udbff" and "\udc00" <= b <= "\udfff"


def check_symbols(symbols: str, kind) -> None:
    """A stored vocabulary (a checkpoint header, an id cache) as rnnkit writes it: a known kind,
    distinct symbols sorted by code point (encode_array relies on the order), and for bytes at most
    256 symbols, each a byte value. UsageError names what is wrong."""
    if kind not in ("chars", "bytes"):
        raise UsageError(f"vocabulary kind must be chars or bytes (got {kind!r})")
    if not symbols or len(symbols) > (256 if kind == "bytes" else MAX_SYMBOLS):
        raise UsageError(f"a {kind} vocabulary holds 1 to {256 if kind == 'bytes' else MAX_SYMBOLS} symbols "
                         f"(got {len(symbols)})")
    if kind == "bytes" and max(map(ord, symbols)) > 0xFF:
        bad = next(c for c in symbols if ord(c) > 0xFF)
        raise UsageError(f"a bytes vocabulary holds byte values 0..255 (got {bad!r}, U+{ord(bad):04X})")
    codes = np.frombuffer(symbols.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(codes) > 1 and not (np.diff(codes.astype(np.int64)) > 0).all():
        raise UsageError("vocabulary symbols must be distinct and sorted by code point")
