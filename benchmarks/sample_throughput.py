"""Sampling speed: rnnkit's `generate` against the plain loop that calls nn.LSTM once per character.

    python benchmarks/sample_throughput.py            # hidden 256 and 512, batch 1 and 32
    python benchmarks/sample_throughput.py --quick    # a short run
    python benchmarks/sample_throughput.py --runs 3   # the median of 3 fresh processes

Model: Embedding(65, 64) -> 2-layer LSTM -> Linear(65), random weights (speed does not depend on
them), temperature 1, 2 threads. Blocks of the plain loop and of rnnkit alternate after a warm-up
block each; the table shows the median chars/s of the blocks and ratios against the plain loop's
batch-1 rate measured in the same run. The plain loop is what one writes by hand:

    logits, state = lstm(embedding(x), state) -> head -> softmax -> multinomial, once per character
"""
from __future__ import annotations

import argparse
import json

from _bench import in_processes, interleaved, make_model, median, medians, table, timed

import torch

from rnnkit.config import SampleConfig
from rnnkit.sample import generate
from rnnkit.vocab import Vocab


@torch.inference_mode()
def plain_loop(model, n: int, length: int, gen: torch.Generator) -> int:
    """The reference: one nn.LSTM call per character; returns the characters drawn."""
    model.eval()
    x, state = torch.zeros(n, 1, dtype=torch.long), None
    for _ in range(length):
        out, state = model.rnn(model.embedding(x), state)                 # (N, 1, H)
        probs = torch.softmax(model.head(out[:, -1]), -1)                  # (N, V)
        x = torch.multinomial(probs, 1, generator=gen)                     # (N, 1)
    return n * length


def measure(a: argparse.Namespace) -> dict:
    """One process's chars/s per hidden size and sampler."""
    torch.set_num_threads(a.threads)
    vocab = Vocab([chr(c) for c in range(32, 97)])                          # 65 symbols
    gen = torch.Generator().manual_seed(0)
    figures = {}
    for hidden in a.hidden:
        model = make_model(hidden, len(vocab)).eval()

        def rnnkit(n: int):
            cfg = SampleConfig(length=a.length, num=n, seed=1, temperature=1.0)
            return lambda: timed(lambda: (generate(model, vocab, cfg), n * a.length)[1])

        runs = {"plain, batch 1": lambda: timed(lambda: plain_loop(model, 1, a.length, gen)),
                "rnnkit, batch 1": rnnkit(1),
                "plain, batch 32": lambda: timed(lambda: plain_loop(model, 32, a.length, gen)),
                "rnnkit, batch 32": rnnkit(32)}
        figures |= {f"{k}|{hidden}": median(v) for k, v in interleaved(runs, a.blocks).items()}
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks per variant (median taken)")
    ap.add_argument("--length", type=int, default=400, help="characters per sample in a block")
    ap.add_argument("--runs", type=int, default=1, help="repeat in this many fresh processes (median taken)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="3 blocks of 100 characters")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.quick:
        a.blocks, a.length = 3, 100
    if a.json:
        print(json.dumps(measure(a)))
        return
    argv = ["--hidden", *map(str, a.hidden), "--blocks", str(a.blocks), "--length", str(a.length),
            "--threads", str(a.threads)]
    runs = in_processes(__file__, argv, a.runs) if a.runs > 1 else [measure(a)]
    f = medians(runs)
    rows, summary = [], []
    for hidden in a.hidden:
        base = f[f"plain, batch 1|{hidden}"]
        for name in ("plain, batch 1", "rnnkit, batch 1", "plain, batch 32", "rnnkit, batch 32"):
            rows.append([f"H{hidden}", name, f"{f[f'{name}|{hidden}']:,.0f}", f"{f[f'{name}|{hidden}'] / base:.2f}x"])
        each = ", ".join(f"{r[f'rnnkit, batch 1|{hidden}'] / r[f'plain, batch 1|{hidden}']:.2f}" for r in runs)
        summary.append(f"H{hidden}: batch 1 {f[f'rnnkit, batch 1|{hidden}'] / base:.2f}x the plain loop (per process: "
                       f"{each}; target >= 3x); batch 32 {f[f'rnnkit, batch 32|{hidden}'] / base:.1f}x its batch-1 "
                       "rate (target >= 20x)")
    print(f"sampling, chars/s, medians over {len(runs)} process(es) of the medians of {a.blocks} blocks of "
          f"{a.length} steps, {a.threads} threads, torch {torch.__version__}")
    print(table(["model", "sampler", "chars/s", "vs plain batch 1"], rows))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
