"""The sampler: the fast step computes what the model's forward computes, and drawing is right."""

import itertools

import pytest
import torch

from rnnkit.core.config import ModelConfig, RnnkitError, SampleConfig, UsageError
from rnnkit.core.models import SequenceModel, SoftmaxOnly
from rnnkit.core.vocab import Vocab
from rnnkit.text import sample
from rnnkit.text.decode import Stopper
from rnnkit.text.sample import FastStep, generate

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


# ---- issue 16: decoding, precision, bounds -------------------------------------------------------


def test_top_p_draws_only_from_the_nucleus():
    m, p = model(), 0.6
    text = generate(m, VOCAB, SampleConfig(prime="q", length=150, top_p=p, temperature=1.5, seed=3))[0]
    ids = torch.tensor([VOCAB.encode(text)])
    with torch.inference_mode():
        probs = torch.softmax(m(ids)[0][0, :-1] / 1.5, -1)          # (T-1, V) at the temperature
    sorted_p, order = torch.sort(probs, -1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p                          # mass of the likelier characters
    rank = (order == ids[0, 1:, None]).float().argmax(-1)             # where each drawn char ranks
    assert (before.gather(1, rank[:, None])[:, 0] < p).all(), "a draw outside the nucleus"
    assert (rank > 0).any(), "at temperature 1.5 some draws should not be the most likely"


def test_top_p_tiny_is_greedy_and_top_p_one_changes_nothing():
    m = model()
    greedy = generate(m, VOCAB, SampleConfig(prime="a", length=60, greedy=True))
    assert generate(m, VOCAB, SampleConfig(prime="a", length=60, top_p=1e-6, seed=1)) == greedy
    cfg = SampleConfig(prime="a", length=60, seed=4)
    assert generate(m, VOCAB, SampleConfig(prime="a", length=60, top_p=1.0, seed=4)) == generate(m, VOCAB, cfg)


def test_stop_strings_end_after_the_first_one_which_is_kept():
    m = model()
    full = generate(m, VOCAB, SampleConfig(prime="a", length=400, seed=9))[0][1:]
    stops = [full[50:52], full[120:123]]                 # two strings that occur in the free text
    first = min(full.find(s) + len(s) for s in stops)
    out = generate(m, VOCAB, SampleConfig(prime="a", length=400, seed=9, stop=stops))[0]
    assert out == "a" + full[:first]
    streamed = []
    generate(m, VOCAB, SampleConfig(prime="a", length=400, seed=9, stop=stops), on_text=lambda i, s: streamed.append(s))
    assert "".join(streamed) == out


def test_stopper_finds_strings_across_pieces_and_counts_lines():
    s = Stopper(["END"], None)
    assert s.cut("abcE") == "abcE" and s.cut("NDxyz") == "ND" and s.done and s.cut("more") == ""
    s = Stopper([], 2)
    assert s.cut("one\ntwo\nthree\n") == "one\ntwo\n" and s.done


def test_max_lines_counts_generated_newlines():
    m = model()
    for n in (1, 3):
        out = generate(m, VOCAB, SampleConfig(prime="ab", length=3000, seed=2, max_lines=n, num=2))
        for o in out:
            assert o.startswith("ab") and o[2:].count("\n") == n and o.endswith("\n")


def test_prime_file_reads_utf8_and_bytes(tmp_path):
    m = model()
    f = tmp_path / "prime.txt"
    f.write_text("the cat")
    cfg = SampleConfig(prime_file=str(f), length=20, seed=1)
    assert generate(m, VOCAB, cfg) == generate(m, VOCAB, SampleConfig(prime="the cat", length=20, seed=1))
    f.write_bytes(b"\xff\xfe bad")
    with pytest.raises(UsageError, match="not valid UTF-8"):
        generate(m, VOCAB, cfg)
    with pytest.raises(UsageError, match="cannot both"):
        generate(m, VOCAB, SampleConfig(prime="x", prime_file=str(f)))


def byte_model():
    vocab = Vocab([chr(b) for b in range(256)], kind="bytes")
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(vocab_size=256, hidden=16, embed=8)).eval(), vocab


def test_byte_model_accepts_any_prime_as_utf8():
    m, vocab = byte_model()
    out = generate(m, vocab, SampleConfig(prime="héllo ✓ 日本", length=0))
    assert out == ["héllo ✓ 日本"]
    a = generate(m, vocab, SampleConfig(prime="日本", length=30, seed=1))[0]
    assert a.startswith("日本")


def test_length_zero_prints_the_prime():
    m = model()
    seen = []
    assert generate(m, VOCAB, SampleConfig(prime="to be", length=0), on_text=lambda i, s: seen.append(s)) == ["to be"]
    assert seen == ["to be"]
    assert generate(m, VOCAB, SampleConfig(prime="to be", length=0, beam=2)) == ["to be"]


def test_wide_batches_draw_noise_per_chunk_and_keep_the_text(monkeypatch):
    m = model(hidden=8)
    cfg = SampleConfig(length=40, num=6, seed=3)
    ref = generate(m, VOCAB, cfg)
    monkeypatch.setattr(sample, "NOISE_FLOATS", 6 * len(VOCAB) * 3)   # 3 steps of noise at a time
    assert generate(m, VOCAB, cfg) == ref


def test_requests_beyond_memory_are_refused_in_one_line():
    m = model(hidden=8)
    with pytest.raises(RnnkitError, match="lower num or length"):
        generate(m, VOCAB, SampleConfig(length=100_000_000, num=4096))


