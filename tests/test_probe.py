"""Activation extraction, next-character probabilities and unit/feature correlations (probe.py)."""
import numpy as np
import pytest
import torch

from rnnkit.core.config import ModelConfig, UsageError
from rnnkit.core.models import SequenceModel, SoftmaxOnly
from rnnkit.core.vocab import Vocab
from rnnkit.text.probe import Activations, activations, correlations, features, lstm_cells, rank_units, single_layer

TEXT = 'He said "hello (there)" to her.\nShe said "bye".\n(A [nested] aside) ends\n'


def model_for(cell: str, embed: int = 8, layers: int = 3, hidden: int = 12):
    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = SequenceModel(ModelConfig(vocab_size=len(vocab), cell=cell, layers=layers, hidden=hidden,
                                      embed=embed, dropout=0.3)).eval()
    return model, vocab


@pytest.mark.parametrize("cell,embed", [("lstm", 8), ("gru", 8), ("rnn", 0)])
def test_shapes(cell, embed):
    model, vocab = model_for(cell, embed)
    acts = activations(model, vocab, TEXT)
    T = len(TEXT)
    assert acts.text == TEXT and acts.ids.shape == (T,)
    assert acts.hidden.shape == (3, T, 12)
    assert (acts.cells is not None) == (cell == "lstm")
    if acts.cells is not None:
        assert acts.cells.shape == (3, T, 12)
    assert acts.probs.shape == (T, len(vocab))
    np.testing.assert_allclose(acts.probs.sum(1), 1.0, rtol=1e-5)
    values, names = acts.units()
    assert values.shape == (T, 12 * 3 * (2 if cell == "lstm" else 1)) and len(names) == values.shape[1]
    assert names[0] == "L1 h0" and names[12] == "L2 h0"
    p = acts.actual_probs()
    assert np.isnan(p[0]) and p[5] == pytest.approx(acts.probs[4, acts.ids[5]])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_agrees_with_forward_pass(cell):
    """The top layer gives the model's own probabilities; every layer, at every position, equals the
    fused stack's state after reading the text up to there."""
    model, vocab = model_for(cell)
    acts = activations(model, vocab, TEXT)
    ids = torch.tensor(vocab.encode(TEXT))[None]
    with torch.no_grad():
        logits, _ = model(ids)
        np.testing.assert_allclose(acts.probs, torch.softmax(logits[0], -1).numpy(), atol=1e-6)
        for k in (1, 17, len(TEXT)):
            _, state = model(ids[:, :k])
            h, c = state if cell == "lstm" else (state, None)
            np.testing.assert_allclose(acts.hidden[:, k - 1], h[:, 0].numpy(), atol=1e-5)
            if c is not None:
                np.testing.assert_allclose(acts.cells[:, k - 1], c[:, 0].numpy(), atol=1e-5)


def test_lstm_cells_rebuild_the_fused_outputs():
    model, vocab = model_for("lstm", layers=1)
    layer = single_layer(model.rnn, 0)
    x = model.inputs(torch.tensor(vocab.encode(TEXT))[None])
    with torch.no_grad():
        h, _ = layer(x)
        c, h_again = lstm_cells(layer, x[0], h[0])
    torch.testing.assert_close(h_again, h[0], atol=1e-6, rtol=1e-5)
    assert c.abs().max() > 0.01  # a real cell state, not zeros


def test_unknown_characters_and_models_without_recurrence():
    model, vocab = model_for("gru")
    with pytest.raises(UsageError, match="not in the vocabulary"):
        activations(model, vocab, "He said ~~~")
    acts = activations(model, vocab, "He said ~~~", unknown="skip")
    assert acts.text == "He said " and acts.hidden.shape[1] == 8
    with pytest.raises(UsageError, match="no character"):
        activations(model, vocab, "~~~", unknown="skip")
    with pytest.raises(UsageError, match="no recurrent layers"):
        activations(SoftmaxOnly(ModelConfig(vocab_size=len(vocab))), vocab, "He")


def test_features_by_hand():
    f = features('a "b" (c [d])\nEf')
    #             a   " b "   ( c   [ d ] )  \n E f
    assert f["inside quotes"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["inside brackets"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert f["position in line"].tolist()[-4:] == [13, 0, 1, 2]
    assert f["after newline"].tolist()[-4:] == [0, 1, 0, 0]
    assert f["uppercase"].tolist()[-2:] == [1, 0] and f["uppercase"].sum() == 1
    assert f["position in word"].tolist()[-2:] == [1, 2]


def test_correlations_are_pearson_and_constant_columns_give_zero():
    rng = np.random.default_rng(0)
    units = rng.normal(size=(200, 3))
    units[:, 2] = 5.0                                               # a unit that never moves
    feats = np.stack([units[:, 0] * 3 + 1, rng.normal(size=200), np.zeros(200)], axis=1)
    r = correlations(units, feats)
    assert r.shape == (3, 3)
    assert r[0, 0] == pytest.approx(1.0)
    assert r[1, 1] == pytest.approx(np.corrcoef(feats[:, 1], units[:, 1])[0, 1])
    assert np.all(r[:, 2] == 0) and np.all(r[2] == 0) and np.isfinite(r).all()


def synthetic(text: str, unit: np.ndarray, where: int, hidden: int = 32) -> Activations:
    """Random units (layers 2 x `hidden`) with column `where` of layer 2 replaced by `unit`."""
    rng = np.random.default_rng(1)
    T = len(text)
    h = np.tanh(rng.normal(size=(2, T, hidden))).astype(np.float32)
    h[1, :, where] = unit
    vocab = Vocab.from_text(text)
    return Activations(text=text, ids=np.array(vocab.encode(text)), hidden=h, cells=None,
                       probs=np.full((T, len(vocab)), 1 / len(vocab), np.float32), symbols=vocab.symbols)


def test_a_unit_equal_to_inside_quotes_ranks_first():
    text = TEXT * 6
    quotes = features(text)["inside quotes"]
    acts = synthetic(text, 0.9 * quotes - 0.2, where=7)
    ranked = rank_units(acts)
    assert (ranked[0].feature, ranked[0].unit, ranked[0].column) == ("inside quotes", "L2 h7", 32 + 7)
    assert ranked[0].r == pytest.approx(1.0)
    # the sign is kept, the ranking uses |r|: the negated unit also comes first
    top = rank_units(synthetic(text, -quotes, where=3), per_feature=2)[0]
    assert (top.feature, top.unit) == ("inside quotes", "L2 h3") and top.r == pytest.approx(-1.0)


def test_rank_units_per_feature_and_absent_features():
    text = "no quotes here\nnor brackets\n" * 4
    ranked = rank_units(synthetic(text, features(text)["position in line"], where=0), per_feature=3)
    feats = {s.feature for s in ranked}
    assert "inside quotes" not in feats and "inside brackets" not in feats   # constant: left out
    assert all(sum(s.feature == f for s in ranked) == 3 for f in feats)
    assert [abs(s.r) for s in ranked] == sorted((abs(s.r) for s in ranked), reverse=True)
    assert ranked[0].feature == "position in line" and ranked[0].unit == "L2 h0"
