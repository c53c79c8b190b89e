"""--lr left unset: the peak learning rate follows the epochs the run will train."""
import json
import math

import numpy as np
import pytest

from rnnkit import train as train_mod
from rnnkit.config import TrainConfig
from rnnkit.train import AUTO_EPOCHS, AUTO_LR, LoopConfig, auto_lr, lr_at
from rnnkit.windows import RandomWindows, StreamBatches


def test_auto_lr_is_high_for_short_runs_low_for_long_and_monotone_between():
    high, low = AUTO_LR
    assert auto_lr(1.0) == auto_lr(AUTO_EPOCHS[0]) == pytest.approx(high)
    assert auto_lr(AUTO_EPOCHS[1]) == auto_lr(500.0) == pytest.approx(low)
    assert auto_lr(None) == low                  # no length known: the cautious one
    between = [auto_lr(e) for e in np.linspace(*AUTO_EPOCHS, 12)]
    assert all(a > b for a, b in zip(between, between[1:]))
    mid = math.sqrt(AUTO_EPOCHS[0] * AUTO_EPOCHS[1])
    assert auto_lr(mid) == pytest.approx(math.sqrt(high * low))   # geometric in both


def test_batches_count_epochs():
    ids = np.arange(64 * 10 * 4 + 1) % 7
    streams = StreamBatches(ids, batch=64, seq_len=10)
    assert streams.steps_per_epoch == 4 and streams.epochs(10) == 2.5
    windows = RandomWindows(ids, batch=8, seq_len=10, seed=0)
    assert windows.epochs(32) == pytest.approx(32 * 80 / len(ids))


def test_a_given_lr_is_used_as_given():
    cfg = LoopConfig(lr=3e-4, warmup=0, schedule="constant")
    assert lr_at(cfg, 10, 100) == 3e-4
    assert TrainConfig().lr is None and TrainConfig(lr=1e-3).lr == 1e-3


def lrs(tmp_path, text: str, *args: str) -> list[float]:
    from rnnkit.cli import main
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--hidden", "16", "--layers", "1", "--embed", "8",
                 "--batch", "4", "--seq-len", "8", "--warmup", "0", "--log-every", "1", "--eval-every", "1000",
                 "--sample-chars", "0", "--threads", "1", *args]) == 0
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["lr"] for r in recs if "lr" in r]


@pytest.mark.parametrize("steps", [6, 500])
def test_training_peaks_at_the_auto_lr_of_its_epochs(tmp_path, steps):
    text = "the quick brown fox jumps over the lazy dog. " * 8      # 360 chars, 324 to train on
    seen = lrs(tmp_path, text, "--max-steps", str(steps))
    per_epoch = (int(len(text) * 0.9) - 1) // 4 // 8                 # streams: 10 steps per pass
    assert seen[0] == pytest.approx(auto_lr(steps / per_epoch))      # step 1 of a cosine: the peak
    assert seen[0] == pytest.approx(AUTO_LR[0] if steps == 6 else AUTO_LR[1])


def test_an_explicit_lr_overrides_auto(tmp_path):
    seen = lrs(tmp_path, "abcdefgh " * 200, "--max-steps", "5", "--lr", "1e-3")
    assert seen[0] == pytest.approx(1e-3)


def test_old_runs_keep_their_lr():
    assert TrainConfig.from_dict({"lr": 0.002}).lr == 0.002      # a 0.1 config.json / checkpoint
    assert train_mod.LoopConfig.of(TrainConfig(lr=0.002)).lr == 0.002
