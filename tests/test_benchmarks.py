"""The benchmark scripts still run and print their figures (tiny sizes: this checks that they work,
not how fast anything is)."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
DATA = BENCH.parents[1] / "shared" / "data" / "tinyshakespeare.txt"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data/tinyshakespeare.txt")


def bench(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def ratios(pattern: str, out: str) -> list[float]:
    """The ratios the script printed where `pattern` expects them: each a finite number > 0 (the
    pattern only matches digits, so 'nan', 'inf' or a missing figure fail here)."""
    found = [float(x) for x in re.findall(pattern, out)]
    assert found, out
    assert all(math.isfinite(r) and r > 0 for r in found), out
    return found


@needs_data
def test_train_throughput_races_rnnkit_against_the_plain_loop():
    out = bench("train_throughput.py", "--hidden", "16", "--quick", "--blocks", "1", "--threads", "1")
    assert "| H16 | plain PyTorch loop |" in out and "| H16 | rnnkit train |" in out
    ratios(r"H16: rnnkit (\d+\.\d+)x the plain loop", out)


def test_sample_throughput_medians_over_fresh_processes():
    out = bench("sample_throughput.py", "--hidden", "16", "--blocks", "1", "--length", "10", "--runs", "2",
                "--threads", "1")
    assert "medians over 2 process(es)" in out
    per_process = re.search(r"H16: batch 1 [\d.]+x the plain loop \(per process: ([\d.]+), ([\d.]+);", out)
    assert per_process, out
    ratios(r"batch 32 (\d+\.\d+)x its batch-1 rate", out)


@needs_data
def test_memory_reports_peak_against_the_bound():
    out = bench("memory.py", "--mb", "2", "--steps", "2", "--repeat", "1", "--hidden", "16", "--threads", "1")
    assert re.search(r"peak RSS is \d+\.\d+x the id array; (within|ABOVE) the bound", out), out
