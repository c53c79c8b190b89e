"""Generation: prime the model with a prompt, then draw one character at a time.

Temperature divides the logits (0 means greedy), top-k keeps the K most likely characters, top-p
the smallest likeliest set with mass P; `stop` strings and `max_lines` end a sample early; `beam`
searches for the most probable continuation instead of sampling. The same seed gives the same
text. `generate` streams each new piece to a callback as it is drawn (beam search: when done).

After the prompt (one call of the model's fused forward), characters come from `FastStep`
(step.py: weights laid out once, at the chosen precision) and are chosen by decode.py's `Picker`;
on CUDA, K steps at a time are replayed as one captured CUDA graph (graphs.py, `graphs`).
`PlainStep`, the model's own forward per character, is the reference the tests hold it to.

    from rnnkit import load_model, SampleConfig, generate
    model, vocab, _ = load_model("runs/shakespeare")
    print(generate(model, vocab, SampleConfig(prime="ROMEO:", length=200, top_p=0.9, seed=1))[0])
"""
from __future__ import annotations

import codecs
import os
from typing import Callable, Optional

import torch

from ..core.config import RnnkitError, SampleConfig, UsageError, param
from ..core.models import SequenceModel
from ..core.vocab import Vocab
from .decode import BeamEnds, Picker, Stopper, beam_search
from .graphs import runner_for
from .step import FastStep, PlainStep, bf16_native, check_precision  # noqa: F401 (FastStep, PlainStep: API)

CHUNK = 1024            # sampling steps whose noise is drawn at once (and decoded at once when not streaming)
PRIME_CHUNK = 4096      # prompt characters per forward call: memory stays flat whatever the prompt's length
NOISE_FLOATS = 1 << 23  # at most this many noise values (32 MB) at once: the chunk shrinks for wide batches


def prime_symbols(vocab: Vocab, text: str) -> str:
    """The prompt as the vocabulary's symbols: a byte vocabulary takes any text, as UTF-8 bytes."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1") if vocab.kind == "bytes" else text


def read_prime(cfg: SampleConfig, vocab: Vocab) -> str:
    """The prompt's symbols from `prime` or `prime_file` (read as the model was trained: strict
    UTF-8, or raw bytes for a byte vocabulary)."""
    if cfg.prime_file is None:
        return prime_symbols(vocab, cfg.prime)
    if cfg.prime:
        raise UsageError(f"{param('prime')} and {param('prime_file')} cannot both be given; pick one")
    from .corpus import check_file
    path = check_file(cfg.prime_file)
    data = path.read_bytes()
    if vocab.kind == "bytes":
        return data.decode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{cfg.prime_file}: not valid UTF-8 at byte {e.start}; save it as UTF-8 "
                         "(this model was trained on UTF-8 text)")


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


def pick_precision(cfg: SampleConfig, model: torch.nn.Module, n: int, device: torch.device) -> str:
    """`auto`: exact fp32, except bf16 for batches of 8+ through layers of 256+ units on a CPU
    that computes bf16 natively (there bf16 is ~2x faster, and tests hold it within 1e-2 of fp32)."""
    if cfg.precision != "auto":
        check_precision(cfg.precision, device)
        return cfg.precision
    hidden = getattr(getattr(model, "config", None), "hidden", 0)
    return "bf16" if device.type == "cpu" and n >= 8 and hidden >= 256 and bf16_native() else "fp32"


def check_memory(n: int, length: int, vocab_size: int, prime: int = 0) -> None:
    """Refuse, in one line, a request whose text alone would not fit in the memory free now. Each
    of the n texts holds the prompt (`prime` characters) and up to `length` more."""
    need = n * (prime + length) * 4 + n * vocab_size * 4 * 8   # the texts (up to 4 bytes a char), per-step buffers
    need += prime * 8 * 2 + PRIME_CHUNK * vocab_size * 4 * 4   # the prompt's ids, one chunk's activations
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * free:
        what = f"a prompt of {prime:,} characters and " if prime else ""
        raise RnnkitError(f"{what}{param('num')} {n} x {param('length')} {length:,} need about "
                          f"{need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is free; lower {param('num')} or "
                          f"{param('length')}{' or shorten the prompt' if prime else ''}")


def run_prime(model, ids: list[int], device, check=None):
    """The prompt through the model in chunks of PRIME_CHUNK characters, the state carried:
    (logits after the last character (1, V), state). One call over a 1 MB prompt held every
    position's activations at once (1.3 GB on the smallest model: issue 26)."""
    x = torch.tensor(ids, dtype=torch.long, device=device)
    state = None
    for j in range(0, len(ids), PRIME_CHUNK):
        if check is not None:
            check()
        logits, state = model(x[None, j:j + PRIME_CHUNK], state)     # (1, T, V)
        logits = logits[:, -1]
    return logits, state


def make_stepper(model, state, n: int, precision: str, fast: bool):
    """A FastStep (or, for other models or fast=False, the plain forward) from the prompt's state."""
    if fast and FastStep.supports(model):
        stepper = FastStep(model, n, precision)
        stepper.load_state(state)
        return stepper
    expand = lambda s: s.expand(-1, n, -1).contiguous()
    return PlainStep(model, tuple(map(expand, state)) if isinstance(state, tuple)
                     else expand(state) if state is not None else None)


