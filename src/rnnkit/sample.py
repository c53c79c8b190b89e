"""Generation: prime the model with a prompt, then draw one character at a time.

Temperature divides the logits (0 means greedy), top-k keeps the K most likely characters. The same
seed gives the same text. `generate` streams each new character to a callback as it is drawn.

After the prompt (one call of the model's fused forward), characters come from `FastStep`, a
per-layer step over buffers laid out once (3-7x the speed of calling nn.LSTM per character on a
CPU, see benchmarks/sample_throughput.py), and are drawn by `Picker` (Gumbel-max). `PlainStep`,
the model's own forward per character, is the reference the tests hold the fast step to.
"""
from __future__ import annotations

import codecs
from typing import Callable, Optional

import torch
from torch import nn

from .config import SampleConfig
from .models import SequenceModel
from .vocab import Vocab

CHUNK = 1024  # sampling steps whose noise is drawn at once (and decoded at once when not streaming)


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


class PlainStep:
    """The reference step: the model's own forward on one character per call (nn.LSTM & co.)."""

    def __init__(self, model: nn.Module, state):
        self.model, self.state = model, state

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """(N,) ids -> (N, V) next-character logits; the state moves on by one character."""
        logits, self.state = self.model(ids[:, None], self.state)
        return logits[:, -1]


