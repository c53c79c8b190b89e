"""Vocabulary: deterministic (sorted) ids, lossless round trips on any Unicode, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit import UsageError, Vocab

# any code point, lone surrogates (which UTF-8 rejects) included
any_char = st.characters(exclude_categories=())
any_text = st.text(alphabet=any_char, min_size=1, max_size=200)
FAST = settings(max_examples=100, deadline=None)


@FAST
@given(any_text)
def test_encode_decode_round_trip(text):
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < len(v) for i in ids)
    assert v.decode(ids) == text


@FAST
@given(any_text)
def test_vectorised_encode_equals_encode(text):
    v = Vocab.from_text(text)
    arr = v.encode_array(text)
    assert arr.dtype == v.dtype
    assert arr.tolist() == v.encode(text)


@FAST
@given(any_text, st.randoms(use_true_random=False))
def test_same_characters_same_vocab_in_any_order(text, rnd):
    chars = list(text)
    rnd.shuffle(chars)
    a, b = Vocab.from_text(text), Vocab.from_text("".join(chars))
    assert a == b and a.symbols == b.symbols
    assert a.encode(text) == b.encode(text)


@FAST
@given(any_text)
def test_symbols_sorted_and_distinct(text):
    v = Vocab.from_text(text)
    assert v.symbols == sorted(set(text))
    assert len(v) == len(set(text))


@FAST
@given(any_text, st.sampled_from(["chars", "bytes"]))
def test_json_round_trip(text, kind):
    if kind == "bytes":  # a byte vocabulary holds the Latin-1 characters of byte values
        text = text.encode("utf-8", "surrogatepass").decode("latin-1")
    v = Vocab.from_text(text, kind)
    back = Vocab.from_json(json.loads(json.dumps(v.to_json())))
    assert back == v and back.kind == kind
    assert back.encode(text) == v.encode(text)


@FAST
@given(st.text(alphabet="abcdef", min_size=1, max_size=50), st.text(alphabet="xyzé\U0001F600", min_size=1, max_size=20))
def test_unknown_characters_are_refused_by_name(known, extra):
    v = Vocab.from_text(known)
    mixed = known + extra
    with pytest.raises(UsageError) as e:
        v.encode(mixed)
    msg = str(e.value)
    assert "\n" not in msg
    for c in dict.fromkeys(extra):
        assert repr(c) in msg
    assert "unknown='skip'" in msg  # a Python caller is told the field
    assert v.unknown(mixed) == list(dict.fromkeys(extra))


@FAST
@given(st.text(alphabet="abcdef", min_size=1, max_size=50), st.text(alphabet="abxyz\u00e9", max_size=50))
def test_skip_drops_only_unknown_characters(known, text):
    v = Vocab.from_text(known)
    kept = "".join(c for c in text if c in v.index)
    assert v.encode(text, unknown="skip") == v.encode(kept)
    assert v.decode(v.encode(text, unknown="skip")) == kept


def test_encode_array_refuses_unknown():
    v = Vocab.from_text("abc")
    with pytest.raises(UsageError, match="'z'"):
        v.encode_array("abcz")


def test_one_hot_shape_and_values():
    v = Vocab.from_text("hello world")
    ids = torch.tensor([v.encode("hello"), v.encode("world")])   # (2, 5)
    oh = v.one_hot(ids)
    assert oh.shape == (2, 5, len(v))
    assert oh.dtype == torch.float32
    assert torch.equal(oh.sum(-1), torch.ones(2, 5))
    assert torch.equal(oh.argmax(-1), ids)


@pytest.mark.parametrize("n, dtype", [(1, np.uint8), (256, np.uint8), (257, np.uint16),
                                      (65536, np.uint16), (65537, np.uint32)])
def test_ids_use_the_smallest_dtype(n, dtype):
    symbols = [chr(i) for i in range(0x20, 0x20 + n + 2048) if not 0xD800 <= i < 0xE000][:n]
    v = Vocab(symbols)
    assert v.dtype == np.dtype(dtype)
    assert v.encode_array(symbols[-1] + symbols[0]).tolist() == [n - 1, 0]


def test_lecture_order_bug_is_gone():
    """The lecture's list(set(text)) depends on the process; ours is the sorted order, always."""
    v = Vocab.from_text("hihello")
    assert v.symbols == ["e", "h", "i", "l", "o"]
    assert v.encode("ihello") == [2, 1, 0, 3, 3, 4]


def test_bytes_vocabulary_decodes_utf8():
    raw = "naïve ☃".encode()
    v = Vocab.from_text(raw.decode("latin-1"), "bytes")
    ids = v.encode(raw.decode("latin-1"))
    assert len(ids) == len(raw)
    assert v.decode(ids) == "naïve ☃"


@pytest.mark.parametrize("symbols", [["a", "a"], ["ab"], [""]])
def test_bad_symbols_refused(symbols):
    with pytest.raises(UsageError):
        Vocab(symbols)


@pytest.mark.parametrize("d", [None, [], {"symbols": 3}, {"kind": "chars"}, {"symbols": "ab", "kind": "words"}])
def test_bad_json_refused(d):
    with pytest.raises(UsageError):
        Vocab.from_json(d)