def reorder_plain(stepper: PlainStep, rows: torch.Tensor) -> None:
    s = stepper.state
    if s is not None:
        stepper.state = tuple(x[:, rows] for x in s) if isinstance(s, tuple) else s[:, rows]


@torch.inference_mode()
def generate(model: SequenceModel, vocab: Vocab, cfg: SampleConfig,
             on_text: Optional[Callable[[int, str], None]] = None, fast: bool = True,
             check: Optional[Callable[[], None]] = None) -> list[str]:
    """`cfg.num` samples of up to `cfg.length` new characters after the prompt, as one batch.
    Each sample's text (prime included) is returned; `on_text(i, piece)` sees it as it grows.
    `fast=False` steps with the model's own forward (the reference the fast path is tested against).
    `check()` is called before every step and may raise to abandon the work (the server's
    cancellation when a client leaves)."""
    cfg.validate()
    model.eval()
    device = next(model.parameters()).device
    ids, stand_in = start_ids(vocab, read_prime(cfg, vocab), cfg.unknown)
    if cfg.beam:
        return _beam(model, vocab, cfg, ids, stand_in, on_text, fast, device, check)
    n = cfg.num
    check_memory(n, cfg.length, len(vocab), 0 if stand_in else len(ids))
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    streams = [TextStream(vocab) for _ in range(n)]
    stoppers = [Stopper(cfg.stop, cfg.max_lines) for _ in range(n)] if cfg.stop or cfg.max_lines else None
    prompt = "" if stand_in else streams[0](ids)
    out = [prompt] * n

    def emit(rows: list[list[int]], final: bool = False) -> None:
        for i, row in enumerate(rows):
            piece = streams[i](row, final)
            if stoppers is not None:
                piece = stoppers[i].cut(piece)
            out[i] += piece
            if on_text and piece:
                on_text(i, piece)

    if on_text and prompt:
        for i in range(n):
            on_text(i, prompt)
    if cfg.length == 0:
        return out
    logits, state = run_prime(model, ids, device, check)              # (1, V) after the prompt
    logits = logits.expand(n, -1)                                     # (N, V), the same for every sample
    stepper = make_stepper(model, state, n, pick_precision(cfg, model, n, device), fast)
    # noise for `chunk` steps at once, bounded for wide batches (the text does not depend on it)
    chunk = max(1, min(cfg.length, CHUNK, NOISE_FLOATS // (n * logits.shape[-1])))
    pick = Picker(cfg, n, logits.shape[-1], gen, device, chunk)
    runner = runner_for(cfg.graphs, stepper, pick, n, cfg.length, device)   # graphs.py: K steps a call
    if runner is not None:
        runner.generate(logits, emit, stoppers, check)
        emit([[] for _ in range(n)], final=True)
        return out
    _eager(cfg.length, logits, stepper, pick, chunk, emit, stream=on_text is not None, stoppers=stoppers,
           check=check)
    emit([[] for _ in range(n)], final=True)
    return out


def _eager(length: int, logits: torch.Tensor, stepper, pick: Picker, chunk: int, emit, stream: bool,
           stoppers, check) -> None:
    """The per-step loop (no CUDA graph): draw, hand the text to `emit`, step; (N, V) logits in."""
    n = logits.shape[0]
    drawn = torch.empty(chunk, n, dtype=torch.long, device=logits.device)   # ids of the current chunk
    for t in range(length):
        if check is not None:
            check()
        k = t % chunk
        nxt = pick(logits, t, drawn[k])                               # (N,)
        if stream:                        # stream every character; otherwise decode once a chunk
            emit([[c] for c in drawn[k].tolist()])
        elif k == chunk - 1 or t == length - 1:
            emit(drawn[:k + 1].t().tolist())
        if stoppers is not None and all(s.done for s in stoppers):
            break
        if t < length - 1:
            logits = stepper.step(nxt)


def _beam(model, vocab: Vocab, cfg: SampleConfig, ids: list[int], stand_in: bool, on_text, fast: bool,
          device, check=None) -> list[str]:
    """The `num` best of `beam` continuations (length-normalised log-probability), printed when done."""
    prompt = "" if stand_in else TextStream(vocab)(ids, final=True)
    if cfg.length == 0:
        texts = [prompt] * cfg.num
    else:
        check_memory(cfg.beam, cfg.length, len(vocab), 0 if stand_in else len(ids))
        logits, state = run_prime(model, ids, device, check)
        stepper = make_stepper(model, state, cfg.beam, pick_precision(cfg, model, cfg.beam, device), fast)
        reorder = stepper.reorder if isinstance(stepper, FastStep) else lambda r: reorder_plain(stepper, r)
        finished = BeamEnds(cfg.stop, cfg.max_lines, vocab.symbols, vocab.kind, cfg.beam) \
            if cfg.stop or cfg.max_lines else None

        def step(x):
            if check is not None:
                check()
            return stepper.step(x.to(device))
        best = beam_search(step, reorder, logits[0], cfg.beam, cfg.length, cfg.num, finished)
        texts = [prompt + TextStream(vocab)(s, final=True) for s, _ in best]
    if on_text:
        for i, t in enumerate(texts):
            on_text(i, t)
    return texts
