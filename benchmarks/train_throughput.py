"""Training speed: rnnkit's real training path against a minimal plain-PyTorch loop.

    python benchmarks/train_throughput.py             # hidden 256 and 512, blocks of 200 steps
    python benchmarks/train_throughput.py --quick     # blocks of 25 steps, cadence scaled to match
    python benchmarks/train_throughput.py --vs-keras  # add Keras when TensorFlow is installed
    python benchmarks/train_throughput.py --quick --runs 3   # the median of 3 fresh processes
    python benchmarks/train_throughput.py --recipe --hidden  # the recipe (`rnnkit train`'s defaults)
                                                      # against the plain fp32 2x256 reference loop

Both train Embedding(65, 64) -> 2-layer LSTM -> Linear(65) (no regularisers, PyTorch's
initialisation: the same work; until 2026-12-08 rnnkit's row also ran ModelConfig's default weight
drop and locked dropout) on ../shared/data/tinyshakespeare.txt,
seq 100, batch 64, Adam (lr 2e-3), gradient clipping at 1, 2 threads, char-rnn streams with the
state carried. rnnkit runs through `train_lm` whole: its memory-mapped ids, stream batches,
Trainer, logging (every 20 steps), evaluation (50,000 chars every 200 steps, with a 200-char
sample) and `last`/`best` checkpoints (every 200 steps). A block is one such cadence period, so
every rnnkit block pays for one evaluation and one checkpoint. Blocks of the plain loop run
between rnnkit's blocks (taken out of rnnkit's clock), so a busy machine slows both alike.

--recipe adds a row where rnnkit trains its recommended recipe (`rnnkit train`'s default model and
precision, regularisers included) and the plain loop is the fp32 2x256 reference: the speed side of
benchmarks/time_to_quality.py.

--vs-keras times the same model with Keras `fit` (stateless windows, Adam, clipnorm 1), its blocks
interleaved with plain-loop blocks of their own; TensorFlow is not a dependency of rnnkit: install
it beside (`pip install tensorflow-cpu==2.21.0`) to compare.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import rnnkit.text.lm
from _bench import (
    encode_text,
    in_processes,
    interleaved,
    machine,
    make_model,
    median,
    medians,
    need_data,
    streams,
    table,
)
from rnnkit.core.config import ModelConfig, TrainConfig
from rnnkit.core.windows import StreamBatches

SEQ, BATCH, LR = 100, 64, 2e-3


class PlainLoop:
    """What one writes by hand: streams of the text, carried state, Adam, clipping."""

    def __init__(self, ids: np.ndarray, hidden: int, vocab_size: int):
        self.model = make_model(hidden, vocab_size).train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.x, self.y, self.steps_per_epoch = streams(ids, BATCH, SEQ)      # (B, L) each
        self.j, self.state = 0, None

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


def race(data: Path, hidden: int | str, blocks: int, block: int, warmup: int, cadence: dict, threads: int) -> dict:
    """Median chars/s of rnnkit and the plain loop, blocks interleaved inside one rnnkit run.
    hidden "recipe": rnnkit trains its default model against the plain 2x256 loop."""
    ids, vocab_size = encode_text(data.read_text(encoding="utf-8"))
    recipe = hidden == "recipe"
    plain = PlainLoop(ids[: int(len(ids) * 0.9)], 256 if recipe else hidden, vocab_size)
    model_cfg = ModelConfig(vocab_size=vocab_size) if recipe else make_model(hidden).config
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

    # the plain loop's Adam has no weight decay; only the recipe row keeps rnnkit's default
    decay = {} if recipe else {"weight_decay": 0.0}
    cfg = TrainConfig(files=[str(data)], seq_len=SEQ, batch=BATCH, lr=LR, threads=threads,
                      max_steps=warmup + blocks * block + 1, **cadence, **decay)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        real = rnnkit.text.lm.StreamBatches
        rnnkit.text.lm.StreamBatches = TimedBatches
        try:
            rnnkit.text.lm.train_lm(cfg, model_cfg, Path(tmp) / "run")
        finally:
            rnnkit.text.lm.StreamBatches = real
    pairs = [r / p for r, p in zip(rates["rnnkit"], rates["plain"])]    # neighbours in time
    return {k: median(v) for k, v in rates.items()} | {"ratio": median(pairs)}


def keras_model(vocab_size: int, hidden: int, threads: int):
    """The same model compiled for Keras `fit` (None without TensorFlow)."""
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None
    with contextlib.suppress(RuntimeError):  # only possible before TensorFlow's first op
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = keras.Sequential([keras.Input((SEQ,), dtype="int32"),
                              keras.layers.Embedding(vocab_size, 64),
                              keras.layers.LSTM(hidden, return_sequences=True),
                              keras.layers.LSTM(hidden, return_sequences=True),
                              keras.layers.Dense(vocab_size)])
    model.compile(optimizer=keras.optimizers.Adam(LR, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def versus_keras(data: Path, hidden: int, blocks: int, block: int, threads: int) -> dict | None:
    """Median chars/s of Keras `fit` and of the plain loop, blocks interleaved (None without
    TensorFlow). Keras trains on consecutive windows, stateless, as `fit` does by default."""
    ids, vocab_size = encode_text(data.read_text(encoding="utf-8"))
    model = keras_model(vocab_size, hidden, threads)
    if model is None:
        return None
    n = (len(ids) - 1) // SEQ
    x = ids[: n * SEQ].reshape(n, SEQ).astype(np.int32)
    y = ids[1: n * SEQ + 1].reshape(n, SEQ).astype(np.int32)
    plain = PlainLoop(ids[: int(len(ids) * 0.9)], hidden, vocab_size)
    rows, starts = BATCH * block, iter(range(0, n - BATCH * block, BATCH * block))

    def keras_block() -> float:
        at = next(starts)
        t = time.perf_counter()
        model.fit(x[at: at + rows], y[at: at + rows], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        return rows * SEQ / (time.perf_counter() - t)

    rates = interleaved({"plain": lambda: plain.block(block), "keras": keras_block}, blocks)
    pairs = [k / p for k, p in zip(rates["keras"], rates["plain"])]
    return {k: median(v) for k, v in rates.items()} | {"ratio": median(pairs)}


def sizes(a: argparse.Namespace) -> list:
    return [*a.hidden] + ["recipe"] * a.recipe


def recipe_name() -> str:
    m, t = ModelConfig(), TrainConfig()
    return f"recipe {m.layers}x{m.hidden} {t.precision}"


def measure(a: argparse.Namespace, data: Path) -> dict:
    """One process's figures: chars/s and ratios per hidden size."""
    torch.set_num_threads(a.threads)
    if a.quick:
        block, cadence = 25, dict(eval_every=25, save_every=25, log_every=5, eval_chars=6_250, sample_chars=25)
    else:
        block, cadence = 200, {}          # rnnkit's defaults: eval and save every 200 steps
    figures = {}
    for hidden in sizes(a):
        r = race(data, hidden, a.blocks, block, warmup=5, cadence=cadence, threads=a.threads)
        figures |= {f"{k}.{hidden}": v for k, v in r.items()}
        k = versus_keras(data, hidden, a.blocks, block, a.threads) if a.vs_keras and hidden != "recipe" else None
        if k is not None:
            figures |= {f"keras_{n}.{hidden}": v for n, v in k.items()}
    return figures


