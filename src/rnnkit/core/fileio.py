"""Small file and message helpers every module shares: atomic writes, regular-file checks, warnings,
bits from nats.

A file rnnkit writes goes to a temporary file in the same directory (a name no user file has:
`.NAME.tmp-PID-rnnkit`), is fsynced, then renamed over the target, so readers see the old file or
the new one, never half of one, and a symlink planted at the target is replaced, not followed.
"""
from __future__ import annotations

import errno
import math
import os
import stat
import sys
from pathlib import Path

from .config import RnnkitError, UsageError, shown

LN2 = math.log(2)
TMP_SUFFIX = "-rnnkit"


def bits(nats: float) -> float:
    """Nats per symbol -> bits per symbol."""
    return nats / LN2


def warn(msg: str) -> None:
    """A warning on stderr, in the one format the CLI uses."""
    print(f"rnnkit: warning: {msg}", file=sys.stderr, flush=True)


def check_regular_file(path: str | os.PathLike, what: str = "file",
                       fix: str = "save it to a regular file") -> os.stat_result:
    """The stat of a readable regular file, or a one-line UsageError saying what is wrong
    (missing, a directory, a pipe or device that would block a read forever, unreadable)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{shown(path)}: no such file")
    except OSError as e:  # symlink loops, permissions, names too long
        raise UsageError(f"{shown(path)}: cannot read ({e.strerror or e})")
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{shown(path)}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{shown(path)}: not a regular file (a pipe or device); {fix}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{shown(path)}: permission denied")
    return st


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{TMP_SUFFIX}")


def no_space(e: OSError) -> str:
    return "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def no_follow(path, flags: int) -> int:
    """An `opener` for open(): never follow a symlink at the last component."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


def new_file(path, flags: int) -> int:
    """An `opener` for open(): create a new file, never reuse or follow what is at that name."""
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)


def write_synced(path: Path, data: bytes, what: str = "file") -> None:
    """Write `data` to the new file `path` and fsync it. The file is created exclusively, so a
    symlink planted at that name is refused, not followed. On failure (a full disk) the partial
    file is removed and nothing else is touched."""
    try:
        path.unlink(missing_ok=True)  # a stale temporary of a killed process with this pid
        with open(path, "wb", opener=new_file) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        path.unlink(missing_ok=True)
        raise RnnkitError(f"could not write {shown(path)}: {no_space(e)}; the previous {what} is intact, "
                          "free space and try again (a run continues with --resume)") from None


def write_atomic(path: str | os.PathLike, data: bytes | str, what: str = "file") -> None:
    """Replace `path` with `data` all at once (temp file, fsync, rename)."""
    path = Path(path)
    tmp = tmp_name(path)
    write_synced(tmp, data.encode("utf-8") if isinstance(data, str) else data, what)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def append_line(path: Path, line: str) -> None:
    """Append one line to a log file rnnkit owns, refusing to follow a symlink out of the run."""
    try:
        with open(path, "a", encoding="utf-8", opener=no_follow) as f:
            f.write(line + "\n")
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RnnkitError(f"{shown(path)} is a symlink; rnnkit never writes through links "
                              "(remove it, or copy the run directory without links)") from None
        raise RnnkitError(f"could not write {shown(path)}: {no_space(e)}; the checkpoints written so far "
                          "are intact, free space and continue with --resume") from None


def clean_temporaries(directory: Path) -> None:
    """Remove temporary files that a crash left in the middle of a write (only rnnkit's own)."""
    for p in directory.glob(f".*.tmp-*{TMP_SUFFIX}"):
        p.unlink(missing_ok=True)
