"""Promises 2 and 8: a crash (SIGKILL, at random moments and in the middle of a checkpoint write)
never costs more than the last checkpoint interval; a full disk leaves the previous checkpoint
byte-identical and stops with a clear message."""
from __future__ import annotations

import errno
import os
import random
import time
import types
from contextlib import contextmanager
from pathlib import Path

import pytest

from faults_helpers import (
    TINY_FLAGS,
    cli,
    copy_run,
    make_text,
    one_line_error,
    run_code,
    spawn,
    temporaries,
    trained_run,
)
from rnnkit.core import checkpoint, fileio
from rnnkit.core.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from rnnkit.core.fileio import clean_temporaries
from rnnkit.text.lm import train_lm


@pytest.fixture
def run(tmp_path_factory, tmp_path) -> Path:
    return copy_run(trained_run(tmp_path_factory), tmp_path / "run")


def step_of(path: Path) -> int:
    return load_checkpoint(path)[1]["state"]["step"]


# ---- simulated crashes at every file-system operation of a save --------------------------------

class Crash(BaseException):
    """The process dies here: nothing after this point runs, no handler cleans up."""


@contextmanager
def crash_at(monkeypatch, n: int):
    """Die at the n-th operation a save performs on the file system: half-way through a
    write, before an fsync, a link or a rename. Yields a list that records the operations seen."""
    seen: list[str] = []
    real = os

    def tick(what: str) -> None:
        seen.append(what)
        if len(seen) == n:
            raise Crash(what)

    class HalfWay:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            tick("half-way through a write")
            return self.f.write(data[len(data) // 2:])

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def wrap(name):
        fn = getattr(real, name)

        def op(*a, **k):
            tick(f"{name}{tuple(Path(x).name for x in a if isinstance(x, (str, Path)))}")
            return fn(*a, **k)
        return op

    fake_os = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
    for name in ("replace", "link", "fsync", "unlink"):
        setattr(fake_os, name, wrap(name))
    with monkeypatch.context() as m:
        for module in (checkpoint, fileio):  # checkpoint.py renames and links, fileio.py writes and syncs
            m.setattr(module, "os", fake_os)
            m.setattr(module, "open", lambda p, mode="r", *a, **k: HalfWay(open(p, mode, *a, **k)), raising=False)
        yield seen


def test_every_crash_point_of_a_save_leaves_last_whole(monkeypatch, run):
    """`last` holds a whole checkpoint at every instant of a save (the old or the new one), so a
    crash never falls back further than that; a restart cleans up and resumes."""
    old = step_of(run / "last.safetensors")
    tensors, meta = load_checkpoint(run / "last.safetensors")
    meta["state"]["step"] = old + 1                               # the "new" checkpoint
    points = []
    for n in range(1, 50):
        d = copy_run(run, run.parent / f"crash-{n}")
        with crash_at(monkeypatch, n) as seen:
            try:
                save_checkpoint(d / "last.safetensors", tensors, meta, keep_previous=d / "prev.safetensors")
                crashed = False
            except Crash:
                crashed = True
        if not crashed:
            break
        points.append(seen[-1])
        assert step_of(d / "last.safetensors") in (old, old + 1), seen[-1]
        path, _, m = find_checkpoint(d, ("last", "prev"))
        assert path.name == "last.safetensors"
        clean_temporaries(d)                                      # what a restart does first
        assert temporaries(d) == []
    assert len(points) >= 6, points                               # write, fsync, link, 2 renames, ...
    print(f"save: {len(points)} crash points, `last` whole after each")
    # a restart resumes (once is enough: the directories above differ only in which checkpoint `last` is)
    res = train_lm(None, None, d, resume=True, given={"max_steps": old + 3}, quiet=True)
    assert res["step"] == old + 3 and temporaries(d) == []


def test_a_crash_after_falling_back_to_prev_keeps_a_good_checkpoint(monkeypatch, run):
    """`last` damaged, the run resumed from `prev`: a crash in the next save must not rotate the
    damaged `last` into `prev` and lose the only good checkpoint."""
    data = (run / "last.safetensors").read_bytes()
    (run / "last.safetensors").write_bytes(data[: len(data) // 2])
    good = step_of(run / "prev.safetensors")
    for n in range(1, 40):
        d = copy_run(run, run.parent / f"fallback-{n}")
        with crash_at(monkeypatch, n) as seen:
            try:
                train_lm(None, None, d, resume=True, given={"max_steps": good + 2, "save_every": 1}, quiet=True)
                crashed = False
            except Crash:
                crashed = True
        path, _, m = find_checkpoint(d, ("last", "prev"), warn=lambda msg: None)
        assert m["state"]["step"] >= good, (n, seen[-1:])
        if not crashed:
            break
    assert n > 5
    print(f"fallback: {n - 1} crash points, a good checkpoint after each")


# ---- real processes killed with SIGKILL --------------------------------------------------------

SLOW_WRITES = '''
import time
import rnnkit.core.fileio as c  # where every atomic write (checkpoints too) is written

class Slow:
    """Checkpoint writes in 8 pieces, 10 ms apart, so that a kill lands inside one."""
    def __init__(self, f):
        self.f = f
    def write(self, data):
        n = max(1, len(data) // 8)
        for i in range(0, len(data), n):
            self.f.write(data[i:i + n]); self.f.flush(); time.sleep(0.01)
        return len(data)
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

c.open = lambda p, mode="r", *a, **k: Slow(open(p, mode, *a, **k))
'''

KILLS = [("random", 0), ("mid-write", 1), ("mid-write", 2)]          # each kill costs a process start
MORE_KILLS = [("random", s) if s % 3 == 0 else ("mid-write", s) for s in range(10, 20)]


def wait_until(cond, p, timeout: float, what: str, poll: float = 0.004) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if p.poll() is not None:
            out, err = p.communicate()
            pytest.fail(f"the training process ended (exit {p.returncode}) before {what}:\n{err[-2000:]}")
        if time.monotonic() > end:
            p.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll)


def test_sigkill_at_random_moments_and_mid_write(tmp_path):
    """Kill `rnnkit train` (then each `--resume`) with SIGKILL, at a random moment after a save or
    while a checkpoint is being written: every time the run directory holds a loadable checkpoint,
    the next `--resume` continues from it, and a final clean exit leaves no temporary file."""
    sigkill_chain(tmp_path, KILLS)


@pytest.mark.slow
def test_sigkill_many_times(tmp_path):
    sigkill_chain(tmp_path, MORE_KILLS)


def sigkill_chain(tmp_path: Path, kills: list[tuple[str, int]]) -> None:
    text = tmp_path / "text.txt"
    text.write_text(make_text(80))
    run = tmp_path / "run"
    last = run / "last.safetensors"
    first = ["train", text, "--out", run, *TINY_FLAGS, "--max-steps", "100000", "--save-every", "3"]
    resume = ["train", "--resume", run, "--max-steps", "100000"]
    step, mid_write = None, 0
    for i, (mode, seed) in enumerate(kills):
        rng = random.Random(seed)
        args = first if step is None else resume
        p = spawn(args, tmp_path) if mode == "random" else run_code(SLOW_WRITES, args, tmp_path)
        seen = last.stat().st_mtime_ns if last.exists() else None
        # first a save by this process (so a checkpoint exists), then the moment
        wait_until(lambda: last.exists() and last.stat().st_mtime_ns != seen, p, 300, "a checkpoint", 0.01)
        if mode == "random":
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            wait_until(lambda: any(".tmp-" in n for n in os.listdir(run)), p, 60, "a checkpoint write")
            time.sleep(rng.uniform(0.0, 0.05))
        writing = any(".tmp-" in n for n in os.listdir(run))
        p.kill()
        out, err = p.communicate()
        assert p.returncode == -9 and "Traceback" not in err, err
        if step is not None:
            assert f"resuming {run} at step {step}" in out, out
        mid_write += writing
        path, _, meta = find_checkpoint(run, ("last", "prev"))   # loadable, every time
        assert path.name == "last.safetensors"
        new = meta["state"]["step"]
        assert step is None or new > step                        # progress kept: one interval at most lost
        step = new
    assert mid_write >= 2, f"only {mid_write} kills landed inside a checkpoint write"
    # the last resume runs in this process (a process start costs seconds; the killed ones above
    # were real `python -m rnnkit train --resume` processes and printed where they resumed)
    res = train_lm(None, None, run, resume=True, given={"max_steps": step + 4}, quiet=True)
    assert res["step"] == step_of(last) == step + 4
    assert temporaries(run) == []                                # the killed writes' leftovers are gone
    print(f"SIGKILL: {len(kills)} kills, {mid_write} inside a checkpoint write; resumed each time, final step {step + 4}")


# ---- a full disk ---------------------------------------------------------------------------------

class FullDisk(OSError):
    def __init__(self):
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC))


def full_after(monkeypatch, module, n: int, run: Path, how: str = "write", match: str = ".tmp-") -> dict:
    """The n-th file `module` opens for writing (whose name contains `match`) hits a full disk half-way
    through the write (or at its fsync). Returns the run's checkpoints as they were at that moment."""
    state = {"count": 0, "before": None}

    class Half:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise FullDisk()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def fake_open(p, mode="r", *a, **k):
        f = open(p, mode, *a, **k)
        if ("w" in mode or "a" in mode) and match in Path(p).name:
            state["count"] += 1
            if state["count"] == n:
                state["before"] = {q.name: q.read_bytes() for q in run.glob("*.safetensors")}
                if how == "write":
                    return Half(f)
                monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (_ for _ in ()).throw(FullDisk()))
        return f

    monkeypatch.setattr(module, "open", fake_open, raising=False)
    return state


