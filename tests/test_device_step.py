"""The sync-free training step (train.Trainer.device_step) and the device options.

On a GPU the step does not wait for the host: the loss is read at log/eval/save steps only and a
non-finite loss skips the update on the device (fused AdamW's found_inf). The same code runs on
the CPU when forced (train.FAST_STEP), which is how these tests hold it to the synced step."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY_MODEL, TINY_TRAIN
from rnnkit import ModelConfig, TrainConfig, train_lm
from rnnkit.core import train as train_mod
from rnnkit.core.train import Hooks, NonFiniteLoss


def losses(run) -> dict[int, float]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def run(tmp_path, name, fast, monkeypatch, **extra):
    monkeypatch.setattr(train_mod, "FAST_STEP", fast)
    cfg = TrainConfig(files=extra.pop("files"),
                      **(TINY_TRAIN | dict(max_steps=30, log_every=5, eval_every=10, save_every=10)))
    model = ModelConfig(**(TINY_MODEL | dict(layers=2, dropout=0.2, weight_drop=0.1, locked_dropout=0.1)))
    train_lm(cfg, model, tmp_path / name, quiet=True, **extra)
    return tmp_path / name


def test_device_step_trains_the_same_numbers(text_file, tmp_path, monkeypatch):
    synced = losses(run(tmp_path, "synced", False, monkeypatch, files=[str(text_file)]))
    fast = losses(run(tmp_path, "fast", True, monkeypatch, files=[str(text_file)]))
    assert sorted(fast) == sorted(synced) and len(fast) >= 6
    for step, value in synced.items():
        assert fast[step] == pytest.approx(value, rel=1e-6, abs=1e-6), step


def test_device_step_reports_a_non_finite_loss_with_its_step(text_file, tmp_path, monkeypatch):
    def inject(step, loss):
        return loss * float("nan") if step == 12 else loss     # step 13, 1-based
    with pytest.raises(NonFiniteLoss) as e:
        run(tmp_path, "nan", True, monkeypatch, files=[str(text_file)], hooks=Hooks(inject=inject))
    assert "non-finite loss at step 13" in str(e.value)
    from rnnkit.core.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "nan" / "last.safetensors")[1]["state"]["step"] == 10   # intact


def test_device_cuda_without_a_gpu_is_one_line(cli, text_file, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible")
    res = cli("train", str(text_file), "--out", str(tmp_path / "r"), "--device", "cuda", "--max-steps", "1")
    assert res.rc == 2 and len(res.err_lines) == 1 and "no CUDA GPU" in res.err, res
    assert not (tmp_path / "r").exists()


def test_after_a_non_finite_loss_no_later_step_updates_before_the_sync(text_file, tmp_path, monkeypatch):
    """The synced step stops at the bad step with the weights from before it; the sync-free step
    learns of it only at the next sync, so every step in between is skipped on the device too, a
    finite loss among them included (here the NaN is one step's, steps 14 and 15 are finite)."""
    changed = {}
    real = train_mod.Trainer.device_step

    def watched(self, loss):
        before = [p.detach().clone() for p in self.model.parameters()]
        real(self, loss)
        changed[self.state.step + 1] = any(not torch.equal(b, p) for b, p in zip(before, self.model.parameters()))
    monkeypatch.setattr(train_mod.Trainer, "device_step", watched)
    inject = lambda step, loss: loss * float("nan") if step == 12 else loss   # noqa: E731 (step 13)
    with pytest.raises(NonFiniteLoss, match="non-finite loss at step 13"):
        run(tmp_path, "nan", True, monkeypatch, files=[str(text_file)], hooks=Hooks(inject=inject))
    assert all(changed[s] for s in range(1, 13)), changed          # it trained until then
    assert [s for s in changed if s >= 13] and not any(changed[s] for s in changed if s >= 13), changed
