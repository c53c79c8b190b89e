"""AWD-LSTM regularisers: off means unchanged, masks per batch / per sequence, eval applies none,
the fused kernel runs (no per-step loop), checkpoint names unchanged, weight decay groups."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from rnnkit import regularize
from rnnkit.core.config import REGULARISERS_OFF, ModelConfig, UsageError
from rnnkit.core.models import SequenceModel
from rnnkit.core.regularize import embed_dropout, locked_dropout, param_groups

V = 11


OFF = REGULARISERS_OFF   # whatever the defaults are


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(vocab_size=V, hidden=16, embed=8, layers=2, **(OFF | kw)))


def batch(seed, b=4, t=12):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (b, t), generator=g), torch.randint(0, V, (b, t), generator=g)


def train_losses(m, forward, steps=6):
    """Losses of a few Adam steps with carried state; `forward(m, x, state)` -> (logits, state)."""
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.0)
    torch.manual_seed(123)
    state, out = None, []
    for i in range(steps):
        x, y = batch(i)
        m.train()
        logits, state = forward(m, x, state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def reference_forward(m, x, state):
    """The model path before the regularisers: embedding -> nn.LSTM -> dropout -> head."""
    out, state = m.rnn(m.embedding(x), state)
    return m.head(m.drop(out)), state


def test_off_is_bitwise_the_unchanged_path():
    got = train_losses(model(dropout=0.2), lambda m, x, s: m(x, s))
    want = train_losses(model(dropout=0.2), reference_forward)
    assert got == want  # exactly: p = 0 takes the plain fused path


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_direct_kernel_call_equals_the_module(cell):
    """The kernel call on the module's own weights is nn.LSTM/GRU/RNN itself (whole stack and per layer)."""
    torch.manual_seed(0)
    rnn = SequenceModel(ModelConfig(vocab_size=V, cell=cell, hidden=16, embed=8, layers=3, dropout=0.0)).rnn
    x = torch.randn(3, 9, 8)
    want, want_state = rnn(x)
    whole, _ = regularize.regularized_rnn(rnn, x, None, 0.0, 0.0, 0.0, True)
    layered, state = regularize.regularized_rnn(rnn, x, None, 0.0, 1e-12, 0.0, True)
    assert torch.equal(whole, want)
    assert torch.allclose(layered, want, atol=1e-5)
    for a, b in zip(state if cell == "lstm" else (state,), want_state if cell == "lstm" else (want_state,)):
        assert torch.allclose(a, b, atol=1e-5)


class Spy:
    """Counts the fused kernel calls and keeps the weights passed to them."""

    def __init__(self, monkeypatch):
        self.calls = []
        real = regularize.KERNELS["LSTM"]

        def kernel(x, state, weights, *rest):
            self.calls.append([w.detach().clone() for w in weights])
            return real(x, state, weights, *rest)
        monkeypatch.setitem(regularize.KERNELS, "LSTM", kernel)


@pytest.mark.parametrize("locked", [0.0, 0.3])
def test_fused_kernel_runs_once_per_layer_not_per_step(monkeypatch, locked):
    m = model(weight_drop=0.5, locked_dropout=locked).train()
    spy = Spy(monkeypatch)
    for t in (5, 50):
        spy.calls.clear()
        m(batch(0, t=t)[0])
        assert len(spy.calls) == (2 if locked else 1)  # independent of T: no per-step loop


def test_weight_drop_one_mask_per_batch(monkeypatch):
    m = model(weight_drop=0.5).train()
    spy = Spy(monkeypatch)
    m(batch(0)[0])
    m(batch(1)[0])
    raw = m.rnn.weight_hh_l0.detach()
    first, second = spy.calls[0][1], spy.calls[1][1]     # w_hh of layer 0 in each batch
    kept = first != 0
    assert 0.35 < kept.float().mean() < 0.65
    assert torch.allclose(first[kept], 2 * raw[kept])    # kept weights scaled by 1 / (1 - p)
    assert not torch.equal(first != 0, second != 0)      # a fresh mask for the next batch
    assert torch.equal(spy.calls[0][0], m.rnn.weight_ih_l0.detach())  # input weights untouched
    assert m.rnn.weight_hh_l0.detach().count_nonzero() == raw.numel()  # the parameter itself is not changed


