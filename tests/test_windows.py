"""Unfolding and batching: shifted pairs, sliding windows as views, TBPTT streams, random windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rnnkit import RandomWindows, StreamBatches, UsageError, Vocab, pad_sequences, shift_pairs, sliding_windows
from rnnkit.core.windows import eval_streams

FAST = settings(max_examples=80, deadline=None)


def test_shift_pairs_hihello():
    v = Vocab.from_text("hihello")
    x, y = shift_pairs(np.array(v.encode("hihello")))
    assert v.decode(x) == "hihell" and v.decode(y) == "ihello"


@pytest.mark.parametrize("ids", [[], [3]])
def test_shift_pairs_needs_two(ids):
    with pytest.raises(UsageError, match="at least 2"):
        shift_pairs(ids)


@FAST
@given(st.integers(2, 300), st.integers(1, 40), st.integers(1, 12))
def test_sliding_windows_are_views_with_the_right_contents(n, seq_len, stride):
    ids = np.random.default_rng(n).integers(0, 50, n).astype(np.uint8)
    if n < seq_len + 1:
        with pytest.raises(UsageError, match="fewer than one window"):
            sliding_windows(ids, seq_len, stride)
        return
    xs, ys = sliding_windows(ids, seq_len, stride)
    count = (n - 1 - seq_len) // stride + 1
    assert xs.shape == ys.shape == (count, seq_len)
    assert np.shares_memory(xs, ids) and np.shares_memory(ys, ids)
    for i in range(count):
        s = i * stride
        assert np.array_equal(xs[i], ids[s: s + seq_len])
        assert np.array_equal(ys[i], ids[s + 1: s + seq_len + 1])


@pytest.mark.parametrize("seq_len, stride", [(0, 1), (3, 0)])
def test_sliding_windows_bad_sizes(seq_len, stride):
    with pytest.raises(UsageError):
        sliding_windows(np.arange(10), seq_len, stride)


def test_lecture_windows():
    text = "if you want"
    v = Vocab.from_text(text)
    xs, ys = sliding_windows(np.array(v.encode(text)), 4)
    assert [v.decode(w) for w in xs[:2]] == ["if y", "f yo"]
    assert [v.decode(w) for w in ys[:2]] == ["f yo", " you"]


@FAST
@given(st.integers(2, 600), st.integers(1, 8), st.integers(1, 12), st.sampled_from([1, 2, 4]))
def test_stream_batches(n, batch, seq_len, world):
    ids = np.arange(n, dtype=np.int64)       # id == position, so contents are easy to check
    length = (n - 1) // batch
    if length < seq_len:
        with pytest.raises(UsageError, match="too short"):
            StreamBatches(ids, batch, seq_len)
        return
    full = StreamBatches(ids, batch, seq_len)
    assert np.shares_memory(full.x, ids) and np.shares_memory(full.y, ids)
    steps = full.steps_per_epoch
    assert steps == length // seq_len
    for j in range(steps):
        x, y = full.get(j)
        assert x.shape == y.shape == (batch, seq_len)
        assert torch.equal(y, x + 1)                                  # targets shifted by one
        rows_start = torch.arange(batch)[:, None] * length + j * seq_len
        assert torch.equal(x, rows_start + torch.arange(seq_len))    # row r is stream r, window j
        if j + 1 < steps:                                             # the next window continues it
            assert torch.equal(full.get(j + 1)[0][:, 0], x[:, -1] + 1)
    assert full.starts_epoch(0) and full.starts_epoch(steps) and (steps == 1 or not full.starts_epoch(1))
    assert torch.equal(full.get(steps)[0], full.get(0)[0])          # wraps to a new epoch
    if batch % world:
        with pytest.raises(UsageError, match="divisible"):
            StreamBatches(ids, batch, seq_len, 0, world)
        return
    shards = [StreamBatches(ids, batch, seq_len, r, world) for r in range(world)]
    for j in (0, steps - 1):
        parts = [s.get(j)[0] for s in shards]
        assert all(p.shape[0] == batch // world for p in parts)
        assert torch.equal(torch.cat(parts), full.get(j)[0])         # disjoint and covering, in order


@FAST
@given(st.integers(2, 400), st.integers(1, 8), st.integers(1, 20), st.integers(0, 2**31), st.sampled_from([1, 2, 4]))
def test_random_windows(n, batch, seq_len, seed, world):
    ids = np.arange(n, dtype=np.int64)
    if n < seq_len + 1:
        with pytest.raises(UsageError, match="shorter than one window"):
            RandomWindows(ids, batch, seq_len, seed)
        return
    rw = RandomWindows(ids, batch, seq_len, seed)
    x, y = rw.get(5)
    assert x.shape == y.shape == (batch, seq_len)
    assert torch.equal(y, x + 1)
    assert torch.equal(x, x[:, :1] + torch.arange(seq_len))            # contiguous windows
    assert int(x.min()) >= 0 and int(y.max()) <= n - 1
    again = RandomWindows(ids, batch, seq_len, seed)                     # a fresh object, e.g. after resume
    assert torch.equal(again.get(5)[0], x)
    assert torch.equal(rw.get(5)[0], x)                                  # independent of call order
    assume(batch % world == 0)
    parts = [RandomWindows(ids, batch, seq_len, seed, r, world).get(5)[0] for r in range(world)]
    assert torch.equal(torch.cat(parts), x)


def test_random_windows_differ_between_steps_and_seeds():
    ids = np.arange(10_000)
    a = RandomWindows(ids, 8, 10, seed=1)
    b = RandomWindows(ids, 8, 10, seed=2)
    assert not torch.equal(a.get(0)[0], a.get(1)[0])
    assert not torch.equal(a.get(0)[0], b.get(0)[0])


def test_pad_sequences():
    x, lengths = pad_sequences([[1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11, 12]], value=-1)
    assert lengths.tolist() == [5, 3, 4]
    assert x.shape == (3, 5) and x.dtype == torch.long
    assert x.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, -1, -1], [9, 10, 11, 12, -1]]


def test_eval_streams():
    ids = np.arange(103)
    cut, length = eval_streams(ids, 4)
    assert length == 25 and len(cut) == 101
    with pytest.raises(UsageError):
        eval_streams(np.arange(3), 4)
