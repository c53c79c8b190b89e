"""The benchmark scripts still run and print their figures (tiny sizes: this checks that they work,
not how fast anything is)."""
from __future__ import annotations

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
    found = [float(x) for x in re.findall(pattern, out)]
    assert found, out
    assert all(0 < r < 100 for r in found), out
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


@needs_data
def test_precision_speed_prints_fp32_and_bf16():
    out = bench("precision_speed.py", "--hidden", "16", "--blocks", "1", "--steps", "2", "--threads", "1")
    assert "oneDNN native bf16:" in out and "| H16 |" in out
    ratios(r"\| H16 \| [\d,]+ \| [\d,]+ \| (\d+\.\d+)x \|", out)


@needs_data
def test_time_to_quality_scores_static_and_dynamic(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text(DATA.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    out = bench("time_to_quality.py", "--data", str(small), "--steps", "3", "--threads", "1",
                "--out", str(tmp_path / "ttq"), "--args", "--hidden 16 --embed 8 --batch 8 --sample-chars 0")
    assert re.search(r"rnnkit static +\d+\.\d+ nats/char", out), out
    assert re.search(r"rnnkit dynamic +\d+\.\d+ nats/char", out), out
    assert "nanoGPT" in out and "1.466" in out
