"""Data-parallel training: 2 CPU ranks with gloo on loopback against the 1-process run.

The ranks are forked from the test process (torch is already imported, so a rank starts in
milliseconds instead of seconds) and join through the variables torchrun sets (RANK, WORLD_SIZE,
MASTER_ADDR, ...); each runs `rnnkit.cli.main(argv)`, the code `torchrun -m rnnkit train` runs.
An audit hook in every rank records the files it writes. The `slow` test runs the real torchrun.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit import cli
from rnnkit.core.checkpoint import load_checkpoint, load_model
from rnnkit.core.windows import RandomWindows, StreamBatches

pytestmark = [
    pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                       reason="torch.distributed with gloo is not available"),
    pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method"),
]

WORLD = 2
TIMEOUT_S = 90  # a launch that takes longer is a hang
TINY = ["--cell", "lstm", "--layers", "1", "--hidden", "32", "--embed", "16", "--dropout", "0",
        "--weight-drop", "0", "--locked-dropout", "0",  # exact: no random masks
        "--seq-len", "16", "--batch", "8", "--lr", "0.01", "--warmup", "0", "--decay-steps", "8", "--log-every", "1",
        "--eval-every", "4", "--save-every", "2", "--sample-chars", "0", "--eval-chars", "0",
        "--threads", "1", "--seed", "7",
        "--precision", "fp32"]  # exact comparisons: bf16 rounds the 1- and 2-process sums differently


@pytest.fixture(autouse=True)
def keep_threads():
    n = torch.get_num_threads()  # --threads 1 in the in-process reference run changes it
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """What a rank imports lazily (DDP pulls in torch._dynamo, rank 0 matplotlib), imported once
    here so the forked ranks inherit it instead of each paying seconds for it."""
    import torch._dynamo.utils  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401

    import rnnkit.core.plots  # noqa: F401


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    """~12k characters of word salad with structure to learn (fixed seed)."""
    rng = np.random.default_rng(0)
    words = ["the", "king", "queen", "shall", "not", "be", "to", "or", "what", "light", "hath", "thou"]
    lines = [" ".join(rng.choice(words, size=rng.integers(3, 9))) + "." for _ in range(600)]
    path = tmp_path_factory.mktemp("text") / "salad.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record_writes(run_dir: str, writes: list):
    """A sys.addaudithook hook: every file created, opened for writing, renamed or removed under run_dir."""
    def inside(p) -> bool:
        return isinstance(p, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(p)).startswith(run_dir)

    def hook(event, args):
        if event == "open" and inside(args[0]):
            mode, flags = args[1], args[2]
            writing = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing:
                writes.append(f"open {args[0]}")
        elif event == "os.mkdir" and inside(args[0]) and not os.path.exists(args[0]):
            writes.append(f"mkdir {args[0]}")
        elif event in ("os.rename", "os.remove", "os.rmdir", "os.truncate") and inside(args[0]):
            writes.append(f"{event} {args[0]}")
    return hook


def fault_hook(kind: str, at_step: int):
    """Hooks.inject for one rank: at step index `at_step` raise, return NaN, or send itself SIGTERM."""
    def inject(step: int, loss: torch.Tensor) -> torch.Tensor:
        if step != at_step:
            return loss
        if kind == "raise":
            raise RuntimeError(f"injected fault at step {step + 1}")
        if kind == "nan":
            return loss * float("nan")
        os.kill(os.getpid(), signal.SIGTERM)
        return loss
    return inject


def rank_main(rank: int, port: int, argv: list[str], run_dir: str, logs: Path, fault) -> None:
    """One forked rank: torchrun's environment, output to files, then the CLI."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                      GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    out, err = open(logs / f"{rank}.out", "w"), open(logs / f"{rank}.err", "w")
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.stdout, sys.stderr = out, err
    writes: list[str] = []
    sys.addaudithook(record_writes(run_dir, writes))
    if fault and fault[0] == rank:
        import rnnkit.text.lm
        from rnnkit.core.train import Hooks
        rnnkit.text.lm.train_lm = partial(rnnkit.text.lm.train_lm, hooks=Hooks(inject=fault_hook(*fault[1:])))
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # what the interpreter would do with an uncaught exception
        traceback.print_exc()
        code = 1
    (logs / f"{rank}.writes").write_text(json.dumps(writes))
    out.flush()
    err.flush()
    os._exit(code)


@dataclass
class Launch:
    codes: list[int]
    out: list[str]
    err: list[str]
    writes: list[list[str]]
    seconds: float


