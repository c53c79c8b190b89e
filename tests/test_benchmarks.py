"""The benchmark scripts still run and print their figures (tiny sizes: this checks that they work,
not how fast anything is)."""
from __future__ import annotations

import json
import math
import os
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


NUMBER = r"\d{1,3}(?:,\d{3})*(?:\.\d+)?"       # 1,234 or 0.78: what the tables print
RATIO = r"\d+\.\d+x"                             # 1.81x


def rows(out: str, header: list[str]) -> list[list[str]]:
    """The rows of the markdown table with this header, as cells; asserts the table is there."""
    lines = out.splitlines()
    head = "| " + " | ".join(header) + " |"
    assert head in lines, out
    i = lines.index(head) + 2
    found = []
    while i < len(lines) and lines[i].startswith("|"):
        found.append([c.strip() for c in lines[i].strip("|").split("|")])
        i += 1
    assert found and all(len(r) == len(header) for r in found), out
    return found


def positive(text: str, pattern: str) -> float:
    """`text` is exactly one number printed as `pattern`; it is finite and > 0."""
    assert re.fullmatch(pattern, text), text
    x = float(text.rstrip("x").replace(",", ""))
    assert math.isfinite(x) and x > 0, text
    return x


def summary_ratios(pattern: str, out: str) -> list[float]:
    """The ratios a summary line prints (each a finite positive number followed by x)."""
    found = re.findall(pattern, out)
    assert found, out
    return [positive(f"{x}x", RATIO) for x in found]


@needs_data
def test_train_throughput_races_rnnkit_against_the_plain_loop():
    out = bench("train_throughput.py", "--hidden", "16", "--quick", "--blocks", "1", "--threads", "1")
    table = rows(out, ["model", "trainer", "chars/s", "vs plain"])
    assert [r[:2] for r in table] == [["H16", "plain PyTorch loop"], ["H16", "rnnkit train"]], out
    for r in table:
        positive(r[2], NUMBER)
        positive(r[3], RATIO)
    assert table[0][3] == "1.00x"                                   # the reference
    (ratio,) = summary_ratios(r"H16: rnnkit (\S+?)x the plain loop", out)
    assert re.search(r"target >= \d+(\.\d+)?x\)", out), out


@pytest.mark.slow   # 70 s on a 2-core AVX2 CPU in fp32: the recipe's 2x320 model, not a tiny one
@needs_data
def test_train_throughput_races_the_recipe_against_the_plain_reference():
    out = bench("train_throughput.py", "--hidden", "--recipe", "--quick", "--blocks", "1", "--threads", "1")
    table = rows(out, ["model", "trainer", "chars/s", "vs plain"])
    assert table[0][:2] == ["H256 fp32", "plain PyTorch loop"], out           # the reference loop
    assert re.fullmatch(r"recipe \d+x\d+ (auto|fp32|bf16)", table[1][0]) and table[1][1] == "rnnkit train", out
    positive(table[1][3], RATIO)
    assert "target" not in out.split("recipe", 2)[-1]               # no same-model target for another model


def test_sample_throughput_medians_over_fresh_processes():
    out = bench("sample_throughput.py", "--hidden", "16", "--blocks", "1", "--length", "10", "--runs", "2",
                "--threads", "1")
    assert "medians over 2 process(es)" in out
    assert out.splitlines()[1].startswith("CPU: "), out          # the machine is named
    table = rows(out, ["model", "sampler", "best threads", "chars/s", "vs plain batch 1"])
    assert [r[1] for r in table][:2] == ["plain, batch 1", "rnnkit fp32, batch 1"], out
    assert "plain, batch 32" in [r[1] for r in table] and "rnnkit fp32, batch 32" in [r[1] for r in table], out
    for r in table:
        positive(r[2], r"\d+")
        positive(r[3], NUMBER)
        positive(r[4], RATIO)
    assert table[0][4] == "1.00x"
    per_process = re.search(r"H16: batch 1 (\S+?)x the plain loop \(per process: (\S+?), (\S+?);", out)
    assert per_process, out
    for x in per_process.groups():
        positive(x, r"\d+\.\d+")
    summary_ratios(r"batch 32 (\S+?)x its batch-1 rate", out)
    summary_ratios(r"batch 32 against the plain batched loop: fp32 (\S+?)x", out)


