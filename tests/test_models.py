"""SequenceModel: shapes for every cell and input mode, the packed path against a per-sequence
loop, carried state, the softmax-only baseline, and the summary's parameter counts."""
from __future__ import annotations

import re

import pytest
import torch

from rnnkit import ModelConfig, SequenceModel, SoftmaxOnly, UsageError, summary
from rnnkit.core.models import count_params, detach_state, shapes_only

V = 11


def model(cell="lstm", embed=0, layers=1, hidden=7, dropout=0.0, seed=0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(vocab_size=V, cell=cell, layers=layers, hidden=hidden, embed=embed,
                                     dropout=dropout)).eval()


def states(state, cell):
    return list(state) if cell == "lstm" else [state]


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("embed", [0, 5])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shapes(cell, embed, layers):
    m = model(cell, embed, layers)
    x = torch.randint(0, V, (4, 9))
    logits, state = m(x)
    assert logits.shape == (4, 9, V)
    assert isinstance(state, tuple) == (cell == "lstm")
    for s in states(state, cell):
        assert s.shape == (layers, 4, 7)
    assert isinstance(m.rnn, {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell])
    assert (m.embedding is None) == (embed == 0)
    assert m.rnn.input_size == (embed or V)                       # one-hot feeds V inputs
    zero = m.init_state(4)
    for a, b in zip(states(zero, cell), states(state, cell)):
        assert a.shape == b.shape and not a.any()
    assert torch.allclose(m(x, zero)[0], logits)                  # the zero state is the default


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed", [0, 4])
def test_carried_state_equals_one_long_pass(cell, embed):
    """Truncated BPTT relies on this: two windows with the state carried == one window."""
    m = model(cell, embed, layers=2)
    x = torch.randint(0, V, (3, 12))
    whole, s_whole = m(x)
    a, s = m(x[:, :5])
    b, s = m(x[:, 5:], detach_state(s))
    assert torch.allclose(torch.cat([a, b], 1), whole, atol=1e-6)
    for u, w in zip(states(s, cell), states(s_whole, cell)):
        assert torch.allclose(u, w, atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed", [0, 4])
@pytest.mark.parametrize("layers", [1, 2])
def test_packed_batch_equals_each_sequence_alone(cell, embed, layers):
    """The dynamic RNN: lengths [5, 3, 4] padded and packed give, for every row, the logits and the
    final state of running that sequence alone; padded positions carry nothing (the head's bias)."""
    m = model(cell, embed, layers)
    lengths = torch.tensor([5, 3, 4])
    torch.manual_seed(1)
    x = torch.randint(0, V, (3, 5))
    x[1, 3:] = 0
    x[2, 4:] = 0
    init = tuple(torch.randn(layers, 3, 7) for _ in range(2)) if cell == "lstm" else torch.randn(layers, 3, 7)
    for start in (None, init):
        logits, state = m(x, start, lengths=lengths)
        for i, n in enumerate(lengths.tolist()):
            s_i = None if start is None else tuple(t[:, i:i + 1].contiguous() for t in states(start, cell))
            if s_i is not None and cell != "lstm":
                s_i = s_i[0]
            alone, s_alone = m(x[i:i + 1, :n], s_i)
            assert torch.allclose(logits[i, :n], alone[0], atol=1e-5)
            assert torch.equal(logits[i, n:], m.head.bias.expand(5 - n, V))
            for packed_s, one_s in zip(states(state, cell), states(s_alone, cell)):
                assert torch.allclose(packed_s[:, i], one_s[:, 0], atol=1e-5)


def test_dropout_only_in_training():
    m = model("lstm", 4, layers=2, dropout=0.5)
    x = torch.randint(0, V, (2, 6))
    m.eval()
    assert torch.equal(m(x)[0], m(x)[0])
    m.train()
    torch.manual_seed(0)
    a = m(x)[0]
    assert not torch.equal(a, m(x)[0])
    assert m.rnn.dropout == 0.5


def test_softmax_only_sees_one_symbol():
    torch.manual_seed(0)
    m = SoftmaxOnly(ModelConfig(vocab_size=V, hidden=3))
    x = torch.tensor([[1, 2, 1, 3, 1]])
    logits, state = m(x)
    assert logits.shape == (1, 5, V) and state is None
    assert torch.equal(logits[0, 0], logits[0, 2]) and torch.equal(logits[0, 0], logits[0, 4])


def test_vocab_size_must_be_set():
    with pytest.raises(UsageError, match="vocab_size"):
        SequenceModel(ModelConfig())


@pytest.mark.parametrize("bad", [dict(cell="transformer"), dict(layers=0), dict(hidden=0), dict(dropout=1.5)])
def test_bad_config_named(bad):
    with pytest.raises(UsageError, match=next(iter(bad))):  # Python callers: the field name
        SequenceModel(ModelConfig(vocab_size=V, **bad))


def summary_rows(text: str) -> tuple[dict, int]:
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+) \((.+?)\)\s+(\([\d, ]+\))\s+([\d,]+)$", line)
        if m:
            rows[m.group(1)] = (m.group(3), int(m.group(4).replace(",", "")))
    total = int(re.search(r"Total params: ([\d,]+)", text).group(1).replace(",", ""))
    return rows, total


