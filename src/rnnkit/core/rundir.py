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
The text wing's run directory (text/rundata.py) adds the run's own copy of its text.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from . import distributed
from .config import RnnkitError, UsageError, shown
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
        self._lock_fd: int | None = None

    def check_inputs(self, tcfg) -> None:
        """Refuse bad input before anything is written (a wing's run directory fills this in)."""

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
            raise UsageError(f"{shown(p)} already holds a run; "
                             f"continue it with --resume {shown(p)} or choose another --out")
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
                self.check_inputs(tcfg)            # bad input refused before anything is written
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
