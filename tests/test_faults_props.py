"""Promise 10: property tests (hypothesis) on the boundaries.

Lone surrogates: no UTF-8 file can hold them, so training text never does (strict reading names the
byte offset); the API Vocab holds and round-trips them, also through a checkpoint; error messages
and printed text escape them instead of failing. Windows and batches: for any length, seq_len,
batch, streams and chunk, either a one-line UsageError or exact arithmetic with no validation id
leaking into training."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from faults_helpers import TINY_FLAGS, cli, resign, trained_run
from rnnkit import corpus
from rnnkit.core.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.core.config import UsageError
from rnnkit.core.vocab import Vocab
from rnnkit.core.windows import StreamBatches, eval_streams, split_ids
from rnnkit.text.corpus import Source, read_chunks
from rnnkit.text.evaluate import cold_loss, loss_sums

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
any_char = st.characters(exclude_categories=())             # every code point, surrogates included
valid_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


# ---- vocabulary and lone surrogates --------------------------------------------------------------

@FAST
@given(st.text(any_char, min_size=1, max_size=60), surrogate)
def test_vocab_with_surrogates_round_trips_through_a_checkpoint(tmp_path, text, lone):
    text += lone
    v = Vocab.from_text(text)
    path = tmp_path / "v.safetensors"
    save_checkpoint(path, {"x": torch.zeros(1)}, {"vocab": v.to_json()})
    back = Vocab.from_json(load_checkpoint(path)[1]["vocab"])
    assert back == v
    assert back.decode(back.encode(text)) == text
    assert back.encode_array(text).tolist() == v.encode(text)


@FAST
@given(valid_text, surrogate, valid_text, st.integers(1, 9))
def test_a_file_cannot_hold_a_lone_surrogate(tmp_path, before, lone, after, chunk):
    """Its UTF-8-like bytes (surrogatepass) are refused, with the byte offset, however the file is
    cut into read chunks."""
    with pytest.raises(UnicodeEncodeError):
        (before + lone + after).encode("utf-8")
    p = tmp_path / "t.txt"
    p.write_bytes((before + lone + after).encode("utf-8", "surrogatepass"))
    old, corpus.CHUNK = corpus.CHUNK, chunk
    try:
        with pytest.raises(UsageError, match=f"invalid UTF-8 at byte offset {len(before.encode())};"):
            list(read_chunks(Source(p, "t.txt"), "utf-8"))
    finally:
        corpus.CHUNK = old


@FAST
@given(st.text(any_char, min_size=1, max_size=30), st.text(any_char, min_size=1, max_size=30))
def test_unknown_character_errors_are_printable(known, text):
    v = Vocab.from_text(known)
    try:
        v.encode(text)
    except UsageError as e:
        msg = str(e)
        msg.encode("utf-8")                                   # lone surrogates appear escaped
        assert "\n" not in msg and "not in the vocabulary" in msg
    else:
        assert set(text) <= set(known)


def test_generated_surrogates_print_escaped(capsys, tmp_path_factory, tmp_path):
    """A vocabulary made through the API may hold a lone surrogate; `rnnkit sample` prints it as
    an escape (stdout stays valid UTF-8) instead of dying with UnicodeEncodeError."""
    run = trained_run(tmp_path_factory)

    def with_surrogate(m):
        m["vocab"]["symbols"] = "".join(sorted(m["vocab"]["symbols"][:-1] + "\ud800"))

    def favour_it(t):
        t["model.head.bias"] = t["model.head.bias"].clone()
        t["model.head.bias"][-1] = 100.0                       # the last symbol, \ud800, always wins

    path = resign(run / "last.safetensors", tmp_path / "s.safetensors", with_surrogate, favour_it)
    rc, out, err = cli(capsys, "sample", path, "--greedy", "--length", "4")
    assert rc == 0, err
    assert out.strip() == "\\ud800" * 4


def test_undecodable_file_names_print_escaped(capsys, tmp_path_factory, tmp_path, monkeypatch):
    """A file name that is not UTF-8 (bytes 0xff) arrives as a surrogate escape; the lines that show
    it are printed escaped."""
    run = trained_run(tmp_path_factory)
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"caf\xff.txt")
    with open(name, "w") as f:
        f.write((run.parent / "corpus.txt").read_text())
    rc, out, err = cli(capsys, "eval", run, name)
    assert rc == 0, err
    assert out.startswith("caf\\udcff.txt: ")
    rc, out, err = cli(capsys, "train", name, "--out", "r", *TINY_FLAGS, "--max-steps", "2")
    assert rc == 0 and "data: caf\\udcff.txt;" in out, err
    rc, out, err = cli(capsys, "train", "--resume", "r", "--max-steps", "3")   # the name kept in the checkpoint
    assert rc == 0 and "resuming r at step 2" in out, err


# ---- windows and batches -------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.integers(0, 3000), st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5]), st.integers(1, 64), st.integers(1, 200))
def test_stream_batches_over_the_train_split(n, val_fraction, batch, seq_len):
    ids = np.arange(n, dtype=np.int64)                       # id == position
    train, val = split_ids(ids, val_fraction)
    assert len(train) + len(val) == n and (len(val) == 0 or val[0] == len(train))
    try:
        sb = StreamBatches(train, batch, seq_len)
    except UsageError as e:
        assert (len(train) - 1) // batch < seq_len and "batch" in str(e) and "seq_len" in str(e)  # field names for Python callers
        return
    length = (len(train) - 1) // batch
    assert sb.steps_per_epoch == length // seq_len >= 1
    seen = []
    for step in range(sb.steps_per_epoch):
        x, y = sb.get(step)
        assert x.shape == y.shape == (batch, seq_len) and torch.equal(y, x + 1)
        assert int(y.max()) <= len(train) - 1                 # no validation id is ever a target
        seen.append(x.reshape(-1))
    seen = torch.cat(seen)
    assert len(seen) == len(set(seen.tolist())) == batch * seq_len * sb.steps_per_epoch <= len(train) - 1


class Uniform(nn.Module):
    """Equal logits for every symbol, the carried state counting the steps it has seen."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, x, state=None):
        seen = (0 if state is None else state) + x.shape[1]
        return torch.zeros(*x.shape, self.vocab), seen


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 500), st.integers(1, 20), st.integers(1, 64), st.integers(2, 30))
def test_evaluation_counts_every_target_once(n, streams, chunk, vocab):
    ids = np.arange(n) % vocab
    total, count, correct = loss_sums(Uniform(vocab), ids, streams, chunk)
    per_stream = (n - 1) // streams if n >= 1 else 0
    assert count == (streams * per_stream if per_stream >= 1 else 0)
    assert count <= max(0, n - 1) and count >= max(0, n - 1) - (streams - 1)
    assert math.isclose(total, count * math.log(vocab), rel_tol=1e-5, abs_tol=1e-6)
    try:
        rows, length = eval_streams(ids, streams)
    except UsageError:
        assert per_stream < 1
    else:
        assert length == per_stream and len(rows) == streams * length + 1


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 400), st.integers(1, 400), st.integers(2, 30))
def test_cold_loss_covers_whole_windows_only(n, window, vocab):
    ids = np.arange(n) % vocab
    if window > n - 1:                                        # the CLI refuses this (--cold longer than the text)
        return
    loss = cold_loss(Uniform(vocab), ids, window)
    assert math.isclose(loss, math.log(vocab), rel_tol=1e-5)