def test_locked_dropout_one_mask_per_sequence():
    torch.manual_seed(0)
    out = locked_dropout(torch.ones(8, 30, 16), 0.5, training=True)
    assert torch.equal(out, out[:, :1].expand_as(out))   # same at every step
    assert not torch.equal(out[0], out[1])               # each sequence its own mask
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(locked_dropout(torch.ones(2, 3, 4), 0.5, training=False), torch.ones(2, 3, 4))


def test_embed_dropout_drops_whole_characters():
    torch.manual_seed(0)
    ids = torch.randint(0, V, (6, 40))
    out = embed_dropout(torch.ones(6, 40, 5), ids, V, 0.5, training=True)
    for c in ids.unique():
        vals = out[ids == c]
        assert torch.equal(vals, vals[:1].expand_as(vals))  # every occurrence in the batch alike
    assert (out == 0).any() and (out == 2).any()


def test_eval_applies_none():
    plain = model().eval()
    reg = model(weight_drop=0.5, embed_dropout=0.3, locked_dropout=0.4).eval()
    reg.load_state_dict(plain.state_dict())
    x = batch(0)[0]
    assert torch.equal(reg(x)[0], plain(x)[0])
    assert torch.equal(reg(x)[0], reg(x)[0])


def test_training_with_regularisers_differs_and_learns():
    reg = train_losses(model(weight_drop=0.3, embed_dropout=0.1, locked_dropout=0.3), lambda m, x, s: m(x, s))
    plain = train_losses(model(), lambda m, x, s: m(x, s))
    assert reg != plain and all(torch.isfinite(torch.tensor(reg)))


def test_checkpoint_names_unchanged_and_old_weights_load():
    plain, reg = model(), model(weight_drop=0.5, locked_dropout=0.2)
    assert list(reg.state_dict()) == list(plain.state_dict())
    reg.load_state_dict(plain.state_dict())              # an old checkpoint's weights


def test_a_record_that_predates_the_regularisers_trains_without_them(tmp_path):
    """A 0.1 checkpoint's model config has no regulariser keys: it was trained without them, so
    loading (and resuming) it must not switch on today's defaults."""
    from rnnkit.core.checkpoint import load_model, save_checkpoint
    from rnnkit.core.vocab import Vocab
    @dataclasses.dataclass
    class OnByDefault(ModelConfig):              # as if the recipe switched them on
        weight_drop: float = 0.3
        locked_dropout: float = 0.2

    saved_before = {"vocab_size": V, "hidden": 16}
    assert OnByDefault.from_dict(saved_before).weight_drop == 0.3            # a config file: defaults
    assert OnByDefault.from_record(saved_before).weight_drop == 0.0          # a record: off, as trained
    assert OnByDefault.from_record(saved_before).locked_dropout == 0.0
    assert OnByDefault.from_record(saved_before | {"locked_dropout": 0.1}).locked_dropout == 0.1   # kept
    m = model()
    old = {k: v for k, v in m.config.to_dict().items() if k not in OFF}
    vocab = Vocab([chr(97 + i) for i in range(V)])
    weights = {f"model.{k}": v for k, v in m.state_dict().items()}
    save_checkpoint(tmp_path / "old.safetensors", weights, {"kind": "charlm", "model": old, "vocab": vocab.to_json()})
    loaded = load_model(tmp_path / "old.safetensors")
    assert all(getattr(loaded.config, k) == 0.0 for k in OFF), loaded.config


def test_packed_batches_refused_with_weight_drop():
    m = model(weight_drop=0.5).train()
    with pytest.raises(UsageError, match="weight_drop"):
        m(batch(0)[0], lengths=torch.tensor([12, 5, 3, 1]))


def test_weight_decay_groups():
    m = model()
    assert len(param_groups(m, 0.0)) == len(list(m.parameters()))  # a plain list: one group
    decay, rest = param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and all(p.dim() == 2 for p in decay["params"])
    assert rest["weight_decay"] == 0.0 and all(p.dim() == 1 for p in rest["params"])
    opt = torch.optim.AdamW(param_groups(m, 0.1), lr=0.1, weight_decay=0.1)
    bias, weight = m.head.bias.detach().clone(), m.head.weight.detach().clone()
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()                                           # zero gradients: only decay moves weights
    assert torch.equal(m.head.bias, bias)
    assert torch.allclose(m.head.weight, weight * (1 - 0.1 * 0.1))
