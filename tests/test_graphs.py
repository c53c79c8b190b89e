"""graphs.py on a CPU: K-step chunks give the per-step loop's text, and the capture's fallbacks keep it."""

import warnings

import pytest
import torch

from rnnkit.core.config import ModelConfig, SampleConfig, UsageError
from rnnkit.core.models import SequenceModel
from rnnkit.core.vocab import Vocab
from rnnkit.text import graphs, sample
from rnnkit.text.decode import Picker
from rnnkit.text.graphs import ChunkRunner, chunk_steps, runner_for
from rnnkit.text.sample import FastStep, generate

VOCAB = Vocab.from_text("abcdefghijklmnopqrstuvwxyz .,\n")


def model(cell="lstm", layers=2, hidden=32, seed=0):
    torch.manual_seed(seed)
    m = SequenceModel(ModelConfig(vocab_size=len(VOCAB), cell=cell, layers=layers, hidden=hidden, embed=16))
    with torch.no_grad():   # larger weights than the default init, so the state matters
        for p in m.parameters():
            p.mul_(3.0)
    return m.eval()


def both(m, **kw):
    off = generate(m, VOCAB, SampleConfig(prime="the ", seed=5, graphs="off", **kw))
    on = generate(m, VOCAB, SampleConfig(prime="the ", seed=5, graphs="on", **kw))
    return off, on


OPTIONS = [dict(), dict(temperature=0.6), dict(top_k=4), dict(top_p=0.7), dict(top_k=6, top_p=0.9),
           dict(greedy=True), dict(temperature=0), dict(stop=["e"]), dict(max_lines=1, temperature=2.0)]


@pytest.mark.parametrize("kw", OPTIONS, ids=lambda kw: ",".join(kw) or "plain")
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_chunked_text_equals_the_per_step_text(cell, kw):
    off, on = both(model(cell), length=150, num=3, **kw)
    assert on == off
    if kw.get("stop"):
        assert all(t.endswith("e") and len(t) < 154 for t in on)   # stopped inside a chunk


def test_noise_blocks_that_chunks_straddle_give_the_same_text(monkeypatch):
    monkeypatch.setattr(sample, "CHUNK", 12)     # K = 8 does not divide the noise block of 12
    off, on = both(model(), length=100, num=2, top_k=5)
    assert on == off and len(on[0]) == 104


def test_short_and_single_character_texts():
    for length in (1, 2, 7, 9):
        off, on = both(model(), length=length)
        assert on == off


def test_streamed_pieces_make_the_returned_text():
    pieces = {0: "", 1: ""}
    cfg = SampleConfig(prime="ab", length=90, num=2, seed=1, graphs="on", stop=["a "])
    out = generate(model(), VOCAB, cfg, on_text=lambda i, p: pieces.__setitem__(i, pieces[i] + p))
    assert [pieces[0], pieces[1]] == out == generate(model(), VOCAB, SampleConfig(
        prime="ab", length=90, num=2, seed=1, graphs="off", stop=["a "]))


def test_chunk_probabilities_equal_the_forward_pass():
    m = model()
    with torch.inference_mode():
        prompt = torch.tensor([VOCAB.encode("the ")])
        logits, state = m(prompt)
        step = FastStep(m, 2)
        step.load_state(state)
        cfg = SampleConfig(length=40, num=2, seed=1)
        pick = Picker(cfg, 2, len(VOCAB), torch.Generator().manual_seed(1), "cpu", 40)
        runner = ChunkRunner(step, pick, 2, 40, capture=False)
        rows = []
        runner.generate(logits[:, -1].expand(2, -1), rows.append, None)
        drawn = torch.tensor([sum((r[i] for r in rows), []) for i in range(2)])   # (N, 40)
        full = torch.cat([prompt.expand(2, -1), drawn], 1)
        ref = torch.softmax(m(full)[0][:, -1], -1)                  # after the last drawn id
        assert torch.allclose(torch.softmax(step.logits, -1), ref, atol=1e-5, rtol=0)


class FakeGraph:
    """A 'captured graph' whose replay runs the runner's K steps eagerly (or fails to launch)."""

    def __init__(self, runner, fail=False):
        self.runner, self.fail, self.replays = runner, fail, 0

    def replay(self):
        if self.fail:
            raise RuntimeError("CUDA error: launch failed")
        self.replays += 1
        self.runner.steps(self.runner.K)


def capturing(monkeypatch, make_graph):
    """generate's runner takes the capture path on this CPU, with `make_graph(runner)` as the capture."""
    made = []

    def runner_with_capture(*args):
        r = runner_for(*args)
        if r is not None:
            r.capture = True
        return r

    def fake_capture(runner, side):
        made.append(make_graph(runner))
        return made[-1]

    monkeypatch.setattr(sample, "runner_for", runner_with_capture)
    monkeypatch.setattr(graphs, "side_stream", lambda device: None)
    monkeypatch.setattr(graphs, "capture_graph", fake_capture)
    return made


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_replayed_chunks_keep_the_text(monkeypatch, cell):
    made = capturing(monkeypatch, FakeGraph)
    off, on = both(model(cell), length=200, num=2, top_p=0.9)
    assert on == off and made and made[0].replays >= 10


def test_a_failed_capture_or_replay_falls_back_with_the_same_text(monkeypatch):
    def broken(runner):                # a capture that fails runs nothing: the buffers keep the state
        raise RuntimeError("operation not permitted when stream is capturing")

    for make in (broken, lambda r: FakeGraph(r, fail=True)):
        capturing(monkeypatch, make)
        with pytest.warns(RuntimeWarning, match="the text is the same"):
            off, on = both(model(), length=120, num=2)
        assert on == off


def test_auto_is_off_on_a_cpu_and_bad_values_are_refused():
    m = model()
    step = FastStep(m, 1)
    pick = Picker(SampleConfig(), 1, len(VOCAB), torch.Generator(), "cpu", 8)
    cpu = torch.device("cpu")
    assert runner_for("auto", step, pick, 1, 100, cpu) is None
    assert runner_for("off", step, pick, 1, 100, cpu) is None
    assert runner_for("on", step, pick, 1, 100, cpu).capture is False
    with pytest.raises(UsageError, match="graphs"):
        SampleConfig(graphs="yes").validate()


def test_chunk_sizes():
    assert [chunk_steps(n) for n in (1, 100, 500, 10_000, 10**7)] == [8, 8, 16, 64, 128]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert both(model(), length=3)[0] == both(model(), length=3)[1]
