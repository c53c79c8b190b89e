"""Where a training step's time goes: torch.profiler over rnnkit's real training path.

    python benchmarks/gpu_profile.py --hidden 512 --batch 64        # CUDA
    python benchmarks/gpu_profile.py --device cpu --hidden 64 --steps 5   # smoke test

Trains through `train_lm` (the loop `rnnkit train` runs) and profiles --steps steps after a
warm-up. Prints the wall time per step, the GPU's busy time per step (the sum of its kernels and
copies), the host-device synchronisations counted, and the top operators by host time and by
device time. A step whose wall time is far above its device time is waiting on launches and on
the host: that is what CUDA graphs and a sync-free step remove.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from _bench import DATA, model_config, with_regularisers
from rnnkit.core.config import TrainConfig
from rnnkit.core.train import Hooks
from rnnkit.text.lm import train_lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--args", default="", help="TrainConfig fields as k=v,k=v (e.g. graphs=off)")
    ap.add_argument("--rows", type=int, default=14)
    ap.add_argument("--plain", action="store_true",
                    help="the model without weight drop and locked dropout (one nn.LSTM call over the stack)")
    a = ap.parse_args()
    device = torch.device(a.device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    extra = {}
    for kv in filter(None, a.args.split(",")):
        k, v = kv.split("=", 1)
        extra[k] = type(getattr(TrainConfig(), k))(v) if getattr(TrainConfig(), k) is not None else v
    cfg = TrainConfig(files=[a.data], seq_len=100, batch=a.batch, max_steps=a.warmup + a.steps + 2,
                      device=str(device), eval_every=10**6, save_every=10**6, sample_chars=0, **extra)
    stamps = {}
    with profile(activities=acts, schedule=schedule(wait=0, warmup=a.warmup, active=a.steps, repeat=1)) as prof:
        def tick(step, loss):
            stamps[step] = time.perf_counter()
            prof.step()
            return loss
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            mcfg = model_config(a.hidden)             # plain; by default with the CPU recipe's regularisers
            train_lm(cfg, mcfg if a.plain else with_regularisers(mcfg), Path(tmp) / "run", hooks=Hooks(inject=tick))
    ev = prof.key_averages()
    dev_attr = "self_device_time_total" if hasattr(ev[0], "self_device_time_total") else "self_cuda_time_total"
    busy = sum(getattr(e, dev_attr) for e in ev) / a.steps / 1e3
    syncs = sum(e.count for e in ev if "synchronize" in e.key.lower() or e.key in ("aten::item", "aten::_local_scalar_dense"))
    wall = (stamps[a.warmup + a.steps] - stamps[a.warmup]) / a.steps * 1e3
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, hidden {a.hidden}, batch {a.batch} x 100, {a.steps} steps profiled, "
          f"{'no regularisers' if a.plain else 'weight drop + locked dropout'} {a.args}")
    print(f"wall {wall:.2f} ms/step (profiled), device busy {busy:.2f} ms/step, "
          f"host syncs (item/_local_scalar_dense/synchronize) {syncs / a.steps:.1f} per step")
    print(ev.table(sort_by="self_cpu_time_total", row_limit=a.rows, max_name_column_width=50))
    if device.type == "cuda":
        print(ev.table(sort_by=dev_attr, row_limit=a.rows, max_name_column_width=50))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
