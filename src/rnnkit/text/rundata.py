"""The text wing's run directory: core's claimed directory plus the run's own copy of its text
(data/ids-*.npy|json, see core/rundir.py for the rest of the layout)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..core import rundir as _core
from ..core.config import UsageError, shown
from ..core.rundir import CHECKPOINTS, LOCK, OWN, foreign_files  # noqa: F401 (the old rnnkit.rundir names)
from .corpus import Source, ids_digest, read_cache, resolve_sources


class RunDir(_core.RunDir):
    """A run directory whose run trains on text: its sources are resolved (and refused) up front."""

    def __init__(self, path: Path, d):
        super().__init__(path, d)
        self._sources: list[Source] | None = None

    def sources(self, tcfg) -> list[Source]:
        if self._sources is None:
            self._sources = resolve_sources(tcfg.files, tcfg.corpus)
        return self._sources

    def check_inputs(self, tcfg) -> None:
        self.sources(tcfg)


# ---- the run's own copy of its text --------------------------------------------------------------
# A checkpoint records the encoded corpus (data/ids-*.npy: length and SHA-256) and every source
# (absolute path, size, SHA-256). A resume reads that copy whatever happened to the sources since
# (edited, moved, deleted; the run directory moved or resumed from another working directory) and
# says so; only when the copy itself is gone or damaged does it go back to the sources, and then
# only if they are byte for byte what the run started from.

def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def data_record(ids_path: Path, ids: np.ndarray, sources: list[Source]) -> dict:
    return {"ids": ids_path.name, "symbols": int(len(ids)), "sha256": ids_digest(ids),
            "sources": [{"name": s.name, "path": str(s.path.resolve()), "size": s.path.stat().st_size,
                         "sha256": file_digest(s.path)} for s in sources]}


def source_changes(record: dict) -> list[str]:
    """How the recorded sources differ from what is on disk now (empty: unchanged)."""
    out = []
    for s in record["sources"]:
        p = Path(s["path"])
        if not p.is_file():
            out.append(f"{s['name']} is gone or moved")
        elif p.stat().st_size != s["size"] or file_digest(p) != s["sha256"]:
            out.append(f"{s['name']} changed")
    return out


def recorded_ids(run_dir: Path, record: dict) -> tuple[Optional[np.ndarray], Optional[str]]:
    """The run's encoded corpus if it passes the cache's own checks and is the copy the checkpoint
    recorded; else (None, what is wrong)."""
    npy = run_dir / "data" / str(record.get("ids", ""))
    if npy.is_symlink() or npy.with_suffix(".json").is_symlink():
        return None, "a symlink"
    ids, _, why = read_cache(npy, npy.with_suffix(".json"))
    if ids is None:
        return None, why or "missing"
    written = json.loads(npy.with_suffix(".json").read_text(encoding="utf-8")).get("ids") or {}
    if len(ids) != record.get("symbols") or written.get("sha256") != record.get("sha256"):  # read_cache
        return None, "not the copy the checkpoint recorded"       # checked the bytes against that digest
    return ids, None


def resumed_ids(run_dir: Path, record: dict, say: Callable[[str], None]) -> tuple[Optional[np.ndarray], list[Source]]:
    """(ids, sources) for a resume: the recorded copy (ids set), or the unchanged sources to
    rebuild it from (ids None). Refuses when neither is to be had."""
    changes = source_changes(record)
    ids, why = recorded_ids(run_dir, record)
    if ids is not None:
        if changes:
            say(f"the training text differs from when the run started ({'; '.join(changes[:3])}); "
                f"continuing from the run's own encoded copy in {shown(run_dir / 'data')}")
        return ids, []
    if changes:
        raise UsageError(f"{shown(run_dir / 'data')}: the run's encoded corpus is {why}, and the "
                         f"training text changed since the run started ({'; '.join(changes[:3])}); "
                         "the same run cannot continue: start a new one")
    return None, [Source(Path(s["path"]), s["name"]) for s in record["sources"]]
