"""One character per call: the sampler's steps.

`PlainStep` is the model's own forward per character (nn.LSTM & co.), the reference. `FastStep`
lays the weights out once and writes into preallocated buffers (3-7x the plain loop at batch 1 on
a CPU, see benchmarks/sample_throughput.py). Its products run at a chosen precision:

  fp32  exact (next-character probabilities within 1e-5 of the forward pass);
  bf16  weights and inputs of the recurrent products in bfloat16 (oneDNN; fast where the CPU has
        AVX512-BF16 or AMX, mostly at batch > 1);
  int8  dynamic quantisation of the recurrent products (weights int8 per output row, the input
        quantised per call; fbgemm). A quarter of fp32's bytes: the large batch-1 step is memory
        bound, so this is the lever there.

The embedding table and the head stay fp32 in every mode, and so do the gates' nonlinearities.
On CUDA an LSTM or GRU layer's gate arithmetic is one fused kernel (the one nn.LSTMCell uses)
instead of about six elementwise ones: a one-character step there is bound by kernel launches.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..core.config import UsageError, setting
from ..core.models import SequenceModel

PRECISIONS = ("fp32", "bf16", "int8")


def bf16_native() -> bool:
    """Whether PyTorch's CPU kernels compute bf16 natively here (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _vnni() -> bool:
    """Whether the CPU has VNNI (u8 x s8 products summed without int16 saturation)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_vnni", " avx_vnni", " amx_int8"))


REDUCE_RANGE = not _vnni()   # 7-bit activations where int16 sums could saturate, 8-bit otherwise


def int8_available() -> bool:
    return any(e in torch.backends.quantized.supported_engines for e in ("x86", "fbgemm"))


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the machine cannot run, naming the option and the fix."""
    if precision == "fp32":
        return
    if device.type != "cpu":
        raise UsageError(f"{setting('precision', precision)} is for CPU sampling; use "
                         f"{setting('precision', 'fp32')} on {device.type}")
    if precision == "int8" and not int8_available():
        raise UsageError(f"{setting('precision', 'int8')} needs PyTorch's fbgemm/x86 quantised kernels, "
                         f"which this build lacks; use {setting('precision', 'fp32')}")


_FUSED_OK: dict = {}


def fused_cell_ok(cell: str, like: torch.Tensor) -> bool:
    """Whether CUDA's fused LSTM/GRU pointwise kernel is here and agrees with the unfused gate
    arithmetic on a small probe (checked once per cell, device and dtype; any error means no)."""
    if like.device.type != "cuda" or like.dtype != torch.float32 or cell not in ("lstm", "gru"):
        return False
    key = (cell, str(like.device))
    if key not in _FUSED_OK:
        try:
            _FUSED_OK[key] = _fused_matches(cell, like.device)
        except Exception:   # an op missing from this build, a kernel error: keep the unfused path
            _FUSED_OK[key] = False
    return _FUSED_OK[key]