class FastStep:
    """One character of a SequenceModel's stack per call, without the fused kernels' per-call cost.

    nn.LSTM re-lays its weights on every call, which dominates one-character steps. Here the weights
    are laid out once and every step writes into preallocated buffers:
      - layer 0's input product is folded with the embedding (or one-hot) and both biases into a
        (V, G*H) table, so it is a row lookup: table[id] = E[id] W_ih^T + b_ih + b_hh;
      - layer l >= 1 multiplies [h_{l-1} | h_l] by [W_ih; W_hh]^T once (one product, not two);
      - all hidden states live side by side in one (N, L*H) buffer, so [h_{l-1} | h_l] is a
        contiguous window of it and nothing is copied between layers:

            hs: | h_0 | h_1 | ... | h_{L-1} |      layer l reads hs[:, (l-1)H:(l+1)H], writes h_l

    Gate orders follow PyTorch: LSTM i, f, g, o; GRU r, z, n with n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn)). `supports(model)` says whether a model can take this path.
    """

    GATES = {"lstm": 4, "gru": 3, "rnn": 1}

    @staticmethod
    def supports(model: nn.Module) -> bool:
        rnn = getattr(model, "rnn", None)
        cell = getattr(getattr(model, "config", None), "cell", None)
        return (isinstance(model, SequenceModel) and isinstance(rnn, nn.RNNBase) and cell in FastStep.GATES
                and not rnn.bidirectional and getattr(rnn, "proj_size", 0) == 0 and rnn.batch_first
                and getattr(rnn, "nonlinearity", "tanh") == "tanh")

    def __init__(self, model: SequenceModel, n: int):
        rnn, c = model.rnn, model.config
        self.cell, self.L, self.H, self.n = c.cell, c.layers, c.hidden, n
        g, H = self.GATES[c.cell], c.hidden
        w = lambda name, l: getattr(rnn, f"{name}_l{l}")
        zero = torch.zeros(g * H, dtype=model.head.weight.dtype, device=model.head.weight.device)
        b = lambda name, l: getattr(rnn, f"{name}_l{l}") if rnn.bias else zero
        if self.cell == "gru":   # b_hn stays inside r * (...); b_hr, b_hz join the input side
            in_bias = lambda l: b("bias_ih", l) + torch.cat([b("bias_hh", l)[:2 * H], zero[:H]])
            hid_bias = lambda l: torch.cat([zero[:2 * H], b("bias_hh", l)[2 * H:]])
        else:
            in_bias = lambda l: b("bias_ih", l) + b("bias_hh", l)
        x_vectors = model.embedding.weight if model.embedding is not None else None   # (V, E) or one-hot
        w_ih0 = w("weight_ih", 0)                                                   # (G*H, E)
        self.table = ((x_vectors @ w_ih0.t()) if x_vectors is not None else w_ih0.t()) + in_bias(0)  # (V, G*H)
        self.table = self.table.contiguous()
        self.w_hh0 = w("weight_hh", 0).t().contiguous()                              # (H, G*H)
        if self.cell == "gru":
            self.w_in = [None] + [w("weight_ih", l).t().contiguous() for l in range(1, self.L)]  # (H, 3H)
            self.w_hid = [w("weight_hh", l).t().contiguous() for l in range(self.L)]             # (H, 3H)
            self.b_in = [None] + [in_bias(l)[None] for l in range(1, self.L)]
            self.b_hid = [hid_bias(l)[None] for l in range(self.L)]
        else:   # (2H, G*H): [W_ih; W_hh]^T for layers >= 1
            self.w_cat = [None] + [torch.cat([w("weight_ih", l), w("weight_hh", l)], 1).t().contiguous()
                                   for l in range(1, self.L)]
            self.b_cat = [None] + [in_bias(l)[None] for l in range(1, self.L)]
        self.w_head, self.b_head = model.head.weight.t().contiguous(), model.head.bias[None]  # (H, V), (1, V)
        new = lambda *shape: torch.zeros(*shape, dtype=self.table.dtype, device=self.table.device)
        self.hs = new(n, self.L * H)                              # (N, L*H) all hidden states
        self.c = [new(n, H) for _ in range(self.L)] if self.cell == "lstm" else None
        self.gates = new(n, g * H)
        self.gates_h = new(n, g * H) if self.cell == "gru" else None
        self.tmp = new(n, H)
        self.logits = new(n, model.head.out_features)

    def h(self, l: int) -> torch.Tensor:
        return self.hs[:, l * self.H:(l + 1) * self.H]

    def load_state(self, state) -> None:
        """Take the model's (L, N or 1, H) state (a pair for LSTM) as the starting point."""
        h = state[0] if isinstance(state, tuple) else state
        for l in range(self.L):
            self.h(l).copy_(h[l].expand(self.n, -1))
            if self.c is not None:
                self.c[l].copy_(state[1][l].expand(self.n, -1))

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """(N,) ids -> (N, V) next-character logits (a buffer that the next step overwrites)."""
        layer = {"lstm": self._lstm, "gru": self._gru, "rnn": self._rnn}[self.cell]
        for l in range(self.L):
            layer(l, ids)
        return torch.addmm(self.b_head, self.h(self.L - 1), self.w_head, out=self.logits)

    def _input_product(self, l: int, ids: torch.Tensor) -> torch.Tensor:
        """LSTM/RNN gate pre-activations (N, G*H) of layer l, both products and biases."""
        gates, H = self.gates, self.H
        if l == 0:
            torch.index_select(self.table, 0, ids, out=gates)
            return gates.addmm_(self.h(0), self.w_hh0)
        return torch.addmm(self.b_cat[l], self.hs[:, (l - 1) * H:(l + 1) * H], self.w_cat[l], out=gates)

    def _lstm(self, l: int, ids: torch.Tensor) -> None:
        H, c, t = self.H, self.c[l], self.tmp
        z = self._input_product(l, ids)
        torch.tanh(z[:, 2 * H:3 * H], out=t)        # g
        z.sigmoid_()                                 # i, f, (g unused), o
        c.mul_(z[:, H:2 * H]).addcmul_(z[:, :H], t)  # c = f*c + i*g
        torch.tanh(c, out=t)
        torch.mul(z[:, 3 * H:], t, out=self.h(l))    # h = o * tanh(c)

    def _rnn(self, l: int, ids: torch.Tensor) -> None:
        torch.tanh(self._input_product(l, ids), out=self.h(l))

    def _gru(self, l: int, ids: torch.Tensor) -> None:
        H, gi, gh, h = self.H, self.gates, self.gates_h, self.h(l)
        if l == 0:
            torch.index_select(self.table, 0, ids, out=gi)
        else:
            torch.addmm(self.b_in[l], self.h(l - 1), self.w_in[l], out=gi)
        torch.addmm(self.b_hid[l], h, self.w_hid[l], out=gh)
        rz = gi[:, :2 * H].add_(gh[:, :2 * H]).sigmoid_()
        n = gi[:, 2 * H:].addcmul_(rz[:, :H], gh[:, 2 * H:]).tanh_()   # n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
        h.sub_(n).mul_(rz[:, H:]).add_(n)                              # h = n + z*(h - n)


