"""A run directory, claimed by one writer: what may be written there, and by whom.

    RUN_DIR/
      .rnnkit-lock          held (flock) by the one process writing the run; marks the directory as a run
      config.json           the run's configs (accepted back by --config)
      metrics.jsonl         training and evaluation records, one JSON object per line
      curves.png            learning curves
      last / prev / best.safetensors   checkpoints
      data/ids-*.npy|json   the encoded corpus (the run's own copy of its text)

rnnkit never writes into a directory that holds files of someone else's (a new run needs a new,
empty or earlier-rnnkit directory), never writes through a symlink, and keeps a second writer out
with an advisory lock that the kernel releases when the holder dies. Under torchrun only rank 0
holds it. A new run that fails before its first checkpoint removes the directory it created.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import distributed
from .config import RnnkitError, UsageError
from .corpus import Source, ids_digest, read_cache, resolve_sources
from .config import shown
from .fileio import TMP_SUFFIX, clean_temporaries, no_follow

LOCK = ".rnnkit-lock"
CHECKPOINTS = ("last.safetensors", "prev.safetensors", "best.safetensors")
# what a run directory may hold: anything else means the directory is someone else's
OWN = {LOCK, "config.json", "metrics.jsonl", "curves.png", "report.html", "data", *CHECKPOINTS}


def foreign_files(path: Path) -> list[str]:
    """Names in `path` that rnnkit did not put there."""
    return sorted(p.name for p in path.iterdir()
                  if p.name not in OWN and not p.name.endswith(TMP_SUFFIX) and not p.name.endswith(".damaged"))


class RunDir:
    def __init__(self, path: Path, d: distributed.Dist):
        self.path, self.d = Path(path), d
        self.data = self.path / "data"
        self._sources: list[Source] | None = None
        self._lock_fd: int | None = None

    def sources(self, tcfg) -> list[Source]:
        if self._sources is None:
            self._sources = resolve_sources(tcfg.files, tcfg.corpus)
        return self._sources

    def check_new(self) -> bool:
        """Whether a new run may start here; True when the directory must be created."""
        p = self.path
        if p.is_symlink() and not p.is_dir():
            raise UsageError(f"--out {shown(p)} is a symlink; choose a plain directory")
        if not p.exists():
            return True
        if not p.is_dir():
            raise UsageError(f"--out {shown(p)} is a file, not a run directory; choose another --out")
        if any((p / c).exists() for c in ("last.safetensors", "best.safetensors")):
            raise UsageError(f"{shown(p)} already holds a run; continue it with --resume {shown(p)} or choose another --out")
        foreign = foreign_files(p)
        if foreign:
            names = ", ".join(shown(n) for n in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise UsageError(f"{shown(p)} is not empty and is not an rnnkit run (it holds {names}); "
                             "choose a new or empty --out")
        return False

    def check_links(self) -> None:
        """Nothing rnnkit writes may be a symlink (it would lead the write out of the directory)."""
        for name in sorted(OWN):
            q = self.path / name
            if q.is_symlink():
                raise UsageError(f"{shown(q)} is a symlink; rnnkit never writes through links "
                                 "(replace it with a plain file, or copy the run without links)")

    def lock(self) -> None:
        try:
            self._lock_fd = no_follow(self.path / LOCK, os.O_RDWR | os.O_CREAT)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RnnkitError(f"another rnnkit process is writing to {shown(self.path)}; wait for it "
                                  "to finish, or choose another --out") from None
            raise RnnkitError(f"cannot lock {shown(self.path / LOCK)} ({e.strerror or e})") from None

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)     # closing releases the flock
            self._lock_fd = None

    @contextmanager
    def claimed(self, tcfg, resuming: bool):
        """Hold the run directory for the duration of training (rank 0 writes, everyone reads)."""
        create = False
        if self.d.main:
            create = False if resuming else self.check_new()
            if not resuming:
                self.sources(tcfg)                 # bad input refused before anything is written
            self.path.mkdir(parents=True, exist_ok=True)
            self.check_links()
            self.lock()
            clean_temporaries(self.path)
            if not resuming:                      # one run, one log: a killed start's records go
                (self.path / "metrics.jsonl").unlink(missing_ok=True)
        distributed.barrier(self.d)
        try:
            yield self
        except BaseException:
            if create and not any((self.path / c).exists() for c in CHECKPOINTS):
                shutil.rmtree(self.path, ignore_errors=True)   # ours alone: it did not exist before
            raise
        finally:
            self.unlock()


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
