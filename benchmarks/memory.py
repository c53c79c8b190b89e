"""Memory: peak RSS of `rnnkit train` on a generated 200 MB text file, against the id array size.

    python benchmarks/memory.py            # 200 MB of text, 30 training steps, hidden 256
    python benchmarks/memory.py --quick    # 20 MB, 10 steps

The text (tinyshakespeare repeated, written to /tmp) is 1 byte a character, so the id array is as
many bytes (uint8 ids). Training runs in a subprocess (`python -m rnnkit train`), whose peak RSS is
read from the kernel after it exits; it includes building the memory-mapped ids (two passes over the
file) and evaluation. The target: peak < 2 x (ids + model + optimizer) + 500 MB. Repeats run one
after another; the median is printed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import ROOT, machine, median, need_data, table

MB = 1 << 20


def make_text(path: Path, size: int) -> int:
    """Write `size` bytes of Shakespeare (repeated) to `path`; returns the size."""
    block = need_data().read_bytes()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[:left])
            left -= len(block[:left])
    return size


def peak_rss(text: Path, hidden: int, steps: int, threads: int) -> int:
    """Peak RSS in bytes of one training subprocess."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        cmd = [sys.executable, "-c", "import resource, sys; from rnnkit.cli import main; rc = main(sys.argv[1:]); "
               "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)",
               "train", str(text), "--out", f"{tmp}/run", "--hidden", str(hidden), "--layers", "2",
               "--embed", "64", "--seq-len", "100", "--batch", "64", "--max-steps", str(steps),
               "--threads", str(threads), "--log-every", "10"]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"training failed ({out.returncode}): {out.stderr.strip()[-500:]}")
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("maxrss"))
        return int(line.split()[1]) * 1024                         # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=200, help="size of the generated text file (MB)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="20 MB, 10 steps, one run")
    a = ap.parse_args()
    if a.quick:
        a.mb, a.steps, a.repeat = 20, 10, 1
    sys.path.insert(0, str(ROOT / "src"))
    from _bench import make_model
    model = make_model(a.hidden)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        text = Path(tmp) / "big.txt"
        ids = make_text(text, a.mb * MB)                            # uint8 ids: one byte a character
        peaks = [peak_rss(text, a.hidden, a.steps, a.threads) for _ in range(a.repeat)]
    peak = median(peaks)
    state = 3 * weights                                             # weights + Adam's two moments
    bound = 2 * (ids + state) + 500 * MB
    print(machine())
    print(f"memory, median of {a.repeat} training runs of {a.steps} steps, hidden {a.hidden}")
    print(table(["text / id array", "model + optimizer", "peak RSS", "bound 2x(ids+model+opt)+500MB", "peak / bound"],
                [[f"{ids / MB:,.0f} MB", f"{state / MB:,.1f} MB", f"{peak / MB:,.0f} MB", f"{bound / MB:,.0f} MB",
                  f"{peak / bound:.2f}"]]))
    print(f"peak RSS is {peak / ids:.2f}x the id array; {'within' if peak < bound else 'ABOVE'} the bound")


if __name__ == "__main__":
    main()
