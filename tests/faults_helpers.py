"""Shared pieces of the fault tests (tests/test_faults_*.py): a tiny text and a tiny trained run,
checkpoints re-signed after an edit, the CLI run in-process or as a real process, and digests of a
directory tree for "nothing else changed"."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from conftest import tree_digest  # noqa: F401  (shared with test_cli.py)
from rnnkit.cli import main
from rnnkit.core.checkpoint import load_checkpoint, save_checkpoint

SRC = str(Path(__file__).resolve().parents[1] / "src")
WORDS = "the quick brown fox jumps over a lazy dog while seven wise owls watch".split()

# seconds to train, enough to exercise every code path
TINY_MODEL = dict(cell="lstm", layers=1, hidden=8, embed=4, dropout=0.0)
TINY_TRAIN = dict(seq_len=8, batch=4, max_steps=6, eval_every=3, save_every=2, log_every=3,
                  sample_chars=0, device="cpu", seed=3, threads=1)
TINY_FLAGS = ["--cell", "lstm", "--layers", "1", "--hidden", "8", "--embed", "4", "--dropout", "0",
              "--seq-len", "8", "--batch", "4", "--eval-every", "1000", "--log-every", "1000",
              "--sample-chars", "0", "--device", "cpu", "--seed", "3", "--threads", "1",
              "--schedule", "constant", "--warmup", "0"]


def make_text(n_lines: int = 120, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(n_lines)) + "\n"


_CACHE: dict[str, Path] = {}


def trained_run(factory) -> Path:
    """A trained run directory (best, last, prev), made once per session; copy it to change it."""
    if "run" not in _CACHE:
        from rnnkit import ModelConfig, TrainConfig, train_lm
        root = factory.mktemp("faults-base")
        text = root / "corpus.txt"
        text.write_text(make_text())
        train_lm(TrainConfig(files=[str(text)], **TINY_TRAIN), ModelConfig(**TINY_MODEL), root / "run", quiet=True)
        _CACHE["run"] = root / "run"
    return _CACHE["run"]


def text_of(run: Path) -> Path:
    return run.parent / "corpus.txt"


def copy_run(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


def resign(src: Path, dst: Path, meta_edit=None, tensor_edit=None) -> Path:
    """Write `src`'s checkpoint to `dst` after editing its metadata / tensors, with a valid checksum:
    a well-formed file that says something else (an incompatible checkpoint, not a damaged one)."""
    tensors, meta = load_checkpoint(src)
    if meta_edit:
        meta_edit(meta)
    if tensor_edit:
        tensor_edit(tensors)
    save_checkpoint(dst, tensors, meta)
    return dst


def cli(capsys, *args) -> tuple[int, str, str]:
    """`rnnkit ARGS` in this process: (exit status, stdout, stderr). An uncaught exception (a
    traceback for a user) propagates and fails the test."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc: int, err: str, codes=(1, 2)) -> str:
    """Assert a refusal: exit status in `codes`, one `rnnkit: error:` line on stderr, no traceback."""
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc in codes, (rc, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("rnnkit") and ": error: " in lines[0], err
    return lines[0]


def spawn(args: list, cwd: Path, **kw) -> subprocess.Popen:
    """A real `python -m rnnkit ARGS` process."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "rnnkit", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run_code(code: str, args: list, cwd: Path) -> subprocess.Popen:
    """A real process that runs `code` (e.g. a patch) and then `rnnkit ARGS` as `python -m` would."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    boot = (f"{code}\nimport runpy, sys\nsys.argv = ['rnnkit', *{[str(a) for a in args]!r}]\n"
            "runpy.run_module('rnnkit', run_name='__main__', alter_sys=True)\n")
    return subprocess.Popen([sys.executable, "-c", boot], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)




def temporaries(root: Path) -> list[str]:
    """Leftover temporary files anywhere under `root`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name)


@contextmanager
def deadline(seconds: int, what: str):
    """Turn a hang into a test failure (SIGALRM; the main thread only)."""
    def fire(signum, frame):
        raise TimeoutError(f"{what} did not finish within {seconds}s (a hang)")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def rows_csv(n: int = 60) -> str:
    rng = np.random.default_rng(0)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    days = np.arange("2020-01-01", n, dtype="datetime64[D]")
    return "Date,Open,High,Low,Volume,Close\n" + "".join(
        f"{days[i]},{close[i] + .1:.4f},{close[i] + 1:.4f},{close[i] - 1:.4f},{1000 + i},{close[i]:.4f}\n"
        for i in range(n))


def error_line(r) -> str:
    """The one `rnnkit: error:` line of a refusal (no traceback, nothing on stdout)."""
    assert not r.timed_out and "Traceback" not in r.err, r
    lines = [line for line in r.err_lines if ": error: " in line]
    assert r.rc in (1, 2) and len(lines) == 1, r
    return lines[0]
