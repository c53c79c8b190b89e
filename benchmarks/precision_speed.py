"""Training speed of fp32 against bf16 autocast on this CPU, for a plain nn.LSTM loop.

    python benchmarks/precision_speed.py                        # hidden 256, 384, 512
    python benchmarks/precision_speed.py --hidden 256 --blocks 3 --steps 10

The loop is the issue's: Embedding(65, 64) -> 2-layer LSTM (dropout 0.2) -> Linear(65), batch 64,
seq 100, state carried, clipping at 1, fused AdamW; bf16 wraps the forward in
`torch.autocast("cpu", torch.bfloat16)` (weights, optimizer state and loss stay fp32). fp32 and bf16
blocks alternate, so a busy machine slows both alike; the medians and their ratio are printed with
the CPU's name and whether oneDNN reports native bf16 (what `--precision auto` asks).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _bench import interleaved, machine, median, need_data, streams, table

SEQ, BATCH, LR = 100, 64, 2e-3
CLOCK = [time.perf_counter]   # or time.process_time (--cpu-time): the cost, whatever else runs


class Loop:
    """Streams of the text, carried state, clipping, fused AdamW; `bf16` autocasts the forward."""

    def __init__(self, ids: np.ndarray, hidden: int, bf16: bool, seed: int = 0):
        torch.manual_seed(seed)
        self.emb, self.rnn = nn.Embedding(65, 64), nn.LSTM(64, hidden, 2, batch_first=True, dropout=0.2)
        self.head = nn.Linear(hidden, 65)
        self.params = [*self.emb.parameters(), *self.rnn.parameters(), *self.head.parameters()]
        self.opt = torch.optim.AdamW(self.params, lr=LR, weight_decay=0.0, fused=True)
        self.bf16 = bf16
        self.x, self.y, self.steps_per_epoch = streams(ids, BATCH, SEQ)      # (B, L) each
        self.j, self.state = 0, None

    def block(self, steps: int) -> float:
        """chars/s of `steps` training steps (per CPU second of this process with --cpu-time)."""
        t = CLOCK[0]()
        for _ in range(steps):
            at = (self.j % self.steps_per_epoch) * SEQ
            x, y = self.x[:, at: at + SEQ], self.y[:, at: at + SEQ]
            with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
                out, state = self.rnn(self.emb(x), self.state)
                logits = self.head(F.dropout(out, 0.2))                      # (B, T, V)
            loss = F.cross_entropy(logits.float().reshape(-1, 65), y.reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            self.state = tuple(s.detach().float() for s in state)
            self.j += 1
        return steps * SEQ * BATCH / (CLOCK[0]() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 384, 512])
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks per precision (median taken)")
    ap.add_argument("--steps", type=int, default=20, help="steps per block")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpu-time", action="store_true",
                    help="rate per CPU second of this process, not per wall second (a shared machine: "
                         "use with --threads 1, where waiting threads cost nothing)")
    a = ap.parse_args()
    if a.cpu_time:
        CLOCK[0] = time.process_time
    torch.set_num_threads(a.threads)
    text = need_data().read_text(encoding="utf-8")
    symbols = sorted(set(text))
    lookup = {c: i for i, c in enumerate(symbols)}
    ids = np.array([lookup[c] for c in text[: 400_000]], dtype=np.uint8)
    rows, figures = [], {}
    for h in a.hidden:
        loops = {"fp32": Loop(ids, h, False), "bf16": Loop(ids, h, True)}
        try:
            loops["bf16"].block(1)
        except RuntimeError as e:   # oneDNN without a bf16 LSTM for this CPU (seen: AVX2-only AMD EPYC)
            f32 = median(interleaved({"fp32": lambda: loops["fp32"].block(a.steps)}, a.blocks)["fp32"])
            why = (str(e).strip().splitlines() or ["RuntimeError"])[0][:120]
            print(f"H{h}: bf16 does not run on this CPU ({why})", file=sys.stderr, flush=True)
            rows.append([f"H{h}", f"{f32:,.0f}", "n/a", "n/a"])
            figures[h] = {"fp32": f32, "bf16": None, "ratio": None}
            continue
        rates = interleaved({k: (lambda lp=lp: lp.block(a.steps)) for k, lp in loops.items()}, a.blocks)
        f32, b16 = median(rates["fp32"]), median(rates["bf16"])
        pairs = median([b / f for b, f in zip(rates["bf16"], rates["fp32"])])
        figures[h] = {"fp32": f32, "bf16": b16, "ratio": pairs}
        rows.append([f"H{h}", f"{f32:,.0f}", f"{b16:,.0f}", f"{pairs:.2f}x"])
        print(f"H{h}: fp32 {f32:,.0f}, bf16 {b16:,.0f} chars/s ({pairs:.2f}x)", file=sys.stderr, flush=True)
    print(f"{machine()}; {a.threads} threads asked; "
          f"medians of {a.blocks} blocks of {a.steps} steps, per {'CPU' if a.cpu_time else 'wall'} second")
    print(table(["model", "fp32 chars/s", "bf16 chars/s", "bf16 / fp32"], rows))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
