"""Run `python -m rnnkit ARGS` as a separate process, cheaply.

Starting a Python that imports torch costs seconds of CPU, and the bad-input tables run dozens of
commands. So a small server process imports rnnkit and torch once and forks one child per command;
the child gets its own argv, working directory, environment, stdin, stdout and stderr files and
runs `rnnkit/__main__.py` exactly as `python -m rnnkit` would, so its exit status, its output and
any traceback are those of a real command. The server never runs a torch operation, so forking
is safe (no thread pools exist yet).

Set RNNKIT_TEST_SPAWN=1 to start a fresh `sys.executable -m rnnkit` for every command instead.
"""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


@dataclass
class Result:
    rc: int
    out: str
    err: str
    timed_out: bool = False

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- stdout ---\n{self.out[-2000:]}\n--- stderr ---\n{self.err[-3000:]}"


def env_with_src(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def spawn(args: list[str], cwd: str | os.PathLike, stdin: str | None = None, timeout: float = 120,
          env: dict | None = None) -> Result:
    """A fresh `python -m rnnkit ARGS` process."""
    with open(stdin or os.devnull, "rb") as fin:
        try:
            p = subprocess.run([sys.executable, "-m", "rnnkit", *map(str, args)], cwd=cwd, stdin=fin,
                               capture_output=True, timeout=timeout, env=env_with_src(env))
        except subprocess.TimeoutExpired as e:
            out, err = (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")
            return Result(-9, out, err, True)
    return Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


class ForkServer:
    """The test side: sends one JSON request per command, reads the exit status back."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.n = 0
        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env_with_src({"PYTHONUNBUFFERED": "1"}), text=True)

    def run(self, args: list[str], cwd: str | os.PathLike, stdin: str | None = None, timeout: float = 120,
            env: dict | None = None) -> Result:
        self.n += 1
        out, err = self.scratch / f"{self.n}.out", self.scratch / f"{self.n}.err"
        req = {"args": list(map(str, args)), "cwd": str(cwd), "stdin": stdin, "stdout": str(out),
               "stderr": str(err), "env": env or {}, "timeout": timeout}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("the rnnkit fork server died")
        rep = json.loads(reply)
        return Result(rep["rc"], out.read_text(errors="replace"), err.read_text(errors="replace"), rep["timed_out"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ---- the server side -------------------------------------------------------------------------

def _child(req: dict) -> None:
    code = 1
    try:
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        for fd, path, flags in ((0, req["stdin"] or os.devnull, os.O_RDONLY),
                                (1, req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            new = os.open(path, flags, 0o644)
            os.dup2(new, fd)
            os.close(new)
        sys.argv = ["rnnkit", *req["args"]]
        try:
            runpy.run_module("rnnkit", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
    finally:
        os._exit(code)


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return -9, True
        time.sleep(delay)
        delay = min(0.02, delay * 2)


def serve() -> None:
    # import everything a command may need, without running any torch operation
    import matplotlib.pyplot  # noqa: F401
    import torch._dynamo  # noqa: F401  (the optimizers import it)

    import rnnkit.cli  # noqa: F401
    import rnnkit.core.checkpoint  # noqa: F401
    import rnnkit.core.plots  # noqa: F401
    import rnnkit.labs  # noqa: F401
    import rnnkit.text.lm  # noqa: F401
    import rnnkit.text.sample  # noqa: F401
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        rc, timed_out = _wait(pid, req["timeout"])
        sys.stdout.write(json.dumps({"rc": rc, "timed_out": timed_out}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