@needs_data
def test_memory_reports_peak_against_the_bound():
    out = bench("memory.py", "--mb", "2", "--steps", "2", "--repeat", "1", "--hidden", "16", "--threads", "1")
    (r,) = rows(out, ["text / id array", "model + optimizer", "peak RSS", "bound 2x(ids+model+opt)+500MB",
                      "peak / bound"])
    for cell in r[:4]:
        positive(cell.removesuffix(" MB"), NUMBER)
    assert abs(positive(r[4], NUMBER) - positive(r[2][:-3], NUMBER) / positive(r[3][:-3], NUMBER)) < 0.01
    m = re.search(r"peak RSS is (\S+?)x the id array; (within|ABOVE) the bound", out)
    assert m, out
    positive(m.group(1) + "x", RATIO)


@needs_data
def test_precision_speed_prints_fp32_and_bf16():
    out = bench("precision_speed.py", "--hidden", "16", "--blocks", "1", "--steps", "2", "--threads", "1")
    assert re.search(r"^CPU: .*oneDNN bf16 (native|not native)", out, re.M) and "| H16 |" in out, out  # the machine is named
    if "| H16 | " in out and "| n/a | n/a |" in out:    # a CPU whose oneDNN has no bf16 LSTM: fp32 alone
        assert "not native" in out and re.search(r"\| H16 \| [\d,]+ \| n/a \| n/a \|", out), out
        return
    summary_ratios(r"\| H16 \| [\d,]+ \| [\d,]+ \| (\d+\.\d+)x \|", out)