def _fused_matches(cell: str, device) -> bool:
    H, g = 8, 4 if cell == "lstm" else 3
    gi = torch.linspace(-3, 3, 2 * g * H, device=device).view(2, g * H)        # (N, G*H)
    gh = gi.flip(1) * 0.5
    hc = torch.linspace(-1, 1, 4 * H, device=device).view(2, 2 * H)[:, :H]    # strided, as hs is
    s = torch.sigmoid
    if cell == "lstm":
        hy, cy, _ = torch.ops.aten._thnn_fused_lstm_cell(gi, gh, hc)
        i, f, gg, o = (gi + gh).chunk(4, 1)
        c_ref = s(f) * hc + s(i) * torch.tanh(gg)
        ok = torch.allclose(cy, c_ref, atol=1e-5) and torch.allclose(hy, s(o) * torch.tanh(c_ref), atol=1e-5)
    else:
        hy, _ = torch.ops.aten._thnn_fused_gru_cell(gi, gh, hc)
        r, z = s(gi[:, :H] + gh[:, :H]), s(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        ok = torch.allclose(hy, n + z * (hc - n), atol=1e-5)
    return bool(ok)


class PlainStep:
    """The reference step: the model's own forward on one character per call (nn.LSTM & co.)."""

    def __init__(self, model: nn.Module, state):
        self.model, self.state = model, state

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """(N,) ids -> (N, V) next-character logits; the state moves on by one character."""
        logits, self.state = self.model(ids[:, None], self.state)
        return logits[:, -1]


class Dense:
    """y = x W^T + b at a precision. W is kept (out, in) row-major: the layout the CPU's GEMV reads
    fastest at batch 1 (about 1.4x the (in, out) layout at hidden 512)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, precision: str):
        self.precision = precision
        self.w = weight.detach().contiguous()                          # (G, K)
        self.b = None if bias is None else bias.detach().contiguous()  # (G,)
        if precision == "bf16":
            self.w = self.w.to(torch.bfloat16)
        elif precision == "int8":
            self.w = self._packed(self.w, self.b)

    @staticmethod
    def _packed(w: torch.Tensor, b: torch.Tensor | None):
        scale = (w.abs().amax(1) / 127).clamp_min(1e-12).double()     # one scale per output row
        with warnings.catch_warnings():                                # quantised tensors are "deprecated"
            warnings.simplefilter("ignore")
            q = torch.quantize_per_channel(w.float(), scale, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
            return torch.ops.quantized.linear_prepack(q, b)

    def __call__(self, x: torch.Tensor, out: torch.Tensor, add: bool = False) -> torch.Tensor:
        """Writes x W^T (+ b) into `out` (N, G), or adds it to `out` when `add`; returns `out`."""
        if self.precision == "fp32":
            if add:
                return out.addmm_(x, self.w.t())
            if self.b is None:
                return torch.mm(x, self.w.t(), out=out)
            return torch.addmm(self.b, x, self.w.t(), out=out)
        if self.precision == "int8":
            y = torch.ops.quantized.linear_dynamic(x.contiguous(), self.w, REDUCE_RANGE)   # bias inside
        else:
            y = torch.nn.functional.linear(x.to(torch.bfloat16), self.w)
            if self.b is not None:
                y = y.float().add_(self.b)
        return out.add_(y) if add else out.copy_(y)


class FastStep:
    """One character of a SequenceModel's stack per call, without the fused kernels' per-call cost.

    nn.LSTM re-lays its weights on every call, which dominates one-character steps. Here the weights
    are laid out once and every step writes into preallocated buffers:
      - layer 0's input product is folded with the embedding (or one-hot) and both biases into a
        (V, G*H) table, so it is a row lookup: table[id] = E[id] W_ih^T + b_ih + b_hh;
      - layer l >= 1 multiplies [h_{l-1} | h_l] by [W_ih, W_hh]^T once (one product, not two);
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

    def __init__(self, model: SequenceModel, n: int, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
        rnn, c = model.rnn, model.config
        self.cell, self.L, self.H, self.n, self.precision = c.cell, c.layers, c.hidden, n, precision
        g, H = self.GATES[c.cell], c.hidden
        w = lambda name, l: getattr(rnn, f"{name}_l{l}").detach()
        zero = torch.zeros(g * H, dtype=model.head.weight.dtype, device=model.head.weight.device)
        b = lambda name, l: w(name, l) if rnn.bias else zero
        if self.cell == "gru":   # b_hn stays inside r * (...); b_hr, b_hz join the input side
            in_bias = lambda l: b("bias_ih", l) + torch.cat([b("bias_hh", l)[:2 * H], zero[:H]])
            hid_bias = lambda l: torch.cat([zero[:2 * H], b("bias_hh", l)[2 * H:]])
        else:
            in_bias = lambda l: b("bias_ih", l) + b("bias_hh", l)
        x_vectors = model.embedding.weight.detach() if model.embedding is not None else None  # (V, E) or one-hot
        w_ih0 = w("weight_ih", 0)                                                   # (G*H, E)
        table = (x_vectors @ w_ih0.t()) if x_vectors is not None else w_ih0.t()
        self.table = (table + in_bias(0)).contiguous()                              # (V, G*H)
        dense = lambda weight, bias: Dense(weight, bias, precision)
        self.w_hh0 = dense(w("weight_hh", 0), None)                                 # h_0 (N, H) -> (N, G*H)
        if self.cell == "gru":
            self.w_in = [None] + [dense(w("weight_ih", l), in_bias(l)) for l in range(1, self.L)]
            self.w_hid = [dense(w("weight_hh", l), hid_bias(l)) for l in range(self.L)]
        else:   # [W_ih, W_hh] (G*H, 2H) for layers >= 1
            self.w_cat = [None] + [dense(torch.cat([w("weight_ih", l), w("weight_hh", l)], 1), in_bias(l))
                                   for l in range(1, self.L)]
        self.head = Dense(model.head.weight, model.head.bias, "fp32")               # (V, H): always exact
        new = lambda *shape: torch.zeros(*shape, dtype=self.table.dtype, device=self.table.device)
        self.hs = new(n, self.L * H)                              # (N, L*H) all hidden states
        self.c = [new(n, H) for _ in range(self.L)] if self.cell == "lstm" else None
        self.gates = new(n, g * H)
        self.gates_h = new(n, g * H) if self.cell == "gru" else None
        self.tmp = new(n, H)
        self.logits = new(n, model.head.out_features)
        self.layer = {"lstm": self._lstm, "gru": self._gru, "rnn": self._rnn}[self.cell]
        self.fused = precision == "fp32" and fused_cell_ok(self.cell, self.table)   # CUDA only
        self.no_gates = new(n, g * H) if self.fused and self.cell == "lstm" else None
        self.c_home = list(self.c) if self.c is not None else None

    def h(self, l: int) -> torch.Tensor:
        return self.hs[:, l * self.H:(l + 1) * self.H]

    def load_state(self, state) -> None:
        """Take the model's (L, N or 1, H) state (a pair for LSTM) as the starting point."""
        h = state[0] if isinstance(state, tuple) else state
        for l in range(self.L):
            self.h(l).copy_(h[l].expand(self.n, -1))
            if self.c is not None:
                self.c[l].copy_(state[1][l].expand(self.n, -1))

    def get_state(self):
        """The current state in the model's (L, N, H) layout (a pair for LSTM)."""
        h = torch.stack([self.h(l) for l in range(self.L)])
        return (h, torch.stack(self.c)) if self.c is not None else h

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the rows `rows` (N,) of the state, in that order (beam search)."""
        self.hs.copy_(self.hs[rows])
        for c in self.c or ():
            c.copy_(c[rows])

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """(N,) ids -> (N, V) next-character logits (a buffer that the next step overwrites)."""
        for l in range(self.L):
            self.layer(l, ids)
        return self.head(self.h(self.L - 1), self.logits)

    def _input_product(self, l: int, ids: torch.Tensor) -> torch.Tensor:
        """LSTM/RNN gate pre-activations (N, G*H) of layer l, both products and biases."""
        gates, H = self.gates, self.H
        if l == 0:
            torch.index_select(self.table, 0, ids, out=gates)
            return self.w_hh0(self.h(0), gates, add=True)
        return self.w_cat[l](self.hs[:, (l - 1) * H:(l + 1) * H], gates)

    def settle(self) -> None:
        """Copy each cell state back into its own buffer (the fused path hands a new tensor on per
        step; a CUDA graph replays reads from the buffers it was captured with)."""
        for l, home in enumerate(self.c_home or ()):
            if self.c[l] is not home:
                home.copy_(self.c[l])
                self.c[l] = home

    def _lstm(self, l: int, ids: torch.Tensor) -> None:
        H, c, t = self.H, self.c[l], self.tmp
        z = self._input_product(l, ids)
        if self.fused:   # one kernel: c' = f*c + i*g, h' = o*tanh(c'); c' is passed on, not copied
            hy, self.c[l], _ = torch.ops.aten._thnn_fused_lstm_cell(z, self.no_gates, c)
            self.h(l).copy_(hy)
            return
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
            self.w_in[l](self.h(l - 1), gi)
        self.w_hid[l](h, gh)
        if self.fused:   # one kernel for the gates, as below (gh carries b_hn inside r * (...))
            h.copy_(torch.ops.aten._thnn_fused_gru_cell(gi, gh, h)[0])
            return
        rz = gi[:, :2 * H].add_(gh[:, :2 * H]).sigmoid_()
        n = gi[:, 2 * H:].addcmul_(rz[:, :H], gh[:, 2 * H:]).tanh_()   # n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
        h.sub_(n).mul_(rz[:, H:]).add_(n)                              # h = n + z*(h - n)