def report(a: argparse.Namespace, runs: list[dict]) -> None:
    f = medians(runs)
    rows, summary = [], []
    for h in sizes(a):
        label, plain = (recipe_name(), "H256 fp32") if h == "recipe" else (f"H{h}", f"H{h}")
        rows.append([plain, "plain PyTorch loop", f"{f[f'plain.{h}']:,.0f}", "1.00x"])
        rows.append([label, "rnnkit train", f"{f[f'rnnkit.{h}']:,.0f}", f"{f[f'ratio.{h}']:.2f}x"])
        each = ", ".join(f"{r[f'ratio.{h}']:.3f}" for r in runs)
        summary.append(f"{label}: rnnkit {f[f'ratio.{h}']:.3f}x the plain loop (median ratio of neighbouring "
                       f"blocks; per process: {each}" + ("; target >= 0.95x)" if h != "recipe" else ")"))
        if f"keras_ratio.{h}" in f:
            rows.append([f"H{h}", "Keras fit", f"{f[f'keras_keras.{h}']:,.0f}", f"{f[f'keras_ratio.{h}']:.2f}x"])
            summary.append(f"H{h}: rnnkit {f[f'ratio.{h}'] / f[f'keras_ratio.{h}']:.2f}x Keras fit "
                           "(each as a ratio to plain blocks timed beside it)")
        elif a.vs_keras:
            summary.append("Keras: skipped (TensorFlow is not installed)")
    block = 25 if a.quick else 200
    print(machine())
    print(f"training, chars/s, medians over {len(runs)} process(es) of the medians of {a.blocks} blocks "
          f"of {block} steps, {a.threads} threads, torch {torch.__version__}")
    print(table(["model", "trainer", "chars/s", "vs plain"], rows))
    print("\n".join(summary))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="*", default=[256, 512])
    ap.add_argument("--recipe", action="store_true", help="also race the recipe against the plain 2x256 loop")
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks per side (median taken)")
    ap.add_argument("--runs", type=int, default=1, help="repeat in this many fresh processes (median taken)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="blocks of 25 steps; evaluation, checkpoints and logging scaled by 1/8")
    ap.add_argument("--vs-keras", action="store_true", help="also time Keras fit (needs TensorFlow)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    data = need_data()
    if a.json:
        print(json.dumps(measure(a, data)))
        return
    argv = ["--hidden", *map(str, a.hidden), "--blocks", str(a.blocks), "--threads", str(a.threads)]
    argv += ["--quick"] * a.quick + ["--vs-keras"] * a.vs_keras + ["--recipe"] * a.recipe
    report(a, in_processes(__file__, argv, a.runs) if a.runs > 1 else [measure(a, data)])


if __name__ == "__main__":
    main()
