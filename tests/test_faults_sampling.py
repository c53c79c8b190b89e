"""Issue 26, sampling (table-driven; each case failed before its fix):
4. beam search with stop strings or a line limit is linear in length (the stop check sees each
   character a bounded number of times) and can be abandoned between steps;
8. the prompt runs through the model in bounded chunks and counts in the memory check."""
from __future__ import annotations

import pytest
import torch

from rnnkit.core.config import ModelConfig, RnnkitError, SampleConfig
from rnnkit.core.models import SequenceModel
from rnnkit.core.vocab import Vocab
from rnnkit.text import sample
from rnnkit.text.decode import Stopper
from rnnkit.text.sample import generate

VOCAB = Vocab.from_text("abcdefghij \n")


def tiny(vocab=VOCAB, seed=0):
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(vocab_size=len(vocab), layers=1, hidden=8, embed=4)).eval()


# ---- 4. beam search with stop strings: linear in length ------------------------------------------

ENDINGS = [  # (id, SampleConfig fields that make every step check whether each beam ended)
    ("stop string", dict(stop=["zz"])), ("two stop strings", dict(stop=["jjj", "\n\n\n"])),
    ("max lines", dict(max_lines=10_000)), ("both", dict(stop=["jjj"], max_lines=10_000)),
]


@pytest.mark.parametrize("fields", [c[1] for c in ENDINGS], ids=[c[0] for c in ENDINGS])
@pytest.mark.parametrize("fast", [True, False])
def test_beam_stop_checks_are_linear_in_length(monkeypatch, fields, fast):
    seen = []
    cut = Stopper.cut
    monkeypatch.setattr(Stopper, "cut", lambda self, piece: seen.append(len(piece)) or cut(self, piece))
    beam, length = 4, 400
    generate(tiny(), VOCAB, SampleConfig(prime="a", length=length, beam=beam, **fields), fast=fast)
    assert sum(seen) <= 2 * beam * length, f"{sum(seen)} characters scanned for {beam} beams of {length}"


def test_beam_ends_follow_each_row_and_decode_bytes_across_steps():
    from rnnkit.text.decode import BeamEnds
    ends = BeamEnds(["é!"], 2, [chr(b) for b in range(256)], "bytes", rows=2)
    steps = [([0, 0], [0xC3, ord("x")]), ([0, 1], [0xA9, ord("\n")]),   # row 0: "é"; row 1: "x\n"
             ([0, 1], [ord("!"), ord("\n")])]                            # row 0 "é!" ends; row 1 2nd line
    got = [ends(rows, ids) for rows, ids in steps]
    assert got == [[False, False], [False, False], [True, True]]
    ends = BeamEnds(["ab"], None, list("abc"), "chars", rows=3)
    assert ends([0, 0, 0], [0, 1, 2]) == [False, False, False]
    assert ends([2, 0, 0], [0, 1, 0]) == [False, True, False]            # row 1 continues "a" with "b"


class Abandon(Exception):
    pass


@pytest.mark.parametrize("fields", [dict(beam=4, stop=["zz"]), dict(beam=4), dict(num=3), dict(num=1)],
                         ids=["beam with stop", "beam", "num 3", "num 1"])
def test_check_abandons_generation_between_steps(fields):
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 50:
            raise Abandon()
    with pytest.raises(Abandon):
        generate(tiny(), VOCAB, SampleConfig(prime="a", length=100_000, **fields), check=check)
    assert len(calls) == 51


# ---- 8. the prompt: bounded chunks, counted in the memory check ----------------------------------

def test_long_prompt_runs_in_bounded_chunks_with_the_same_text(monkeypatch):
    m = tiny()
    prime = "abcdefghij \n" * 2000                    # 24,000 characters
    ref = generate(m, VOCAB, SampleConfig(prime=prime, length=40, seed=2))[0]
    monkeypatch.setattr(sample, "PRIME_CHUNK", 1000)
    lengths = []
    forward = m.forward
    monkeypatch.setattr(m, "forward", lambda x, *a: lengths.append(x.shape[1]) or forward(x, *a))
    for fields in (dict(seed=2), dict(beam=2, num=1)):
        out = generate(m, VOCAB, SampleConfig(prime=prime, length=40, **fields))[0]
        assert out.startswith(prime) and len(out) == len(prime) + 40
    assert max(lengths) <= 1000 and len(lengths) >= 48
    monkeypatch.undo()
    again = generate(m, VOCAB, SampleConfig(prime=prime, length=40, seed=2))[0]
    assert again == ref


@pytest.mark.parametrize("fields", [dict(num=1), dict(num=64), dict(beam=8)], ids=["num 1", "num 64", "beam 8"])
def test_prompt_counts_in_the_memory_check(monkeypatch, fields):
    free = 64 * 2**20                                          # pretend 64 MiB are free
    real = sample.os.sysconf
    monkeypatch.setattr(sample.os, "sysconf", lambda k: free // 4096 if k == "SC_AVPHYS_PAGES" else
                        4096 if k == "SC_PAGE_SIZE" else real(k))
    prime = "abcdefghij" * 1_000_000                           # 10M characters, a 10 length request
    with pytest.raises(RnnkitError, match="prompt of 10,000,000 characters.*shorten the prompt"):
        generate(tiny(), VOCAB, SampleConfig(prime=prime, length=10, **fields))
