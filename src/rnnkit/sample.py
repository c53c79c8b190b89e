"""Generation: prime the model with a prompt, then draw one character at a time.

Temperature divides the logits (0 means greedy), top-k keeps the K most likely characters. The same
seed gives the same text. `generate` streams each new character to a callback as it is drawn.
"""
from __future__ import annotations

import codecs
from typing import Callable, Optional

import torch

from .config import SampleConfig, UsageError
from .models import SequenceModel
from .vocab import Vocab


def start_ids(vocab: Vocab, prime: str, unknown: str) -> tuple[list[int], bool]:
    """Ids that prime the model, and whether they are a stand-in (prompt empty or all skipped):
    a newline (or a space) starts the text as if at the beginning of a line."""
    ids = vocab.encode(prime, unknown=unknown)
    if ids:
        return ids, False
    for c in ("\n", " "):
        if c in vocab.index:
            return [vocab.index[c]], True
    return [0], True


def next_ids(logits: torch.Tensor, temperature: float, top_k: Optional[int], greedy: bool,
             gen: torch.Generator) -> torch.Tensor:
    """(N, V) logits -> (N,) drawn ids."""
    if greedy or temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)


class TextStream:
    """Turns drawn ids into text pieces; a byte vocabulary is decoded as UTF-8 incrementally."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace") if vocab.kind == "bytes" else None

    def __call__(self, ids: list[int], final: bool = False) -> str:
        text = "".join(self.vocab.symbols[i] for i in ids)
        if self.decoder is None:
            return text
        return self.decoder.decode(text.encode("latin-1"), final=final)


@torch.inference_mode()
def generate(model: SequenceModel, vocab: Vocab, cfg: SampleConfig,
             on_text: Optional[Callable[[int, str], None]] = None) -> list[str]:
    """`cfg.num` samples of `cfg.length` new characters after `cfg.prime`, as one batch.
    Each sample's text (prime included) is returned; `on_text(i, piece)` sees it as it grows."""
    cfg.validate()
    model.eval()
    device = next(model.parameters()).device
    ids, stand_in = start_ids(vocab, cfg.prime, cfg.unknown)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    streams = [TextStream(vocab) for _ in range(cfg.num)]
    prompt = "" if stand_in else streams[0](ids)
    out = [prompt] * cfg.num
    if on_text and prompt:
        for i in range(cfg.num):
            on_text(i, prompt)
    x = torch.tensor([ids] * cfg.num, device=device)                # (N, P)
    logits, state = model(x)
    logits = logits[:, -1]                                           # (N, V)
    for _ in range(cfg.length):
        nxt = next_ids(logits, cfg.temperature, cfg.top_k, cfg.greedy, gen)  # (N,)
        for i, c in enumerate(nxt.tolist()):
            piece = streams[i]([c])
            out[i] += piece
            if on_text and piece:
                on_text(i, piece)
        logits, state = model(nxt[:, None], state)
        logits = logits[:, -1]
    for i, s in enumerate(streams):
        tail = s([], final=True)
        out[i] += tail
        if on_text and tail:
            on_text(i, tail)
    return out


def check_prime(vocab: Vocab, prime: str, unknown: str) -> None:
    if unknown == "error":
        vocab.encode(prime)
    elif prime and not vocab.encode(prime, unknown="skip"):
        raise UsageError("every character of --prime is outside the vocabulary; nothing to start from")
