"""Data-parallel scaling on this machine's CPUs: chars/s of 1 process against 2 (torchrun + gloo).

    python benchmarks/scaling.py                  # 30 steps each, 1 thread per process
    python benchmarks/scaling.py --steps 60 --repeats 2 --procs 1 2 4

The same training (LSTM 2 x 256, embed 64, seq 100, global batch 64, streams) runs as
`rnnkit train` in 1 process and as `torchrun --nproc-per-node N -m rnnkit train` in N processes,
each process with 1 thread (--threads 1, OMP_NUM_THREADS=1), so N processes use N cores. Each
process then computes 64 / N rows of every step and DDP averages the gradients.

Speed is the median of the chars/s that the run logs every --log-every steps (the first window,
which holds the warm-up, is dropped; start-up and the final evaluation are not timed). Prints each
configuration's median, its speed-up over the 1-process run measured in the same invocation, and
the scaling efficiency (speed-up / N). Runs alternate (1, 2, 1, 2, ...) so that a change in the
machine's load hits both alike; on a shared machine the numbers still move from run to run.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
RECIPE = ["--cell", "lstm", "--layers", "2", "--hidden", "256", "--embed", "64", "--dropout", "0.2",
          "--seq-len", "100", "--batch", "64", "--batching", "streams", "--warmup", "0",
          "--eval-every", "1000000", "--save-every", "1000000", "--eval-chars", "2000",
          "--val-fraction", "0.01", "--sample-chars", "0", "--threads", "1", "--seed", "1337"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(procs: int, data: str, out: Path, steps: int, log_every: int) -> list[float]:
    """One run; returns the chars/s of every logged window after the first."""
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)  # this checkout's rnnkit
    launcher = [sys.executable, "-m", "rnnkit"] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs),
         "--master-port", str(free_port()), "-m", "rnnkit"]
    subprocess.run([*launcher, "train", data, "--out", str(out), *RECIPE, "--max-steps", str(steps),
                    "--log-every", str(log_every)], check=True, env=env, capture_output=True, text=True)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["chars_per_s"] for r in recs if "chars_per_s" in r and r["step"] > log_every]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts (1 is the reference)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--log-every", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data", default=str(DATA))
    a = ap.parse_args()
    if not Path(a.data).exists():
        sys.exit(f"scaling.py: {a.data}: no such file; pass --data FILE")
    procs = sorted(set(a.procs) | {1})
    speeds: dict[int, list[float]] = {n: [] for n in procs}
    with tempfile.TemporaryDirectory(prefix="rnnkit-scaling-") as tmp:
        for rep in range(a.repeats):
            for n in procs:
                speeds[n] += train(n, a.data, Path(tmp) / f"p{n}-r{rep}", a.steps, a.log_every)
    med = {n: statistics.median(v) for n, v in speeds.items()}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bench import machine
    print(machine())
    print(f"LSTM 2x256, seq 100, global batch 64, 1 thread per process, {os.cpu_count()} CPUs, "
          f"{a.steps} steps x {a.repeats} run(s) per configuration")
    print(f"{'procs':>5} {'chars/s (median)':>17} {'windows':>8} {'speed-up':>9} {'efficiency':>11}")
    for n in procs:
        up = med[n] / med[1]
        print(f"{n:>5} {med[n]:>17,.0f} {len(speeds[n]):>8} {up:>9.2f} {up / n:>11.0%}")
    print(json.dumps({"chars_per_s": {str(n): med[n] for n in procs},
                      "efficiency": {str(n): med[n] / med[1] / n for n in procs}}))


if __name__ == "__main__":
    main()