@pytest.mark.parametrize("nth, how", [(1, "write"), (3, "write"), (4, "fsync")])
def test_full_disk_during_a_checkpoint_write(capsys, monkeypatch, tmp_path, nth, how):
    text = tmp_path / "text.txt"
    text.write_text(make_text(60))
    run = tmp_path / "run"
    state = full_after(monkeypatch, fileio, nth, run, how, match=".safetensors.tmp-")  # the n-th checkpoint write
    rc, out, err = cli(capsys, "train", text, "--out", run, *TINY_FLAGS, "--max-steps", "20", "--save-every", "2")
    line = one_line_error(rc, err, codes=(1,))
    assert "no space left on device" in line and "the previous checkpoint is intact" in line, line
    assert str(run) in line
    assert state["before"] is not None
    after = {q.name: q.read_bytes() for q in run.glob("*.safetensors")}
    assert after == state["before"]                               # byte-identical, nothing new
    assert temporaries(run) == []
    monkeypatch.undo()
    if nth > 1:                                                   # and the run continues from it
        step = step_of(run / "last.safetensors")
        assert step == 2 * (nth - 1)
        rc, out, err = cli(capsys, "train", "--resume", run, "--max-steps", str(step + 2))
        assert rc == 0 and f"resuming {run} at step {step}" in out, err