@needs_data
def test_time_to_quality_scores_static_and_dynamic(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text(DATA.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    out = bench("time_to_quality.py", "--data", str(small), "--steps", "3", "--threads", "1",
                "--out", str(tmp_path / "ttq"), "--args", "--hidden 16 --embed 8 --batch 8 --sample-chars 0")
    assert re.search(r"rnnkit static +\d+\.\d+ nats/char", out), out
    assert re.search(r"rnnkit dynamic +\d+\.\d+ nats/char", out), out
    assert "not trained (--train-reference)" in out and "nanoGPT" not in out   # README figures: tinyshakespeare only


@pytest.mark.slow   # 40 s: four processes (train, two evals, the reference) for a smoke check
@needs_data
def test_time_to_quality_trains_the_reference_on_another_text(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text(DATA.read_text(encoding="utf-8")[-20_000:], encoding="utf-8")
    out = bench("time_to_quality.py", "--data", str(small), "--budget-steps", "4", "--ref-steps", "2",
                "--train-reference", "--threads", "1", "--out", str(tmp_path / "ttq"),
                "--args", "--hidden 16 --embed 8 --batch 8 --sample-chars 0")
    assert re.search(r"budget: \d+ s = what the plain fp32 reference needs for 4 steps", out), out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["budget_steps"] == 4 and summary["met"] is None           # targets: tinyshakespeare only
    assert 0 < summary["reference"] < 10 and 0 < summary["static"] < 10, summary


# The GPU scripts run for minutes a session on a lent GPU: a broken one wastes them, so their CPU
# paths run here (tiny sizes; the figures they print on a GPU are in docs/gpu.md).
@needs_data
def test_gpu_check_races_training_and_sampling_against_the_plain_loop():
    out = bench("gpu_check.py", "--device", "cpu", "--steps", "3", "--warmup", "1", "--hidden", "16",
                "--sample-length", "10")
    found = rows(out, ["what", "path", "chars/s", "vs plain"])
    paths = {(r[0], r[1]) for r in found}
    for what in ("train, batch 64", "train, batch 64, weight drop + locked dropout", "sample, batch 1",
                 "sample, batch 32"):
        assert (what, "plain loop") in paths, out
        assert any(w == what and p.startswith("rnnkit") for w, p in paths), out
    for r in found:
        assert re.fullmatch(NUMBER, r[2]) and float(r[2].replace(",", "")) > 0, r
        assert re.fullmatch(RATIO, r[3]), r
        assert r[1] != "plain loop" or r[3] == "1.00x", r     # each plain loop is its rows' reference


@needs_data
def test_gpu_checks_plain_loop_is_plain_and_its_regularised_one_is_not(monkeypatch):
    """The plain row is embedding -> nn.LSTM -> head by hand: it must not run the regularised
    forward that the rnnkit row is compared against separately (it once did, unnoticed)."""
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu_check
    from rnnkit.core import regularize
    calls = []
    real = regularize.regularized_rnn
    monkeypatch.setattr(regularize, "regularized_rnn", lambda *a, **k: calls.append(1) or real(*a, **k))
    cpu = torch.device("cpu")
    assert gpu_check.plain_train_rate(DATA, 16, 2, 1, 4, cpu) > 0 and calls == []
    assert gpu_check.plain_train_rate(DATA, 16, 2, 1, 4, cpu, regularised=True) > 0 and len(calls) == 3


@needs_data
def test_gpu_profile_says_where_a_step_goes():
    out = bench("gpu_profile.py", "--device", "cpu", "--hidden", "16", "--batch", "8", "--steps", "3",
                "--warmup", "2")
    m = re.search(r"wall (\d+\.\d+) ms/step \(profiled\), device busy (\d+\.\d+) ms/step", out)
    assert m and float(m.group(1)) > 0, out
    assert "ProfilerStep*" in out and "Optimizer.step" in out, out     # the operator table


@pytest.mark.slow   # 30 s: torchrun twice and four small trainings
@needs_data
def test_gpu_suite_and_sweep_smoke_runs_on_a_cpu(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "OUT": str(tmp_path / "suite"), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(BENCH / "gpu_suite.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| check_small | ok |" in done.stdout and "| ddp | ok |" in done.stdout, done.stdout
    small = tmp_path / "small.txt"
    small.write_text(DATA.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    out = bench("gpu_sweep.py", "--device", "cpu", "--data", str(small), "--out", str(tmp_path / "sweep"),
                "--limit", "--max-steps 3", "--common", "--hidden 16 --embed 8 --batch 8 --sample-chars 0",
                "--run", "a=", "--run", "b=--lr 1e-3")
    names = [r[0] for r in rows(out, ["run", "steps", "loss@100", "loss@200", "loss@300", "loss@500",
                                      "final_loss", "tail_16", "tail", "tail_dynamic", "options"])]
    assert names == ["a", "b"], out
    runs = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [runs[k]["rc"] for k in ("a", "b")] == [0, 0] and runs["b"]["options"] == "--lr 1e-3", runs
    assert all(runs[k]["steps"] == 3 and 0 < runs[k]["tail_16"] < 10 for k in ("a", "b")), runs


@pytest.mark.slow   # 15 s: the GPU path of time_to_quality.py (whole-split evaluations) on a CPU
@needs_data
def test_time_to_quality_periodic_path_records_the_curve(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text(DATA.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    out = bench("time_to_quality.py", "--periodic", "--device", "cpu", "--budget", "2", "--eval-every", "20",
                "--data", str(small), "--out", str(tmp_path / "ttq"),
                "--args", "--hidden 16 --embed 8 --batch 8 --preset cpu")
    summary = json.loads(out.strip().splitlines()[-1])
    assert 0 < summary["static"] < 10 and 0 < summary["dynamic"] < 10, summary
    curve = summary["curve"]
    assert len(curve) >= 2 and [c[1] for c in curve] == sorted(c[1] for c in curve), curve   # steps in order
    assert min(c[2] for c in curve) == pytest.approx(summary["best_periodic"]), summary
    assert "below nanoGPT's 1.4712: never" in out and summary["below_nanogpt_s"] is None, out