def exhaustive(m, vocab, prime: str, length: int) -> list[tuple[str, float]]:
    """Every continuation of `length` characters with its mean log-probability, best first."""
    best = []
    with torch.inference_mode():
        for tail in itertools.product(range(len(vocab)), repeat=length):
            ids = torch.tensor([vocab.encode(prime) + list(tail)])
            logp = torch.log_softmax(m(ids)[0][0], -1)
            p0 = len(prime) - 1
            total = sum(logp[p0 + j, t].item() for j, t in enumerate(tail))
            best.append((prime + vocab.decode(tail), total / length))
    return sorted(best, key=lambda b: -b[1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_beam_search_equals_exhaustive_search_on_a_tiny_model(cell):
    vocab = Vocab.from_text("abc")
    m = model(cell, layers=1, hidden=8, embed=4, seed=2, vocab=vocab)
    length = 4
    truth = exhaustive(m, vocab, "a", length)                 # 3^4 = 81 continuations
    # a beam as wide as V^(L-1) never drops the best path: the search is exact
    got = generate(m, vocab, SampleConfig(prime="a", length=length, beam=27, num=5))
    assert got == [t for t, _ in truth[:5]]
    narrow = generate(m, vocab, SampleConfig(prime="a", length=length, beam=2, num=1))[0]
    assert narrow in [t for t, _ in truth]
    assert generate(m, vocab, SampleConfig(prime="a", length=length, beam=27, num=5), fast=False) == got


def test_beam_search_ends_beams_at_a_stop_string_with_normalised_scores():
    vocab = Vocab.from_text("abc")
    m = model("lstm", layers=1, hidden=8, embed=4, seed=2, vocab=vocab)
    out = generate(m, vocab, SampleConfig(prime="a", length=5, beam=9, num=3, stop=["c"]))
    assert len(out) == 3
    for o in out:   # each either ended at its first "c" or ran the full length without one
        tail = o[1:]
        assert (tail.endswith("c") and tail.count("c") == 1) or (len(tail) == 5 and "c" not in tail)


def test_num_above_beam_is_refused():
    with pytest.raises(UsageError, match="num 3 is more than beam 2"):
        SampleConfig(num=3, beam=2).validate()


@pytest.mark.parametrize("precision,tol", [("bf16", 1e-2), ("int8", 3e-2)])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_reduced_precision_steps_stay_close(precision, tol, cell):
    from rnnkit.text.step import int8_available
    if precision == "int8" and not int8_available():
        pytest.skip("no fbgemm/x86 quantised kernels in this PyTorch")
    torch.manual_seed(0)
    m = SequenceModel(ModelConfig(vocab_size=len(VOCAB), cell=cell, layers=2, hidden=64, embed=16)).eval()
    ids = torch.randint(0, len(VOCAB), (2, 60), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = torch.softmax(m(ids)[0], -1)
        _, state = m(ids[:, :1])
        fast = FastStep(m, 2, precision)
        fast.load_state(state)
        worst = max((torch.softmax(fast.step(ids[:, t]), -1) - ref[:, t]).abs().max().item()
                    for t in range(1, ids.shape[1]))
    assert worst < tol


def test_auto_precision_is_exact_for_small_models_and_batches():
    from rnnkit.text.sample import pick_precision
    m = model()
    assert pick_precision(SampleConfig(), m, 32, torch.device("cpu")) == "fp32"      # hidden 32
    big = SequenceModel(ModelConfig(vocab_size=5, hidden=256))
    assert pick_precision(SampleConfig(), big, 1, torch.device("cpu")) == "fp32"     # batch 1: exact
    with pytest.raises(UsageError, match="is for CPU sampling"):
        pick_precision(SampleConfig(precision="int8"), big, 1, torch.device("meta"))


@pytest.mark.slow
def test_auto_precision_on_a_trained_model_keeps_probabilities_and_greedy_text(tmp_path):
    """The evidence for `auto` (bf16 at batch 8+, hidden 256+): on a 2x256 LSTM trained on
    Shakespeare, next-character probabilities within 1e-2 of fp32 and 2,000 greedy characters identical."""
    from pathlib import Path

    from rnnkit import TrainConfig, train_lm
    from rnnkit.text.sample import pick_precision
    from rnnkit.text.step import bf16_native
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
    if not data.exists() or not bf16_native():
        pytest.skip("needs ../shared/data/tinyshakespeare.txt and a CPU with native bf16")
    train_lm(TrainConfig(files=[str(data)], max_time=120, threads=1, sample_chars=0, eval_every=1000, seed=0),
             ModelConfig(hidden=256, layers=2), tmp_path / "run", quiet=True)
    from rnnkit.core.checkpoint import load_model
    m, vocab, _ = load_model(tmp_path / "run")
    assert pick_precision(SampleConfig(), m, 8, torch.device("cpu")) == "bf16"
    ids = torch.tensor([vocab.encode(data.read_text()[-3000:])])
    with torch.inference_mode():
        ref = torch.softmax(m(ids)[0][0], -1)
        _, state = m(ids[:, :1])
        fast = FastStep(m, 1, "bf16")
        fast.load_state(state)
        worst = max((torch.softmax(fast.step(ids[0, t:t + 1]), -1)[0] - ref[t]).abs().max().item()
                    for t in range(1, ids.shape[1]))
    assert worst < 1e-2
    cfg = dict(prime="ROMEO:", length=2000, greedy=True, num=8)
    assert generate(m, vocab, SampleConfig(**cfg)) == generate(m, vocab, SampleConfig(precision="fp32", **cfg))
