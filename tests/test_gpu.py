"""What rnnkit promises on a CUDA GPU (marker `gpu`: run with RNNKIT_TEST_GPU=1 pytest -m gpu,
as benchmarks/gpu_suite.sh does; skipped elsewhere).

bf16 autocast is on; a resumed run continues the uninterrupted one within RESUME_TOL nats (cuDNN
and bf16 sums are not bitwise reproducible; the CPU's bitwise promise is tested on the CPU);
checkpoints move between CPU and GPU both ways; the sync-free step trains the synced step's numbers."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conftest import TINY_MODEL, TINY_TRAIN
from rnnkit import ModelConfig, TrainConfig, resume_lm, train_lm
from rnnkit.core import train as train_mod
from rnnkit.core.checkpoint import load_checkpoint, load_model
from rnnkit.core.config import SampleConfig
from rnnkit.core.train import Hooks, NonFiniteLoss
from rnnkit.text.sample import generate

pytestmark = pytest.mark.gpu
RESUME_TOL = 0.02
MODEL = ModelConfig(**(TINY_MODEL | dict(layers=2, hidden=64, dropout=0.2)))


def cfg(text_file, **kw) -> TrainConfig:
    # preset cpu: the tiny test model keeps the CPU defaults (the gpu recipe warms up for 100 steps)
    return TrainConfig(files=[str(text_file)], **(TINY_TRAIN | dict(device="cuda", max_steps=40, log_every=5,
                                                                   eval_every=20, save_every=10, preset="cpu") | kw))


def losses(run) -> dict[int, float]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def test_cuda_training_runs_bf16_and_resumes_within_tolerance(text_file, tmp_path):
    train_lm(cfg(text_file), MODEL, tmp_path / "straight", quiet=True)
    train_lm(cfg(text_file, max_steps=20), MODEL, tmp_path / "split", quiet=True)
    resume_lm(tmp_path / "split", quiet=True, max_steps=40)
    a, b = losses(tmp_path / "straight"), losses(tmp_path / "split")
    assert a[40] < a[1] - 0.3
    for step in range(25, 41, 5):
        assert abs(a[step] - b[step]) < RESUME_TOL, (step, a[step], b[step])
    meta = load_checkpoint(tmp_path / "straight" / "last.safetensors")[1]
    assert meta["precision"] == "bf16"


def test_checkpoints_move_between_cpu_and_gpu(text_file, tmp_path):
    train_lm(cfg(text_file, device="cpu", max_steps=10), MODEL, tmp_path / "cpu", quiet=True)
    resume_lm(tmp_path / "cpu", quiet=True, device="cuda", max_steps=20)         # CPU -> GPU
    assert max(losses(tmp_path / "cpu")) == 20
    train_lm(cfg(text_file, max_steps=10), MODEL, tmp_path / "gpu", quiet=True)
    model, vocab, _ = load_model(tmp_path / "gpu")                               # GPU -> CPU
    assert next(model.parameters()).device.type == "cpu"
    on_cpu = generate(model, vocab, SampleConfig(length=50, seed=3))[0]
    on_gpu = generate(model.cuda(), vocab, SampleConfig(length=50, seed=3, device="cuda"))[0]
    assert len(on_cpu) == len(on_gpu) == 50


def test_sync_free_step_trains_the_synced_numbers(text_file, tmp_path, monkeypatch):
    runs = {}
    for name, fast in (("synced", False), ("fast", None)):
        monkeypatch.setattr(train_mod, "FAST_STEP", fast)
        train_lm(cfg(text_file, precision="fp32"), MODEL, tmp_path / name, quiet=True)
        runs[name] = losses(tmp_path / name)
    assert sorted(runs["fast"]) == sorted(runs["synced"])
    for step, value in runs["synced"].items():
        assert runs["fast"][step] == pytest.approx(value, abs=2e-3), step


def test_a_non_finite_loss_on_cuda_is_named_at_its_step(text_file, tmp_path):
    inject = lambda step, loss: loss * float("nan") if step == 12 else loss   # noqa: E731 (step 13)
    with pytest.raises(NonFiniteLoss) as e:
        train_lm(cfg(text_file), MODEL, tmp_path / "nan", quiet=True, hooks=Hooks(inject=inject))
    assert "non-finite loss at step 13" in str(e.value)
    assert load_checkpoint(tmp_path / "nan" / "last.safetensors")[1]["state"]["step"] == 10


def test_auto_preset_is_the_gpu_recipe_on_cuda(text_file, tmp_path):
    t = dataclasses.replace(cfg(text_file, max_steps=2, batch=4), preset="auto")
    train_lm(t, MODEL, tmp_path / "p", quiet=True)
    rec = json.loads((tmp_path / "p" / "config.json").read_text())
    assert rec["train"]["preset"] == "gpu"
    assert torch.cuda.is_available()
