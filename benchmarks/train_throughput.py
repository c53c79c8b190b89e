"""Training speed: rnnkit's real training path against a minimal plain-PyTorch loop.

    python benchmarks/train_throughput.py             # hidden 256 and 512, blocks of 200 steps
    python benchmarks/train_throughput.py --quick     # blocks of 25 steps, cadence scaled to match
    python benchmarks/train_throughput.py --vs-keras  # add Keras when TensorFlow is installed

Both train Embedding(65, 64) -> 2-layer LSTM -> Linear(65) on ../shared/data/tinyshakespeare.txt,
seq 100, batch 64, Adam (lr 2e-3), gradient clipping at 1, 2 threads, char-rnn streams with the
state carried. rnnkit runs through `train_lm` whole: its memory-mapped ids, stream batches,
Trainer, logging (every 20 steps), evaluation (100,000 chars every 200 steps, with a 200-char
sample) and `last`/`best` checkpoints (every 200 steps). A block is one such cadence period, so
every rnnkit block pays for one evaluation and one checkpoint. Blocks of the plain loop run
between rnnkit's blocks (taken out of rnnkit's clock), so a busy machine slows both alike.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from _bench import median, make_model, need_data, table

import numpy as np
import torch
import torch.nn.functional as F

import rnnkit.lm
from rnnkit.config import TrainConfig
from rnnkit.windows import StreamBatches

SEQ, BATCH, LR = 100, 64, 2e-3


class PlainLoop:
    """What one writes by hand: streams of the text, carried state, Adam, clipping."""

    def __init__(self, ids: np.ndarray, hidden: int, vocab_size: int):
        self.model = make_model(hidden, vocab_size).train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        length = (len(ids) - 1) // BATCH
        data = torch.from_numpy(ids.astype(np.int64))
        self.x = data[: BATCH * length].view(BATCH, length)                 # (B, L)
        self.y = data[1: BATCH * length + 1].view(BATCH, length)
        self.steps_per_epoch, self.j, self.state = length // SEQ, 0, None

    def block(self, steps: int) -> float:
        """chars/s of `steps` training steps."""
        t = time.perf_counter()
        m = self.model
        for _ in range(steps):
            if self.j % self.steps_per_epoch == 0:
                self.state = None
            at = (self.j % self.steps_per_epoch) * SEQ
            x, y = self.x[:, at: at + SEQ], self.y[:, at: at + SEQ]
            out, state = m.rnn(m.embedding(x), self.state)
            logits = m.head(out)                                             # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            self.opt.step()
            self.state = tuple(s.detach() for s in state)
            self.j += 1
        return steps * SEQ * BATCH / (time.perf_counter() - t)


def race(data: Path, hidden: int, blocks: int, block: int, warmup: int, cadence: dict, threads: int) -> dict:
    """Median chars/s of rnnkit and the plain loop, blocks interleaved inside one rnnkit run."""
    text = data.read_text(encoding="utf-8")
    symbols = sorted(set(text))
    ids = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ids = np.searchsorted(np.array([ord(c) for c in symbols]), ids).astype(np.uint8)
    plain = PlainLoop(ids[: int(len(ids) * 0.9)], hidden, len(symbols))
    rates = {"plain": [], "rnnkit": []}
    clock = {"start": None}

    def at_step(step: int) -> None:
        """Called as rnnkit fetches the batch of `step`: close rnnkit's block, run a plain block."""
        if step < warmup or (step - warmup) % block:
            return
        now = time.perf_counter()
        if clock["start"] is not None:
            rates["rnnkit"].append(block * SEQ * BATCH / (now - clock["start"]))
        if step == warmup:
            plain.block(warmup)
        if len(rates["plain"]) < blocks:
            rates["plain"].append(plain.block(block))
        clock["start"] = time.perf_counter()

    class TimedBatches(StreamBatches):
        def get(self, step, device="cpu"):
            at_step(step)
            return super().get(step, device)

    cfg = TrainConfig(files=[str(data)], seq_len=SEQ, batch=BATCH, lr=LR, threads=threads,
                      max_steps=warmup + blocks * block + 1, **cadence)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        real = rnnkit.lm.StreamBatches
        rnnkit.lm.StreamBatches = TimedBatches
        try:
            rnnkit.lm.train_lm(cfg, make_model(hidden).config, Path(tmp) / "run")
        finally:
            rnnkit.lm.StreamBatches = real
    pairs = [r / p for r, p in zip(rates["rnnkit"], rates["plain"])]    # neighbours in time
    return {k: median(v) for k, v in rates.items()} | {"ratio": median(pairs)}


def keras_rate(data: Path, hidden: int, steps: int) -> float | None:
    """chars/s of the same model trained with Keras `fit` (None without TensorFlow)."""
    try:
        import keras
    except ImportError:
        return None
    text = data.read_text(encoding="utf-8")
    symbols = sorted(set(text))
    index = {c: i for i, c in enumerate(symbols)}
    ids = np.array([index[c] for c in text[: (steps + 1) * SEQ * BATCH + 1]], dtype=np.int32)
    n = (len(ids) - 1) // SEQ
    x, y = ids[: n * SEQ].reshape(n, SEQ), ids[1: n * SEQ + 1].reshape(n, SEQ)
    model = keras.Sequential([keras.layers.Embedding(len(symbols), 64),
                              keras.layers.LSTM(hidden, return_sequences=True),
                              keras.layers.LSTM(hidden, return_sequences=True),
                              keras.layers.Dense(len(symbols))])
    model.compile(optimizer=keras.optimizers.Adam(LR, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, epochs=1, verbose=0)     # build, warm up
    t = time.perf_counter()
    model.fit(x[:BATCH * steps], y[:BATCH * steps], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return steps * SEQ * BATCH / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--blocks", type=int, default=3, help="timed blocks per side (median taken)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="blocks of 25 steps; evaluation, checkpoints and logging scaled by 1/8")
    ap.add_argument("--vs-keras", action="store_true", help="also time Keras fit (needs TensorFlow)")
    a = ap.parse_args()
    data = need_data()
    torch.set_num_threads(a.threads)
    if a.quick:
        block, cadence = 25, dict(eval_every=25, save_every=25, log_every=5, eval_chars=12_500, sample_chars=25)
    else:
        block, cadence = 200, {}          # rnnkit's defaults: eval and save every 200 steps
    rows, summary = [], []
    for hidden in a.hidden:
        r = race(data, hidden, a.blocks, block, warmup=5, cadence=cadence, threads=a.threads)
        rows.append([f"H{hidden}", "plain PyTorch loop", f"{r['plain']:,.0f}", "1.00x"])
        rows.append([f"H{hidden}", "rnnkit train", f"{r['rnnkit']:,.0f}", f"{r['rnnkit'] / r['plain']:.2f}x"])
        summary.append(f"H{hidden}: rnnkit {r['rnnkit'] / r['plain']:.3f}x the plain loop, median ratio of "
                       f"neighbouring blocks {r['ratio']:.3f}x (target >= 0.95x)")
        if a.vs_keras:
            k = keras_rate(data, hidden, block)
            if k is None:
                summary.append("Keras: skipped (TensorFlow is not installed)")
            else:
                rows.append([f"H{hidden}", "Keras fit", f"{k:,.0f}", f"{k / r['plain']:.2f}x"])
    print(f"training, chars/s, median of {a.blocks} blocks of {block} steps, {a.threads} threads, "
          f"torch {torch.__version__}")
    print(table(["model", "trainer", "chars/s", "vs plain"], rows))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
