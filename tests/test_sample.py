"""The sampler: the fast step computes what the model's forward computes, and drawing is right."""

import pytest
import torch

from rnnkit.config import ModelConfig, SampleConfig
from rnnkit.models import SequenceModel, SoftmaxOnly
from rnnkit import sample
from rnnkit.sample import FastStep, generate
from rnnkit.vocab import Vocab

VOCAB = Vocab.from_text("abcdefghijklmnopqrstuvwxyz .,\n")


def model(cell="lstm", layers=2, hidden=32, embed=16, seed=0, vocab=VOCAB):
    torch.manual_seed(seed)
    m = SequenceModel(ModelConfig(vocab_size=len(vocab), cell=cell, layers=layers, hidden=hidden, embed=embed))
    with torch.no_grad():   # larger weights than the default init, so the state matters
        for p in m.parameters():
            p.mul_(3.0)
    return m.eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers,embed", [(1, 16), (3, 16), (2, 0)])
def test_fast_step_probabilities_equal_the_forward_pass(cell, layers, embed):
    m = model(cell, layers, embed=embed)
    ids = torch.randint(0, len(VOCAB), (3, 30), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = torch.softmax(m(ids)[0], -1)                     # (N, T, V) from the fused kernel
        _, state = m(ids[:, :1])
        fast = FastStep(m, 3)
        fast.load_state(state)
        for t in range(1, ids.shape[1]):
            p = torch.softmax(fast.step(ids[:, t]), -1)
            assert torch.allclose(p, ref[:, t], atol=1e-5, rtol=0), f"step {t}"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_greedy_text_is_identical_to_the_plain_loop(cell):
    m = model(cell)
    cfg = SampleConfig(prime="the ", length=100, greedy=True, num=2)
    assert generate(m, VOCAB, cfg) == generate(m, VOCAB, cfg, fast=False)


def test_sampled_text_matches_the_plain_loop_for_the_same_seed():
    m = model()
    cfg = SampleConfig(prime="to be", length=100, temperature=0.9, seed=7, num=3)
    assert generate(m, VOCAB, cfg) == generate(m, VOCAB, cfg, fast=False)


def test_same_seed_same_text_and_other_seeds_differ():
    m = model()
    cfg = SampleConfig(length=100, seed=5)
    a, b = generate(m, VOCAB, cfg), generate(m, VOCAB, cfg)
    c = generate(m, VOCAB, SampleConfig(length=100, seed=6))
    assert a == b and a != c and len(a[0]) == 100


def test_temperature_zero_is_greedy():
    m = model()
    greedy = generate(m, VOCAB, SampleConfig(prime="a", length=80, greedy=True))
    assert generate(m, VOCAB, SampleConfig(prime="a", length=80, temperature=0.0, seed=1)) == greedy
    assert generate(m, VOCAB, SampleConfig(prime="a", length=80, top_k=1, seed=2)) == greedy


def test_top_k_draws_only_among_the_k_most_likely():
    m, k = model(), 3
    text = generate(m, VOCAB, SampleConfig(prime="q", length=120, top_k=k, temperature=2.0, seed=3))[0]
    ids = torch.tensor([VOCAB.encode(text)])
    with torch.inference_mode():
        logits = m(ids)[0][0]                                   # (T, V): what followed each prefix
    top = torch.topk(logits[:-1], k, -1).indices                # (T-1, k)
    assert (top == ids[0, 1:, None]).any(-1).all()
    wider = torch.topk(logits[:-1], 1, -1).indices[:, 0]
    assert (wider != ids[0, 1:]).any(), "with temperature 2 some draws should not be the most likely"


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_draws_follow_the_softmax_distribution(temperature):
    m, n = model(), 4000
    text = generate(m, VOCAB, SampleConfig(prime="x", length=1, num=n, temperature=temperature, seed=11))
    with torch.inference_mode():
        p = torch.softmax(m(torch.tensor([VOCAB.encode("x")]))[0][0, -1] / temperature, -1)
    counts = torch.bincount(torch.tensor([VOCAB.index[t[-1]] for t in text]), minlength=len(VOCAB)).double()
    expected = p.double() * n
    # each count within 5 standard deviations of its binomial mean
    assert ((counts - expected).abs() <= 5 * (expected * (1 - p.double())).sqrt() + 1).all()


def test_samples_longer_than_a_noise_chunk(monkeypatch):
    monkeypatch.setattr(sample, "CHUNK", 16)
    m = model(hidden=16)
    cfg = SampleConfig(length=90, seed=4, top_k=5, num=2)
    a = generate(m, VOCAB, cfg)
    greedy = generate(m, VOCAB, SampleConfig(length=90, greedy=True))
    assert a == generate(m, VOCAB, cfg, fast=False) and len(a[0]) == 90
    monkeypatch.setattr(sample, "CHUNK", 1024)
    assert generate(m, VOCAB, SampleConfig(length=90, greedy=True)) == greedy
    # the CPU generator streams its numbers, so the chunking does not change the text
    assert generate(m, VOCAB, cfg) == a


def test_streamed_pieces_make_the_returned_text():
    m = model()
    pieces: dict[int, str] = {}
    out = generate(m, VOCAB, SampleConfig(prime="ab", length=80, num=3, seed=2),
                   on_text=lambda i, s: pieces.__setitem__(i, pieces.get(i, "") + s))
    assert [pieces[i] for i in range(3)] == out and all(o.startswith("ab") and len(o) == 82 for o in out)


def test_byte_vocabulary_decodes_utf8_across_steps():
    vocab = Vocab([chr(b) for b in range(256)], kind="bytes")
    m = SequenceModel(ModelConfig(vocab_size=256, hidden=16, embed=8)).eval()
    with torch.no_grad():                                       # always "é" = C3 A9, alternating
        m.head.weight.zero_()
        m.head.bias.fill_(-50.0)
        m.head.bias[0xC3] = 50.0
        m.embedding.weight.zero_()
    out = generate(m, vocab, SampleConfig(length=1, greedy=True))
    assert out == ["\ufffd"]                                    # a lone lead byte is replaced at the end


def test_models_without_a_recurrent_stack_use_the_plain_path():
    torch.manual_seed(0)
    m = SoftmaxOnly(ModelConfig(vocab_size=len(VOCAB)))
    assert not FastStep.supports(m)
    out = generate(m, VOCAB, SampleConfig(prime="ab", length=50, seed=1))
    assert len(out[0]) == 52 and set(out[0]) <= set(VOCAB.symbols)
