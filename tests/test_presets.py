"""Recipes (--preset), the size rule of the initialisation, and the `not learning:` line."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY_MODEL, TINY_TRAIN
from rnnkit import ModelConfig, TrainConfig, train_lm
from rnnkit.core.models import SequenceModel, init_of
from rnnkit.core.presets import PRESETS, apply
from rnnkit.core.watch import AFTER, unigram_entropy


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_gpu_preset_fills_only_what_was_not_given():
    t, m = apply(TrainConfig(preset="gpu"), ModelConfig(hidden=16), torch.device("cpu"))
    gpu = PRESETS["gpu"]
    assert t.preset == "gpu" and t.batch == gpu["train"]["batch"] and t.lr == gpu["train"]["lr"]
    assert m.hidden == 16 and m.dropout == gpu["model"]["dropout"]          # given: kept; not given: preset
    t, m = apply(TrainConfig(preset="gpu"), ModelConfig(), torch.device("cpu"), explicit={"dropout"})
    assert m.dropout == ModelConfig().dropout and m.hidden == gpu["model"]["hidden"]


@pytest.mark.parametrize("device, want", [("cpu", "cpu"), ("cuda", "gpu")])
def test_auto_follows_the_training_device(device, want):
    t, m = apply(TrainConfig(), ModelConfig(), torch.device(device))
    assert t.preset == want
    if want == "cpu":   # the cpu recipe is exactly the defaults
        assert (t.lr, t.batch, m.hidden, m.dropout) == (TrainConfig().lr, TrainConfig().batch, 320, 0.2)


def test_cli_records_the_resolved_preset_and_explicit_flags_win(cli, text_file, tmp_path):
    run = tmp_path / "run"
    res = cli("train", str(text_file), "--out", str(run), "--preset", "gpu", "--device", "cpu", "--hidden", "16",
              "--embed", "8", "--layers", "1", "--batch", "4", "--seq-len", "16", "--max-steps", "3",
              "--dropout", "0.2", "--sample-chars", "0", "--eval-every", "3")
    assert res.rc == 0, res
    assert "recipe: preset gpu" in res.out
    cfg = json.loads((run / "config.json").read_text())
    gpu = PRESETS["gpu"]
    assert cfg["train"]["preset"] == "gpu" and cfg["train"]["lr"] == gpu["train"]["lr"]
    assert cfg["model"]["dropout"] == 0.2 and cfg["model"]["weight_drop"] == gpu["model"]["weight_drop"]
    assert cfg["model"]["hidden"] == 16 and cfg["train"]["batch"] == 4
    res = cli("train", "--resume", str(run), "--max-steps", "5")
    assert res.rc == 0, res
    again = json.loads((run / "config.json").read_text())
    assert again["train"] == cfg["train"] | {"max_steps": 5} and again["model"] == cfg["model"]


def test_init_rule_scales_deep_or_wide_stacks():
    deep = SequenceModel(ModelConfig(vocab_size=10, layers=3, hidden=32, embed=8))
    assert init_of(deep.config) == "scaled"
    h = 32
    assert torch.all(deep.rnn.bias_ih_l2[h:2 * h] == 1) and torch.all(deep.rnn.bias_hh_l2[h:2 * h] == 0)
    assert deep.rnn.weight_ih_l0.abs().max() > 1 / h ** 0.5      # fan-in 8: U(+-0.35), not U(+-0.18)
    small = SequenceModel(ModelConfig(vocab_size=10, layers=2, hidden=32, embed=8))
    assert init_of(small.config) == "torch" and not torch.all(small.rnn.bias_ih_l0[h:2 * h] == 1)
    assert ModelConfig.from_record({"vocab_size": 10}).init == "torch"    # old records: as trained


def test_a_run_that_is_not_learning_says_so_and_goes_on(text_file, tmp_path, capsys):
    run = tmp_path / "stuck"
    cfg = TrainConfig(files=[str(text_file)], **(TINY_TRAIN | dict(max_steps=AFTER + 20, log_every=10, eval_every=100,
                                                                  save_every=1000, sample_chars=0)), lr=1e-7)
    res = train_lm(cfg, ModelConfig(**TINY_MODEL), run)
    assert res.step == AFTER + 20                                   # it did not stop the run
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("not learning:")]
    assert len(lines) == 1 and "--lr" in lines[0]
    said = [r for r in records(run) if "not_learning" in r]
    assert len(said) == 1 and said[0]["step"] >= AFTER


def test_a_run_that_learns_is_not_warned(text_file, tmp_path, capsys):
    cfg = TrainConfig(files=[str(text_file)], **(TINY_TRAIN | dict(max_steps=AFTER + 20, log_every=10, eval_every=100,
                                                                  save_every=1000, sample_chars=0)), lr=0.01)
    train_lm(cfg, ModelConfig(**TINY_MODEL), tmp_path / "ok")
    assert "not learning:" not in capsys.readouterr().out
    assert not [r for r in records(tmp_path / "ok") if "not_learning" in r]


def test_unigram_entropy():
    import numpy as np
    assert unigram_entropy(np.array([0, 1, 0, 1])) == pytest.approx(np.log(2))
    assert unigram_entropy(np.array([3, 3, 3])) == pytest.approx(0.0)