def launch(argv: list[str], run_dir: Path, logs: Path, fault=None) -> Launch:
    """Run `rnnkit` on WORLD forked ranks; fail the test if they are not all done in TIMEOUT_S."""
    logs.mkdir(parents=True)
    port, ctx, t0 = free_port(), mp.get_context("fork"), time.monotonic()
    procs = [ctx.Process(target=rank_main, args=(r, port, argv, str(run_dir.resolve()), logs, fault))
             for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(max(0.0, TIMEOUT_S - (time.monotonic() - t0)))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    read = lambda name: (logs / name).read_text() if (logs / name).exists() else ""
    res = Launch([p.exitcode for p in procs], [read(f"{r}.out") for r in range(WORLD)],
                 [read(f"{r}.err") for r in range(WORLD)],
                 [json.loads(read(f"{r}.writes") or "[]") for r in range(WORLD)], time.monotonic() - t0)
    assert not hung, f"ranks {hung} still running after {TIMEOUT_S}s; stderr: {res.err}"
    return res


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def losses(recs: list[dict]) -> dict[int, float]:
    steps = [r["step"] for r in recs if "loss" in r]
    assert len(steps) == len(set(steps)), f"a step logged twice: {steps}"
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def val_losses(recs: list[dict]) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in recs if "val_loss" in r}


def files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def assert_close(a: dict, b: dict, steps, rel: float = 1e-5) -> None:
    for k in steps:
        assert math.isclose(a[k], b[k], rel_tol=rel), f"step {k}: {a[k]!r} vs {b[k]!r}"


def test_two_ranks_follow_the_one_process_run_and_resume(text, tmp_path):
    ref, two = tmp_path / "ref", tmp_path / "two"
    assert cli.main(["train", str(text), "--out", str(ref), "--max-steps", "8", *TINY]) == 0
    ref_loss, ref_val = losses(metrics(ref)), val_losses(metrics(ref))
    assert ref_loss[8] < ref_loss[1] - 0.1  # it learns, so a wrong gradient would show

    first = launch(["train", str(text), "--out", str(two), "--max-steps", "4", *TINY], two, tmp_path / "logs1")
    assert first.codes == [0, 0], first.err
    assert "2 processes" in first.out[0] and first.out[1] == "" and first.err[1] == ""
    assert first.writes[1] == [], "rank 1 wrote files"
    assert any("metrics.jsonl" in w for w in first.writes[0]) and any("last.safetensors" in w for w in first.writes[0])
    assert files(two) == files(ref)
    assert sorted(losses(metrics(two))) == [1, 2, 3, 4]
    assert_close(losses(metrics(two)), ref_loss, range(1, 5))
    assert_close(val_losses(metrics(two)), ref_val, [4])
    assert load_checkpoint(two / "last.safetensors")[1]["state"]["world"] == WORLD

    # continue to step 8 on 2 ranks: the carried state and the data position come back per rank
    again = launch(["train", "--resume", str(two), "--max-steps", "8", "--threads", "1"], two, tmp_path / "logs2")
    assert again.codes == [0, 0], again.err
    assert again.writes[1] == [], "rank 1 wrote files"
    assert "resuming" in again.out[0] and again.out[1] == ""
    resumed = losses(metrics(two))
    assert sorted(resumed) == list(range(1, 9))
    assert_close(resumed, ref_loss, range(5, 9))
    assert_close(val_losses(metrics(two)), ref_val, [4, 8])


