"""Dynamic evaluation: causal, adapts, leaves the model and the checkpoint alone."""
import hashlib
import json

import numpy as np
import pytest
import torch

from rnnkit.core.config import ModelConfig
from rnnkit.core.models import SequenceModel
from rnnkit.text.dynamic import DynamicSettings, dynamic_eval, dynamic_scores
from rnnkit.text.evaluate import loss_sums as evaluate_ids  # sums, as dynamic_eval returns

V = 9


def model(seed=0):
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(vocab_size=V, hidden=12, embed=6, layers=2)).eval()


def text(n=300, seed=0):
    return np.random.default_rng(seed).integers(0, V, n).astype(np.uint8)


@pytest.mark.parametrize("stats", [False, True])
@pytest.mark.parametrize("k", [37, 120])
def test_changing_later_characters_changes_no_earlier_score(k, stats):
    m, ids = model(), text()
    s = DynamicSettings(lr=1e-2, decay=0.01, segment=25)
    stats_ids = text(200, seed=5) if stats else None
    before, _ = dynamic_scores(m, ids, s, stats_ids=stats_ids)
    changed = ids.copy()
    changed[k + 1:] = (changed[k + 1:] + 1) % V          # every character after position k
    after, _ = dynamic_scores(m, changed, s, stats_ids=stats_ids)
    # score j predicts character j + 1 from characters <= j: those before k cannot change
    assert np.array_equal(before[:k], after[:k])
    assert not np.array_equal(before[k:], after[k:])


def test_adapts_to_repeated_text_and_leaves_the_model_unchanged():
    m, ids = model(), np.tile(text(40), 12)               # the same 40 characters again and again
    weights = {k: v.clone() for k, v in m.state_dict().items()}
    static = evaluate_ids(m, ids)[0] / (len(ids) - 1)
    total, count, _ = dynamic_eval(m, ids, DynamicSettings(lr=2e-2, decay=0.0, segment=20))
    assert count == len(ids) - 1
    assert total / count < static - 0.1                  # it learnt the repetition while reading
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in weights.items())


def test_zero_lr_is_static_evaluation():
    m, ids = model(), text()
    total, count, correct = dynamic_eval(m, ids, DynamicSettings(lr=0.0, decay=0.0, segment=30))
    st, sc, scorrect = evaluate_ids(m, ids, chunk=30)
    assert count == sc and correct == scorrect
    assert total == pytest.approx(st, rel=1e-6)


def test_cli_dynamic_json_and_checkpoint_unchanged(tmp_path, capsys):
    from rnnkit.cli import main
    corpus = tmp_path / "t.txt"
    corpus.write_text("to be or not to be, that is the question. " * 40)
    run = tmp_path / "run"
    assert main(["train", str(corpus), "--out", str(run), "--max-steps", "3", "--hidden", "8", "--embed", "4",
                 "--batch", "4", "--seq-len", "16", "--threads", "1", "--sample-chars", "0"]) == 0
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.glob("*.safetensors")}
    capsys.readouterr()
    assert main(["eval", str(run), str(corpus), "--json", "--dynamic", "--dynamic-lr", "1e-3",
                 "--segment", "20"]) == 0
    res = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert res["dynamic"] is True and res["dynamic_lr"] == 1e-3 and res["segment"] == 20
    assert "dynamic_decay" in res and res["loss"] > 0
    assert digest == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.glob("*.safetensors")}
    assert main(["eval", str(run), str(corpus), "--dynamic", "--cold", "10"]) == 2   # never mixed
