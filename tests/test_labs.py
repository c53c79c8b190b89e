"""The lecture's labs reach their targets (a few seeds each; all ten seeds: -m slow), and the
`rnnkit lab` command says so with its exit status."""
from __future__ import annotations

import pytest

from rnnkit import UsageError
from rnnkit.labs import LABS, SENTENCE, LabOptions, best_without_context, run_lab


def lab(name: str, seed: int = 0, **kw):
    lines: list[str] = []
    res = run_lab(name, LabOptions(seed=seed, log=lines.append, **kw))
    return res, "\n".join(lines)


@pytest.mark.parametrize("seed", range(4))
def test_hello(seed):
    res, log = lab("hello", seed)
    assert res.reached, log
    assert res.predictions == ["ihello"] and res.accuracy == 1.0
    assert "Prediction str: ihello" in log
    assert "x one-hot shape: (1, 6, 5)" in log                    # the lecture's data shapes
    assert "Total params: 270" in log and "Epoch 50/50" in log     # summary and Keras-like log


@pytest.mark.parametrize("seed", range(4))
def test_charseq(seed):
    res, log = lab("charseq", seed)
    assert res.reached, log
    assert res.predictions == ["if you want you"]


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_charseq_other_cells(cell):
    res, log = lab("charseq", 0, cell=cell)
    assert res.reached, log


@pytest.mark.parametrize("seed", range(2))
def test_softmax_only_cannot_learn_it(seed):
    res, log = lab("softmax-only", seed)
    rec, _ = lab("charseq", seed)
    ceiling = best_without_context(" if you want you")
    assert res.reached, log                            # its target: all a context-free model can learn ...
    assert abs(res.accuracy - ceiling) < 1e-6 and ceiling < 1.0   # ... which is not the whole string
    assert res.accuracy < rec.accuracy
    assert res.predictions[0] != "if you want you"
    assert "without recurrence" in log and "learned the best context-free prediction: yes" in log


def test_softmax_only_misses_its_target_when_undertrained():
    res, log = lab("softmax-only", 0, epochs=1)
    assert not res.reached and res.accuracy < res.extra["ceiling"], log
    assert "learned the best context-free prediction: no" in log


@pytest.mark.parametrize("seed", range(2))
def test_stock_tracks_the_series_leak_free(seed):
    res, log = lab("stock", seed)
    assert res.reached, log
    assert res.extra["model"]["rmse"] < res.extra["held_rmse"]          # learned to track the price
    assert res.extra["naive"]["rmse"] > 0 and "naive" in log            # the yardstick is reported
    assert "scaling fitted on the" in log and "training rows only" in log


def test_stock_misses_its_target_when_undertrained():
    res, log = lab("stock", 0, epochs=1)
    assert not res.reached and res.extra["model"]["rmse"] > res.extra["held_rmse"], log
    assert "does NOT track the series" in log


def test_run_lab_takes_a_lab_config_and_refuses_what_a_lab_ignores():
    from rnnkit.core.config import LabConfig
    lines = []
    res = run_lab("hello", LabConfig(seed=1), log=lines.append)
    assert res.reached and "Prediction str: ihello" in "\n".join(lines)
    for name, cfg in [("softmax-only", LabConfig(cell="gru")), ("hello", LabConfig(stateful=True)),
                      ("hello", LabConfig(data="x.csv"))]:
        with pytest.raises(UsageError, match="does not apply to lab"):
            run_lab(name, cfg, log=lines.append)
    with pytest.raises(UsageError, match=r"seed must be <= 9223372036854775807"):
        run_lab("hello", LabConfig(seed=2**64))
    with pytest.raises(UsageError, match=r"seed must be >= 0 \(got -1\)"):
        run_lab("stock", LabConfig(seed=-1))


@pytest.mark.parametrize("seed", range(2))
def test_dynamic(seed):
    res, log = lab("dynamic", seed)
    assert res.reached, log
    assert res.predictions == ["hello", "rnn", "deep", "world", "sequence"]
    assert "lengths [4, 2, 3, 4, 7]" in log


@pytest.mark.parametrize("seed", [0, 3])   # 3 diverged at the lecture's lr 0.1
def test_longseq(seed):
    res, log = lab("longseq", seed)
    assert res.reached, log
    assert res.extra["wrong_unambiguous"] == 0
    assert res.extra["ambiguous"], "the window design leaves some positions ambiguous"
    # every wrong character is at a position the output names as ambiguous
    wrong = [i for i, (a, b) in enumerate(zip(res.predictions[0], SENTENCE)) if a != b]
    assert set(wrong) <= set(res.extra["ambiguous"])
    assert "ambiguous by design at positions" in log and "rebuilt: " in log
    assert len(res.predictions[0]) == len(SENTENCE)


def test_longseq_stateful():
    res, log = lab("longseq", 0, stateful=True)
    assert res.reached, log
    assert res.extra["wrong"] == 0 and res.predictions == [SENTENCE]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("name, kw", [("hello", {}), ("charseq", {}), ("dynamic", {}), ("longseq", {}),
                                      ("longseq", {"stateful": True}), ("softmax-only", {}), ("stock", {})])
def test_every_lab_every_seed(name, kw, seed):
    res, log = lab(name, seed, **kw)
    assert res.reached, log


def test_too_few_epochs_does_not_reach():
    res, _ = lab("hello", 0, epochs=1)
    assert not res.reached


@pytest.mark.parametrize("opts, match", [(dict(epochs=0), "epochs"), (dict(cell="cnn"), "cell")])  # field names: Python callers
def test_bad_options(opts, match):
    with pytest.raises(UsageError, match=match):
        lab("hello", **opts)


# ---- the command ------------------------------------------------------------------------------

def test_cli_lab_reached_exits_0(cli):
    r = cli("lab", "hello", "--seed", "1")
    assert r.rc == 0, r
    assert "Prediction str: ihello" in r.out and "reached its target" in r.out
    assert r.err == ""


def test_cli_lab_not_reached_exits_1(cli):
    r = cli("lab", "charseq", "--epochs", "1")
    assert r.rc == 1, r
    assert "did NOT reach its target" in r.out
    assert "Traceback" not in r.err


def test_cli_lab_options(cli):
    r = cli("lab", "dynamic", "--cell", "gru", "--seed", "2", "--epochs", "3")
    assert r.rc in (0, 1) and "Epoch 3/3" in r.out and "gru" in r.out, r


def test_cli_lab_list(cli):
    r = cli("lab", "--list")
    assert r.rc == 0, r
    names = [line.split()[0] for line in r.out.splitlines() if line.strip()]
    assert names == list(LABS) == ["hello", "charseq", "softmax-only", "longseq", "dynamic", "stock"]
