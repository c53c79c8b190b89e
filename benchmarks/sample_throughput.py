"""Sampling speed: rnnkit's `generate` against the plain loop that calls nn.LSTM once per character.

    python benchmarks/sample_throughput.py            # hidden 256 and 512, batch 1 and 32, 1 and 2 threads
    python benchmarks/sample_throughput.py --quick    # a short run
    python benchmarks/sample_throughput.py --runs 3   # the median of 3 fresh processes

Model: Embedding(65, 64) -> 2-layer LSTM -> Linear(65), random weights (speed does not depend on
them), temperature 1. Each variant runs at every thread count of --threads; blocks of all variants
alternate after a warm-up block each (a busy machine slows them alike), and each variant is shown
at its best thread count (the median chars/s of its blocks). The ratios compare rnnkit at its best
with the plain loop at its best, measured in the same run. The plain loop is what one writes by hand:

    logits, state = lstm(embedding(x), state) -> head -> softmax -> multinomial, once per character

rnnkit variants: --precision fp32 (exact), int8 (opt-in), and auto (the default: fp32 at batch 1,
bf16 at batch 32 where the CPU computes bf16 natively).
"""
from __future__ import annotations

import argparse
import json
import subprocess

import torch

from _bench import in_processes, interleaved, make_model, median, medians, table, timed
from rnnkit.core.config import SampleConfig
from rnnkit.core.vocab import Vocab
from rnnkit.text.sample import generate
from rnnkit.text.step import bf16_native

VARIANTS = [("plain", 1, None), ("rnnkit fp32", 1, "fp32"), ("rnnkit int8", 1, "int8"),
            ("plain", 32, None), ("rnnkit fp32", 32, "fp32"), ("rnnkit auto", 32, "auto"), ("rnnkit int8", 32, "int8")]


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = info.get("Flags", "")
    extra = [f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags.split()]
    return (f"{info.get('Model name', '?').strip()}, {info.get('CPU(s)', '?').strip()} CPUs, "
            f"{' '.join(extra) or 'no AVX-512'}; PyTorch bf16 native: {bf16_native()}")


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
    """One process's chars/s per hidden size, variant and thread count."""
    vocab = Vocab([chr(c) for c in range(32, 97)])                          # 65 symbols
    gen = torch.Generator().manual_seed(0)
    figures = {}
    for hidden in a.hidden:
        model = make_model(hidden, len(vocab)).eval()

        def block(n: int, precision: str | None, threads: int):
            def run() -> float:
                torch.set_num_threads(threads)
                if precision is None:
                    return timed(lambda: plain_loop(model, n, a.length, gen))
                cfg = SampleConfig(length=a.length, num=n, seed=1, temperature=1.0, precision=precision)
                return timed(lambda: (generate(model, vocab, cfg), n * a.length)[1])
            return run

        runs = {f"{name}, batch {n}|{hidden}|{t}": block(n, p, t) for name, n, p in VARIANTS for t in a.threads}
        figures |= {k: median(v) for k, v in interleaved(runs, a.blocks).items()}
    return figures


def best(f: dict, name: str, hidden: int, threads: list[int]) -> tuple[float, int]:
    """The variant's chars/s at its best thread count, and that count."""
    return max((f[f"{name}|{hidden}|{t}"], t) for t in threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks per variant (median taken)")
    ap.add_argument("--length", type=int, default=400, help="characters per sample in a block")
    ap.add_argument("--runs", type=int, default=1, help="repeat in this many fresh processes (median taken)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts tried for every variant")
    ap.add_argument("--quick", action="store_true", help="3 blocks of 100 characters")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.quick:
        a.blocks, a.length = 3, 100
    if a.json:
        print(json.dumps(measure(a)))
        return
    argv = ["--hidden", *map(str, a.hidden), "--blocks", str(a.blocks), "--length", str(a.length),
            "--threads", *map(str, a.threads)]
    runs = in_processes(__file__, argv, a.runs) if a.runs > 1 else [measure(a)]
    f = medians(runs)
    rows, summary = [], []
    names = list(dict.fromkeys(f"{name}, batch {n}" for name, n, _ in VARIANTS))
    for hidden in a.hidden:
        base, _ = best(f, "plain, batch 1", hidden, a.threads)
        for name in names:
            rate, t = best(f, name, hidden, a.threads)
            rows.append([f"H{hidden}", name, str(t), f"{rate:,.0f}", f"{rate / base:.2f}x"])
        b1 = {k: best(f, f"{k}, batch 1", hidden, a.threads)[0] for k in ("rnnkit fp32", "rnnkit int8")}
        b32 = {k: best(f, f"{k}, batch 32", hidden, a.threads)[0] for k in ("plain", "rnnkit fp32", "rnnkit auto", "rnnkit int8")}
        each = ", ".join(f"{max(r[f'rnnkit fp32, batch 1|{hidden}|{t}'] for t in a.threads) / max(r[f'plain, batch 1|{hidden}|{t}'] for t in a.threads):.2f}"
                         for r in runs)
        target = 5 if hidden <= 256 else 3
        summary.append(f"H{hidden}: batch 1 {b1['rnnkit fp32'] / base:.2f}x the plain loop (per process: {each}; "
                       f"target >= {target}x), int8 {b1['rnnkit int8'] / base:.2f}x; batch 32 "
                       f"{b32['rnnkit auto'] / b1['rnnkit fp32']:.1f}x its batch-1 rate; batch 32 against the plain batched loop: "
                       f"fp32 {b32['rnnkit fp32'] / b32['plain']:.2f}x, auto {b32['rnnkit auto'] / b32['plain']:.2f}x, "
                       f"int8 {b32['rnnkit int8'] / b32['plain']:.2f}x (target >= 1x)")
    print(f"sampling, chars/s, medians over {len(runs)} process(es) of the medians of {a.blocks} blocks of "
          f"{a.length} steps, threads tried: {', '.join(map(str, a.threads))}, torch {torch.__version__}")
    print(f"CPU: {cpu_name()}")
    print(table(["model", "sampler", "best threads", "chars/s", "vs plain batch 1"], rows))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