def test_two_ranks_equal_one_process_with_the_default_regularisers(text, tmp_path):
    """Weight drop, locked and plain dropout on (the defaults): the masks are drawn per step from
    one seed and sliced by rows, so 2 ranks train the 1-process numbers, also across a resume."""
    recipe = [a for a in TINY]
    for flag in ("--dropout", "--weight-drop", "--locked-dropout", "--layers", "--decay-steps"):
        i = recipe.index(flag)
        del recipe[i: i + 2]
    recipe += ["--layers", "2", "--decay-steps", "20", "--embed-dropout", "0.1"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli.main(["train", str(text), "--out", str(one), "--max-steps", "20", *recipe]) == 0
    first = launch(["train", str(text), "--out", str(two), "--max-steps", "10", *recipe], two, tmp_path / "a")
    assert first.codes == [0, 0], first.err
    again = launch(["train", "--resume", str(two), "--max-steps", "20", "--threads", "1"], two, tmp_path / "b")
    assert again.codes == [0, 0], again.err
    ref = losses(metrics(one))
    assert ref[20] < ref[1] - 0.1
    assert_close(losses(metrics(two)), ref, range(1, 21), rel=1e-5)
    assert_close(val_losses(metrics(two)), val_losses(metrics(one)), [4, 8, 12, 16, 20], rel=1e-5)


def test_resume_on_two_ranks_restores_each_ranks_random_state(text, tmp_path):
    """With dropout each rank draws its own masks; a resumed run must draw the same ones."""
    noisy = [*TINY, "--dropout", "0.3", "--layers", "2"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    for run, steps, logs in ((straight, "8", "a"), (split, "4", "b")):
        res = launch(["train", str(text), "--out", str(run), "--max-steps", steps, *noisy], run, tmp_path / logs)
        assert res.codes == [0, 0], res.err
    res = launch(["train", "--resume", str(split), "--max-steps", "8", "--threads", "1"], split, tmp_path / "c")
    assert res.codes == [0, 0], res.err
    assert_close(losses(metrics(split)), losses(metrics(straight)), range(1, 9), rel=1e-7)


@pytest.mark.parametrize("batches", [
    lambda ids, r, w: StreamBatches(ids, 8, 5, r, w),
    lambda ids, r, w: RandomWindows(ids, 8, 5, seed=3, rank=r, world=w),
], ids=["streams", "random"])
def test_ranks_read_disjoint_shards_of_the_global_batch(batches):
    ids = np.arange(400) % 251  # distinct enough that a window identifies its place
    whole = batches(ids, 0, 1)
    ranks = [batches(ids, r, WORLD) for r in range(WORLD)]
    for step in (0, 1, 7):
        x, y = whole.get(step)
        parts = [b.get(step) for b in ranks]
        assert [p[0].shape[0] for p in parts] == [4, 4]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    rows = [set(range(b.rows.start, b.rows.stop)) for b in ranks]
    assert not rows[0] & rows[1] and rows[0] | rows[1] == set(range(8))


@pytest.mark.parametrize("kind, rank, code, message", [
    ("raise", 1, None, "lost the other processes"),
    ("raise", 0, None, "lost the other processes"),
    ("nan", 1, 1, "non-finite loss at step 3"),
    ("sigterm", 1, 128 + signal.SIGTERM, "stopped by SIGTERM at step 3"),
])
def test_a_failing_rank_stops_every_rank_and_the_checkpoint_survives(text, tmp_path, kind, rank, code, message):
    run = tmp_path / "run"
    res = launch(["train", str(text), "--out", str(run), "--max-steps", "40", *TINY], run, tmp_path / "logs",
                 fault=(rank, kind, 2))  # during the 3rd step; `last` was saved after the 2nd
    assert all(c != 0 for c in res.codes), (res.codes, res.err)
    other = 1 - rank
    if kind == "raise":
        assert "injected fault at step 3" in res.err[rank]
        assert message in res.err[other] and "Traceback" not in res.err[other]
    else:
        assert res.codes == [code, code], res.err
        assert all(message in e for e in res.err)
    assert res.writes[1] == [], "rank 1 wrote files"
    step = 3 if kind == "sigterm" else 2  # a signal saves before stopping
    assert load_checkpoint(run / "last.safetensors")[1]["state"]["step"] == step
    load_model(run)  # the run still samples
    assert not list(run.glob(".*.tmp-*")), "a temporary file was left behind"


def worker_pids(agent: int) -> dict[int, int]:
    """{rank: pid} of the workers a torchrun agent started (Linux /proc)."""
    out = {}
    for pid in Path(f"/proc/{agent}/task/{agent}/children").read_text().split():
        env = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
        if "RANK" in env:
            out[int(env["RANK"])] = int(pid)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds torchrun's workers through /proc")
def test_torchrun_entry_point(text, tmp_path):
    """The real `torchrun -m rnnkit train`: 2 ranks agree with the forked ranks' checks; then a
    rank killed with SIGKILL mid-run (as the OOM killer would) brings the whole run down."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    torchrun = lambda: [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                        "--master-port", str(free_port()), "-m", "rnnkit"]
    run = tmp_path / "run"
    p = subprocess.run([*torchrun(), "train", str(text), "--out", str(run), "--max-steps", "4", *TINY],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "2 processes" in p.stdout and sorted(losses(metrics(run))) == [1, 2, 3, 4]

    crash = tmp_path / "crash"
    agent = subprocess.Popen([*torchrun(), "train", str(text), "--out", str(crash), "--max-steps", "1000000",
                              *TINY, "--save-every", "20", "--eval-every", "1000000"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (crash / "last.safetensors").exists():
            assert agent.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.5)
        os.kill(worker_pids(agent.pid)[1], signal.SIGKILL)
        t0 = time.monotonic()
        _, err = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode != 0 and time.monotonic() - t0 < 60, err[-2000:]
    assert load_checkpoint(crash / "last.safetensors")[1]["state"]["step"] % 20 == 0
    load_model(crash)
