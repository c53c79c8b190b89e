"""GPU check: train a few hundred steps through rnnkit's real path, then sample; prints chars/s.

    python benchmarks/gpu_check.py                    # CUDA: bf16 autocast, cuDNN LSTM, H512
    python benchmarks/gpu_check.py --device cpu --steps 5 --hidden 64 --sample-length 50   # smoke test

Training uses `train_lm` (streams, Trainer, logging, one evaluation and checkpoint at the end) on
../shared/data/tinyshakespeare.txt with seq 100, batch 64 (or --batch). chars/s are taken from the
steps after the first --warmup (the first ones pay for cuDNN's autotuning and allocations), next to
a plain-PyTorch loop (embedding -> nn.LSTM -> head, as train_throughput.py's) measured for the same
number of steps; the regularised rows compare rnnkit with weight drop and locked dropout against
the same forward run by hand. Sampling runs
rnnkit's `generate` at batch 1 and 32 against the plain loop that calls nn.LSTM once per character.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch

import rnnkit.text.lm
from _bench import encode_text, make_model, model_config, need_data, table, with_regularisers
from rnnkit.core.config import SampleConfig, TrainConfig
from rnnkit.core.vocab import Vocab
from rnnkit.core.windows import StreamBatches
from rnnkit.text.sample import generate


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(data: Path, hidden: int, steps: int, warmup: int, batch: int, device: torch.device,
               regularised: bool = False) -> float:
    """chars/s of rnnkit training after `warmup` steps (timed between two batch fetches, the only
    steps that wait for the device). The model, optimizer settings and precision are the plain
    loop's (Adam(W) 2e-3 without decay, clipping 1, no warm-up, bf16 on CUDA); `regularised` adds
    the CPU recipe's weight drop and locked dropout (what the first GPU measurement ran)."""
    stamps: dict[int, float] = {}

    class Stamped(StreamBatches):
        def get(self, step, dev="cpu"):
            if step in (warmup, warmup + steps):
                sync(device)
                stamps[step] = time.perf_counter()
            return super().get(step, dev)

    cfg = TrainConfig(files=[str(data)], seq_len=100, batch=batch, max_steps=warmup + steps + 1, preset="cpu",
                      lr=2e-3, weight_decay=0.0, warmup=0, schedule="constant", clip=1.0,
                      device=str(device), eval_every=10**6, save_every=10**6, sample_chars=50)
    mcfg = with_regularisers(model_config(hidden)) if regularised else model_config(hidden)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        real, rnnkit.text.lm.StreamBatches = rnnkit.text.lm.StreamBatches, Stamped
        try:
            rnnkit.text.lm.train_lm(cfg, mcfg, Path(tmp) / "run")
        finally:
            rnnkit.text.lm.StreamBatches = real
    return steps * 100 * batch / (stamps[warmup + steps] - stamps[warmup])


def plain_train_rate(data: Path, hidden: int, steps: int, warmup: int, batch: int, device: torch.device,
                     regularised: bool = False) -> float:
    """The plain loop (nn.LSTM, Adam, clipping, bf16 autocast on CUDA like rnnkit) for comparison:
    embedding -> the nn.LSTM stack -> head, called directly as train_throughput.py's loop does.
    `regularised` runs the model's forward with the CPU recipe's weight drop and locked dropout
    instead (masks from the global generator): the same work as rnnkit's regularised row. Until
    2026-12-08 the plain row ran that forward by mistake (the benchmark model took ModelConfig's
    defaults when the regularisers became default), so its earlier ratios compare unlike work."""
    import numpy as np
    import torch.nn.functional as F
    codes, vocab_size = encode_text(data.read_text(encoding="utf-8"))
    ids = torch.from_numpy(codes.astype(np.int64))
    m = make_model(hidden, vocab_size, regularised=regularised).to(device).train()
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    length = (len(ids) - 1) // batch
    xs = ids[: batch * length].view(batch, length).to(device)
    ys = ids[1: batch * length + 1].view(batch, length).to(device)
    state, t0 = None, None
    for j in range(warmup + steps):
        if j == warmup:
            sync(device)
            t0 = time.perf_counter()
        at = (j * 100) % (length - 100)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if regularised:
                logits, state = m(xs[:, at: at + 100], state)
            else:
                out, state = m.rnn(m.embedding(xs[:, at: at + 100]), state)
                logits = m.head(out)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ys[:, at: at + 100].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        state = tuple(s.detach() for s in state)
    sync(device)
    return steps * 100 * batch / (time.perf_counter() - t0)


@torch.inference_mode()
def sample_rates(hidden: int, length: int, device: torch.device) -> list[list[str]]:
    vocab = Vocab([chr(c) for c in range(32, 97)])
    model = make_model(hidden, len(vocab)).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(0)
    rows = []
    for n in (1, 32):
        def plain() -> None:
            x, state = torch.zeros(n, 1, dtype=torch.long, device=device), None
            for _ in range(length):
                out, state = model.rnn(model.embedding(x), state)
                x = torch.multinomial(torch.softmax(model.head(out[:, -1]), -1), 1, generator=gen)
        cfg = lambda graphs: SampleConfig(length=length, num=n, seed=1, device=str(device), graphs=graphs)
        rates = {}
        for name, fn in (("plain loop", plain),
                         ("rnnkit (graphs auto)", lambda: generate(model, vocab, cfg("auto"))),
                         ("rnnkit --graphs off", lambda: generate(model, vocab, cfg("off")))):
            fn()                                                            # warm-up
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            rates[name] = n * length / (time.perf_counter() - t)
        for name, r in rates.items():
            rows.append([f"sample, batch {n}", name, f"{r:,.0f}", f"{r / rates['plain loop']:.2f}x"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--sample-length", type=int, default=500)
    a = ap.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run with --device cpu for a smoke test")
    data = need_data()
    warmup = min(a.warmup, a.steps)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, hidden {a.hidden}, {a.steps} timed training steps, torch {torch.__version__}")
    # each row printed as it is measured: a call cut off by its time limit keeps the rows it made
    print(table(["what", "path", "chars/s", "vs plain"], []), flush=True)
    row = lambda *cells: print("| " + " | ".join(cells) + " |", flush=True)   # noqa: E731
    what = f"train, batch {a.batch}"
    pl = plain_train_rate(data, a.hidden, a.steps, warmup, a.batch, device)
    row(what, "plain loop", f"{pl:,.0f}", "1.00x")
    rk = train_rate(data, a.hidden, a.steps, warmup, a.batch, device)
    row(what, "rnnkit", f"{rk:,.0f}", f"{rk / pl:.2f}x")
    # the regularised pair: the model's forward with masks, by hand and through rnnkit's loop
    pr = plain_train_rate(data, a.hidden, a.steps, warmup, a.batch, device, regularised=True)
    row(what + ", weight drop + locked dropout", "plain loop", f"{pr:,.0f}", "1.00x")
    rr = train_rate(data, a.hidden, a.steps, warmup, a.batch, device, regularised=True)
    row(what + ", weight drop + locked dropout", "rnnkit", f"{rr:,.0f}", f"{rr / pr:.2f}x")
    for cells in sample_rates(a.hidden, a.sample_length, device):
        row(*cells)


if __name__ == "__main__":
    main()
