"""Two machines, as the README's two-machine command runs them: two torchrun agents, one process
each, joined by c10d rendezvous, here both on the loopback interface of this machine (nothing else
is reached: the agents advertise 127.0.0.1 and gloo binds to `lo`). They train and follow the
one-process run, resume, and when one node dies (its agent and its process killed) the other
stops too, within a bounded time, leaving the last checkpoint usable. `slow`: four torchrun starts
take about a minute on a 2-core machine."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit.core.checkpoint import load_checkpoint, load_model
from test_distributed import free_port, text  # noqa: F401 (the same word salad and port picker)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                       reason="torch.distributed with gloo is not available"),
    pytest.mark.skipif(not Path("/sys/class/net/lo").exists(), reason="needs the loopback interface 'lo'"),
]

TIMEOUT_S = 240          # one launch of both nodes; longer is a hang
TINY = ["--cell", "lstm", "--layers", "1", "--hidden", "32", "--embed", "16", "--dropout", "0",
        "--weight-drop", "0", "--locked-dropout", "0",  # exact: no random masks
        "--seq-len", "16", "--batch", "8", "--lr", "0.01", "--warmup", "0", "--decay-steps", "8",
        "--log-every", "1", "--eval-every", "4", "--save-every", "2", "--sample-chars", "0",
        "--eval-chars", "0", "--threads", "1", "--seed", "7", "--device", "cpu"]


def node(port: int, args: list, cwd: Path) -> subprocess.Popen:
    """One machine: a torchrun agent with one process, everything on loopback, every wait bounded."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path), GLOO_SOCKET_IFNAME="lo",
               RNNKIT_DIST_TIMEOUT="60")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"rnnkit-{port}",
           "--rdzv-conf", "join_timeout=120", "--local-addr", "127.0.0.1", "--max-restarts", "0",
           "-m", "rnnkit", *map(str, args)]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_node(agent: subprocess.Popen) -> None:
    """The machine dies: SIGKILL to the agent's worker processes (torchrun starts each in a session
    of its own, Linux /proc lists them) and to the agent, by their ids."""
    try:
        workers = [int(pid) for pid in Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()]
    except OSError:
        workers = []
    for pid in workers + [agent.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def store_host(port: int, agents: list) -> subprocess.Popen:
    """The agent that holds the c10d rendezvous store: the one listening on `port` (both agents
    run on this machine, so whichever binds first hosts it; on real machines, HOST's)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":   # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
    for agent in agents:
        fds = Path(f"/proc/{agent.pid}/fd")
        if any(os.readlink(fd) in inodes for fd in fds.iterdir() if fd.is_symlink()):
            return agent
    raise AssertionError(f"no agent listens on port {port}")


def both(args: list, cwd: Path) -> list[tuple[int, str, str]]:
    port = free_port()
    procs = [node(port, args, cwd) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
        return [(p.returncode, *o) for p, o in zip(procs, outs)]
    finally:
        for p in procs:
            if p.poll() is None:
                kill_node(p)


def losses(run: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def test_two_nodes_train_resume_and_fail_together(text, tmp_path):  # noqa: F811 (the fixture)
    from rnnkit import ModelConfig, TrainConfig, train_lm
    from rnnkit.cli import build_parser
    # the one-process reference, same flags
    ns = build_parser().parse_args(["train", str(text), "--out", str(tmp_path / "one"), "--max-steps", "6", *TINY])
    tcfg = TrainConfig.from_args(ns)
    tcfg.files = [str(text)]
    train_lm(tcfg, ModelConfig.from_args(ns), tmp_path / "one", quiet=True)
    ref = losses(tmp_path / "one")

    run = tmp_path / "shared" / "run"          # the README: a run directory on a filesystem both share
    run.parent.mkdir()
    results = both(["train", text, "--out", run, "--max-steps", "4", *TINY], run.parent)
    for rc, out, err in results:
        assert rc == 0, err[-3000:]
    assert sum("2 processes (gloo)" in out for _, out, _ in results) == 1   # rank 0 speaks, once
    got = losses(run)
    assert sorted(got) == [1, 2, 3, 4]
    for step in got:
        assert got[step] == pytest.approx(ref[step], rel=1e-4), (step, got[step], ref[step])

    results = both(["train", "--resume", run, "--max-steps", "6"], run.parent)
    for rc, out, err in results:
        assert rc == 0, err[-3000:]
    got = losses(run)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    for step in (5, 6):                        # the resumed run continues the same curve
        assert got[step] == pytest.approx(ref[step], rel=1e-4), (step, got[step], ref[step])
    assert load_checkpoint(run / "last.safetensors")[1]["state"]["step"] == 6

    crash = run.parent / "crash"
    port = free_port()
    args = ["train", text, "--out", crash, "--max-steps", "1000000", *TINY, "--save-every", "20",
            "--eval-every", "1000000"]
    a, b = node(port, args, run.parent), node(port, args, run.parent)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (crash / "last.safetensors").exists():
            assert a.poll() is None and b.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.5)
        # A machine other than HOST dies: its process and its agent, at once. (When HOST itself
        # dies, the others' torchrun agents lose the rendezvous store and stop their processes
        # with torchrun's own error, at times before rnnkit's line: docs/distributed.md.)
        if store_host(port, [a, b]) is b:
            a, b = b, a
        kill_node(b)
        t0 = time.monotonic()
        _, err = a.communicate(timeout=150)
        waited = time.monotonic() - t0
    finally:
        for p in (a, b):
            if p.poll() is None:
                kill_node(p)
            p.communicate(timeout=30)
    assert a.returncode != 0, err[-3000:]
    assert waited < 120, f"node a took {waited:.0f}s to stop"
    assert "rnnkit: error:" in err and "lost the other processes" in err, err[-3000:]  # one line, why
    assert "[rank0]: Traceback" not in err, err[-3000:]  # (torchrun's own agent may print one)
    assert load_checkpoint(crash / "last.safetensors")[1]["state"]["step"] % 20 == 0, err[-4000:]
    load_model(crash)                          # what was saved still loads