def test_full_disk_on_the_metrics_log(capsys, monkeypatch, run):
    before = {q.name: q.read_bytes() for q in run.glob("*.safetensors")}
    full_after(monkeypatch, fileio, 1, run, match="metrics.jsonl")
    rc, out, err = cli(capsys, "train", "--resume", run, "--max-steps", "30", "--log-every", "1")
    line = one_line_error(rc, err, codes=(1,))
    assert "could not write" in line and "metrics.jsonl: no space left on device" in line, line
    assert {q.name: q.read_bytes() for q in run.glob("*.safetensors")} == before


@pytest.mark.parametrize("damage", ["torn json", "truncated ids", "garbage ids"])
def test_a_damaged_id_cache_is_rebuilt(capsys, run, damage):
    """The run's id cache (data/ids-*.npy + .json) torn by a crash or a full disk is built again."""
    ids = next((run / "data").glob("ids-*.npy"))
    meta = ids.with_suffix(".json")
    if damage == "torn json":
        meta.write_text(meta.read_text()[:7])
    elif damage == "truncated ids":
        ids.write_bytes(ids.read_bytes()[:200])
    else:
        ids.write_bytes(b"\x93NUMPY garbage")
    step = step_of(run / "last.safetensors")
    rc, out, err = cli(capsys, "train", "--resume", run, "--max-steps", str(step + 2))
    assert rc == 0 and f"resuming {run} at step {step}" in out, err
    assert step_of(run / "last.safetensors") == step + 2 and temporaries(run) == []