@pytest.mark.parametrize("cell, embed, layers", [("lstm", 0, 1), ("gru", 6, 2), ("rnn", 0, 3)])
def test_summary_counts_equal_the_model(cell, embed, layers):
    m = model(cell, embed, layers)
    rows, total = summary_rows(summary(m, 2, 10))
    assert total == count_params(m) == sum(p.numel() for p in m.parameters())
    assert sum(n for _, n in rows.values()) == total
    assert rows["time_distributed"] == (str((2, 10, V)), count_params(m.head))
    assert rows[cell] == (str((2, 10, 7)), count_params(m.rnn))
    if embed:
        assert rows["embedding"] == (str((2, 10, embed)), count_params(m.embedding))
    else:
        assert rows["one_hot"] == (str((2, 10, V)), 0)


def test_summary_of_the_lecture_model():
    """Lab 12-1: one LSTM layer of 5 on 5 one-hot inputs: 4*(5*5 + 5*5 + 2*5) = 240 weights
    (PyTorch keeps two bias vectors), and a 5x5 head + 5 = 30."""
    m = SequenceModel(ModelConfig(vocab_size=5, cell="lstm", layers=1, hidden=5, embed=0, dropout=0.0))
    rows, total = summary_rows(summary(m, 1, 6))
    assert rows["lstm"][1] == 240 and rows["time_distributed"][1] == 30 and total == 270
    s = SoftmaxOnly(ModelConfig(vocab_size=5))
    rows, total = summary_rows(summary(s, 1, 6))
    assert total == count_params(s) == 30


@pytest.mark.parametrize("init", ["torch", "scaled"])
def test_shapes_only_builds_the_same_shapes_on_the_meta_device(init):
    cfg = ModelConfig(vocab_size=V, cell="lstm", layers=2, hidden=7, embed=5, init=init)
    with shapes_only():
        probe = SequenceModel(cfg)
    real = SequenceModel(cfg)
    assert {k: v.shape for k, v in probe.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}
    assert {v.device.type for v in probe.state_dict().values()} == {"meta"}
    assert real.embedding.weight.std() > 0.5                   # outside the context, init draws as before


def test_checking_a_checkpoint_does_not_import_the_compiler(tmp_path):
    """A meta-device normal_ imports torch._dynamo (about 2 s): the checkpoint's size check, which
    every sample / eval / serve runs, must not pay it."""
    import subprocess
    import sys
    code = ("import sys; from rnnkit.core.models import shapes_only, SequenceModel; from rnnkit import ModelConfig\n"
            "with shapes_only(): SequenceModel(ModelConfig(vocab_size=9, hidden=4, embed=3))\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
