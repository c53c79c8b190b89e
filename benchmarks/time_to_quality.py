"""Validation loss at a fixed compute budget: rnnkit's defaults against the plain PyTorch LSTM.

    python benchmarks/time_to_quality.py                  # budget measured here (see below)
    python benchmarks/time_to_quality.py --steps 4100     # a fixed number of steps instead
    python benchmarks/time_to_quality.py --budget 600     # a given number of training seconds
    python benchmarks/time_to_quality.py --train-reference   # also train the reference to 4,100 steps
    python benchmarks/time_to_quality.py --corpus python-stdlib --budget-steps 1025 --train-reference
                                                          # another text, a quarter of the budget
    python benchmarks/time_to_quality.py --device cuda --budget 180   # the GPU recipe, 180 s on a GPU
    python benchmarks/time_to_quality.py --periodic --budget 60 --args "--hidden 64"   # that path on a CPU

On a GPU (`--device cuda`) rnnkit trains its GPU recipe (`--preset auto` picks it there) for
`--budget` seconds of training, evaluates the whole validation split every `--eval-every` steps
(`--eval-chars 0`), and reports beside the static and dynamic scores the wall time, from the
training process's start, at which a periodic evaluation first went below nanoGPT's best on the
same chip (fixed figures: its unmodified shakespeare_char config on one H200, torch 2.11).

The budget is the wall time the plain fp32 reference (Embedding 64 -> 2x256 LSTM, dropout 0.2 ->
Linear; Adam 2e-3, clipping 1, batch 64 x 100 streams, state carried: the README's reference)
needs for 4,100 steps on this machine, measured in this run by timing `--ref-steps` steps of it
and scaling. rnnkit then trains its recommended recipe (`rnnkit train`'s defaults, plus `--args`)
with `--max-time BUDGET` (training time only) on the first 90% of ../shared/data/tinyshakespeare.txt
and is scored on the last 10%, the whole split as one stream with the state carried, from its
`last` checkpoint: static, then `--dynamic`. Printed beside: the reference's loss at 4,100 steps
(trained here with --train-reference, else the README's 1.466) and nanoGPT's small transformer at
the same budget on the reference machine (fixed figures, measured with nanoGPT's own code).
`--data FILE` or `--corpus NAME` (a built-in corpus, its files joined as `rnnkit train` reads them)
runs the same comparison on another text; `--budget-steps N` makes the budget the reference's N
steps instead of 4,100 (the reference is then trained N steps by --train-reference).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _bench import DATA, ROOT, encode_text, machine, streams

REF_STEPS, SEQ, BATCH = 4100, 100, 64
REFERENCE = {"loss": 1.466}                                # README: plain LSTM, 4,100 steps
NANOGPT = {"blocks of 64": 1.52, "sliding context": 1.48}   # same budget, the reference machine
TARGETS = {"static": 1.43, "dynamic": 1.38}
NANOGPT_GPU = {"best": 1.4712, "at_s": 76.0, "end": 1.697, "end_s": 172.0}   # H200, measured beside the project
GPU_TARGETS = {"static": 1.40, "dynamic": 1.28}


class Reference:
    """The plain fp32 loop: what one writes by hand with nn.LSTM."""

    def __init__(self, ids: np.ndarray, vocab: int, seed: int = 1337, device: str = "cpu"):
        torch.manual_seed(seed)
        self.emb, self.rnn = nn.Embedding(vocab, 64), nn.LSTM(64, 256, 2, batch_first=True, dropout=0.2)
        self.drop, self.head = nn.Dropout(0.2), nn.Linear(256, vocab)
        self.mods = nn.ModuleList([self.emb, self.rnn, self.head]).to(device)
        self.opt = torch.optim.Adam(self.mods.parameters(), lr=2e-3)
        self.x, self.y, self.per_epoch = (t.to(device) if torch.is_tensor(t) else t for t in streams(ids, BATCH, SEQ))
        self.j, self.state, self.device = 0, None, device

    def steps(self, n: int) -> None:
        self.mods.train()
        for _ in range(n):
            if self.j % self.per_epoch == 0:
                self.state = None
            at = (self.j % self.per_epoch) * SEQ
            out, state = self.rnn(self.emb(self.x[:, at: at + SEQ]), self.state)
            logits = self.head(self.drop(out))                               # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.y[:, at: at + SEQ].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.mods.parameters(), 1.0)
            self.opt.step()
            self.state = tuple(s.detach() for s in state)
            self.j += 1

    @torch.no_grad()
    def loss(self, ids: np.ndarray) -> float:
        """The whole text as one stream, state carried."""
        self.mods.eval()
        x = torch.from_numpy(ids[:-1].astype(np.int64))[None].to(self.device)
        y = torch.from_numpy(ids[1:].astype(np.int64))[None].to(self.device)
        total, state = 0.0, None
        for j in range(0, x.shape[1], 1024):
            out, state = self.rnn(self.emb(x[:, j: j + 1024]), state)
            logits = self.head(out)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, j: j + 1024].reshape(-1),
                                     reduction="sum").item()
        return total / y.shape[1]


def corpus_file(name: str, out: Path) -> Path:
    """A built-in corpus as one file, its sources joined in the order `rnnkit train` reads them."""
    from rnnkit.text.corpus import corpus_sources, read_chunks
    path = out / f"{name}.txt"
    with open(path, "w", encoding="utf-8") as f:
        for src in corpus_sources(name):
            f.writelines(read_chunks(src, "utf-8"))
    return path


def measure_budget(train: np.ndarray, vocab: int, steps: int, total: int, warmup: int = 10) -> float:
    """Seconds the reference needs for `total` steps, scaled from `steps` timed ones."""
    ref = Reference(train, vocab)
    ref.steps(warmup)
    t = time.perf_counter()
    ref.steps(steps)
    return (time.perf_counter() - t) / steps * total


def rnnkit(*args: str) -> str:
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}   # this checkout's rnnkit
    done = subprocess.run([sys.executable, "-m", "rnnkit", *args], text=True, capture_output=True, env=env)
    if done.returncode:
        sys.exit(f"rnnkit {args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def score(run: Path, val: Path, dynamic: list[str]) -> dict:
    return json.loads(rnnkit("eval", str(run / "last.safetensors"), str(val), "--json", *dynamic).splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="train rnnkit a fixed number of steps instead")
    ap.add_argument("--budget", type=float, default=None, help="training seconds (default: measured)")
    ap.add_argument("--fraction", type=float, default=1.0,
                    help="train rnnkit for this fraction of the measured budget (a quick look)")
    ap.add_argument("--ref-steps", type=int, default=300, help="reference steps timed for the budget")
    ap.add_argument("--train-reference", action="store_true", help="train the reference its 4,100 steps too")
    ap.add_argument("--data", default=str(DATA), help="the text (default: tinyshakespeare)")
    ap.add_argument("--corpus", default=None, help="a built-in corpus instead of --data, e.g. python-stdlib")
    ap.add_argument("--budget-steps", type=int, default=REF_STEPS,
                    help="the budget is the reference's time for this many steps (default 4,100)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for both (this machine: 2 cores)")
    ap.add_argument("--args", default="", help="extra `rnnkit train` options (quoted), e.g. '--hidden 384'")
    ap.add_argument("--dynamic-args", default="", help="extra `rnnkit eval --dynamic` options (quoted)")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: the GPU recipe against nanoGPT's figures")
    ap.add_argument("--eval-every", type=int, default=500, help="GPU: steps between whole-split evaluations")
    ap.add_argument("--periodic", action="store_true",
                    help="the GPU path (whole-split evaluations, time below nanoGPT's best) on any --device")
    a = ap.parse_args()
    if a.device.startswith("cuda") or a.periodic:
        return gpu_main(a)
    torch.set_num_threads(a.threads)
    print(machine(), flush=True)
    out = Path(a.out or tempfile.mkdtemp(prefix="rnnkit-ttq-"))
    out.mkdir(parents=True, exist_ok=True)
    data = corpus_file(a.corpus, out) if a.corpus else Path(a.data)
    text = data.read_text(encoding="utf-8")
    ids, vocab = encode_text(text)
    n_train = len(ids) - int(len(ids) * 0.1)
    budget = a.budget
    if a.steps is None and budget is None:
        budget = measure_budget(ids[:n_train], vocab, a.ref_steps, a.budget_steps)
        print(f"data: {data} ({len(text):,} characters, vocabulary {vocab})")
        print(f"budget: {budget:.0f} s = what the plain fp32 reference needs for {a.budget_steps:,} steps here "
              f"(timed over {a.ref_steps} steps, {a.threads} threads)", flush=True)
    run = out / "run"
    limit = ["--max-steps", str(a.steps)] if a.steps else ["--max-time", f"{budget * a.fraction:.1f}"]
    if a.fraction != 1.0 and not a.steps:
        print(f"training rnnkit for {a.fraction:g} of the budget: {budget * a.fraction:.0f} s", flush=True)
    t = time.time()
    rnnkit("train", str(data), "--out", str(run), "--threads", str(a.threads), *limit, *shlex.split(a.args))
    wall = time.time() - t
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = out / "val.txt"
    val.write_text(text[n_train:], encoding="utf-8")
    static = score(run, val, [])
    dynamic = score(run, val, ["--dynamic", *shlex.split(a.dynamic_args)])
    readme = data.resolve() == DATA.resolve() and a.budget_steps == REF_STEPS
    ref = REFERENCE["loss"] if readme else None
    if a.train_reference:
        r = Reference(ids[:n_train], vocab)
        r.steps(a.budget_steps)
        ref = r.loss(ids[n_train:])
    last = max(recs, key=lambda r: (r.get("step", 0), "val_loss" in r))   # the final step's record
    print(f"rnnkit (defaults {a.args or ''}): {last['step']:,} steps, {last['chars']:,} chars, "
          f"{last['time']:.0f} s of training ({wall:.0f} s wall with evaluation and checkpoints)")
    print(f"validation ({static['chars']:,} chars, one stream, last checkpoint):")
    target = (lambda kind: f"  target <= {TARGETS[kind]}") if readme else (lambda kind: "")
    print(f"  rnnkit static   {static['loss']:.4f} nats/char ({static['bpc']:.3f} bpc){target('static')}")
    print(f"  rnnkit dynamic  {dynamic['loss']:.4f} nats/char ({dynamic['bpc']:.3f} bpc){target('dynamic')} "
          f"(lr {dynamic['dynamic_lr']:g}, decay {dynamic['dynamic_decay']:g}, segment {dynamic['segment']})")
    print(f"  plain LSTM reference at {a.budget_steps:,} steps  "
          + (f"{ref:.4f}" + ("" if a.train_reference else " (README)") if ref is not None
             else "not trained (--train-reference)"))
    if readme:
        print("  nanoGPT small transformer, same budget, reference machine: "
              + ", ".join(f"{v} ({k})" for k, v in NANOGPT.items()))
    print(json.dumps({"data": str(data), "budget_steps": a.budget_steps, "budget_s": budget, "steps": last["step"],
                      "static": static["loss"], "dynamic": dynamic["loss"], "reference": ref,
                      "met": (static["loss"] <= TARGETS["static"] and dynamic["loss"] <= TARGETS["dynamic"])
                      if readme else None}))


def gpu_main(a) -> None:
    """The GPU recipe for --budget seconds (default 180) against nanoGPT's fixed H200 figures."""
    cuda = a.device.startswith("cuda")
    name = torch.cuda.get_device_name(0) if cuda and torch.cuda.is_available() else machine()
    print(f"GPU: {name}; torch {torch.__version__}" if cuda else name, flush=True)
    budget = a.budget or 180.0
    out = Path(a.out or tempfile.mkdtemp(prefix="rnnkit-ttq-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    data = corpus_file(a.corpus, out) if a.corpus else Path(a.data)
    text = data.read_text(encoding="utf-8")
    n_val = int(len(text) * 0.1)
    run = out / "run"
    t0 = time.time()
    rnnkit("train", str(data), "--out", str(run), "--device", a.device, "--max-time", f"{budget:g}",
           "--eval-chars", "0", "--eval-every", str(a.eval_every), "--sample-chars", "0", *shlex.split(a.args))
    wall = time.time() - t0
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in recs if r.get("val_loss") is not None and "unix_time" in r]
    below = next((r for r in evals if r["val_loss"] < NANOGPT_GPU["best"]), None)
    last = max(recs, key=lambda r: (r.get("step", 0), "val_loss" in r))
    cfg = json.loads((run / "config.json").read_text())
    # printed as each figure arrives: a GPU call cut off by its time limit keeps what was measured
    print(f"rnnkit preset {cfg['train']['preset']} ({a.args or 'defaults'}): {last['step']:,} steps, "
          f"{last['chars']:,} chars, {last['time']:.0f} s of training, {wall:.0f} s wall with evaluations")
    best = min((r["val_loss"] for r in evals), default=float("nan"))
    print(f"  best periodic evaluation (16 streams, whole split) {best:.4f}")
    print("  below nanoGPT's 1.4712: " + (f"{below['unix_time'] - t0:.0f} s wall from the process start (step "
                                          f"{below['step']:,}, {below['val_loss']:.4f}); nanoGPT: 76 s" if below
                                          else "never"))
    print(f"  nanoGPT shakespeare_char, same chip: best {NANOGPT_GPU['best']} at {NANOGPT_GPU['at_s']:.0f} s, "
          f"{NANOGPT_GPU['end']} at its end ({NANOGPT_GPU['end_s']:.0f} s)", flush=True)
    val = out / "val.txt"
    val.write_text(text[len(text) - n_val:], encoding="utf-8")
    static = score(run, val, ["--device", a.device])
    print(f"validation, last 10% ({static['chars']:,} chars, one stream, last checkpoint):")
    print(f"  static   {static['loss']:.4f}  target <= {GPU_TARGETS['static']}", flush=True)
    dynamic = score(run, val, ["--device", a.device, "--dynamic", *shlex.split(a.dynamic_args)])
    print(f"  dynamic  {dynamic['loss']:.4f}  target <= {GPU_TARGETS['dynamic']}", flush=True)
    ref = None
    if a.train_reference:   # the plain 2x256 loop (fp32, Adam 2e-3) for the same seconds on the same GPU
        ids, vocab = encode_text(text)
        r, steps, t = Reference(ids[: len(ids) - int(len(ids) * 0.1)], vocab, device=a.device), 0, time.time()
        while time.time() - t < budget:
            r.steps(50)
            if cuda:
                torch.cuda.synchronize()
            steps += 50
        ref = r.loss(ids[len(ids) - int(len(ids) * 0.1):])
        print(f"  plain 2x256 loop, same {budget:.0f} s on this {'GPU' if cuda else 'machine'}: {ref:.4f} ({steps:,} steps)")
    print(json.dumps({"gpu": name, "budget_s": budget, "steps": last["step"], "static": static["loss"],
                      "reference": ref,
                      "dynamic": dynamic["loss"], "best_periodic": best, "wall_s": wall,
                      "below_nanogpt_s": below["unix_time"] - t0 if below else None,
                      "curve": [[round(r["unix_time"] - t0, 1), r["step"], r["val_loss"]] for r in evals]}))


if __name__ == "__main__":
    main()