class Picker:
    """Draws the next ids from (N, V) logits. Sampling is Gumbel-max: argmax(logits + T*g) with
    g = -log(-log(u)) is a draw from softmax(logits / T). The noise for `chunk` steps is drawn at
    once from the seeded generator, so a seed fixes the text and a step costs two small ops."""

    def __init__(self, cfg: SampleConfig, n: int, vocab_size: int, gen: torch.Generator, device, chunk: int):
        self.greedy = cfg.greedy or cfg.temperature == 0
        self.t, self.gen, self.device, self.chunk = cfg.temperature, gen, device, chunk
        self.k = cfg.top_k if cfg.top_k is not None and cfg.top_k < vocab_size else None
        self.shape = (chunk, n, self.k or vocab_size)
        self.noise = None
        self.scratch = torch.empty(n, self.shape[2], device=device)
        self.at = torch.empty(n, 1, dtype=torch.long, device=device)

    def __call__(self, logits: torch.Tensor, step: int, out: torch.Tensor) -> torch.Tensor:
        """Writes the drawn ids (N,) of sampling step `step` into `out`."""
        if self.greedy:
            return torch.argmax(logits, 1, out=out)
        if step % self.chunk == 0:
            u = torch.rand(self.shape, generator=self.gen, device=self.device)
            self.noise = u.log_().neg_().log_().neg_().mul_(self.t)                # T * Gumbel(0, 1)
        g = self.noise[step % self.chunk]
        if self.k is None:
            return torch.argmax(torch.add(logits.float(), g, out=self.scratch), 1, out=out)
        vals, idx = torch.topk(logits.float(), self.k, dim=1)
        torch.argmax(vals.add_(g), 1, keepdim=True, out=self.at)
        return torch.gather(idx, 1, self.at, out=out[:, None])[:, 0]


@torch.inference_mode()
def generate(model: SequenceModel, vocab: Vocab, cfg: SampleConfig,
             on_text: Optional[Callable[[int, str], None]] = None, fast: bool = True) -> list[str]:
    """`cfg.num` samples of `cfg.length` new characters after `cfg.prime`, as one batch.
    Each sample's text (prime included) is returned; `on_text(i, piece)` sees it as it grows.
    `fast=False` steps with the model's own forward (the reference the fast path is tested against)."""
    cfg.validate()
    model.eval()
    n, device = cfg.num, next(model.parameters()).device
    ids, stand_in = start_ids(vocab, cfg.prime, cfg.unknown)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    streams = [TextStream(vocab) for _ in range(n)]
    prompt = "" if stand_in else streams[0](ids)
    out = [prompt] * n

    def emit(rows: list[list[int]], final: bool = False) -> None:
        for i, row in enumerate(rows):
            piece = streams[i](row, final)
            out[i] += piece
            if on_text and piece:
                on_text(i, piece)

    if on_text and prompt:
        for i in range(n):
            on_text(i, prompt)
    logits, state = model(torch.tensor([ids], device=device))        # the prompt once: (1, P, V)
    logits = logits[:, -1].expand(n, -1)                              # (N, V), the same for every sample
    if fast and FastStep.supports(model):
        stepper = FastStep(model, n)
        stepper.load_state(state)
    else:
        expand = lambda s: s.expand(-1, n, -1).contiguous()
        stepper = PlainStep(model, tuple(map(expand, state)) if isinstance(state, tuple)
                            else expand(state) if state is not None else None)
    chunk = min(cfg.length, CHUNK)
    pick = Picker(cfg, n, logits.shape[-1], gen, device, chunk)
    drawn = torch.empty(chunk, n, dtype=torch.long, device=device)   # ids of the current chunk
    for t in range(cfg.length):
        k = t % chunk
        nxt = pick(logits, t, drawn[k])                               # (N,)
        if on_text:                       # stream every character; otherwise decode once a chunk
            emit([[c] for c in drawn[k].tolist()])
        elif k == chunk - 1 or t == cfg.length - 1:
            emit(drawn[:k + 1].t().tolist())
        if t < cfg.length - 1:
            logits = stepper.step(nxt)
    emit([[] for _ in range(n)], final=True)
    return out
