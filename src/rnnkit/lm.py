"""Character language models end to end: data -> model -> Trainer -> checkpoints; evaluation.

    from rnnkit import TrainConfig, train_lm
    train_lm(TrainConfig(files=["input.txt"], max_steps=2000), ModelConfig(hidden=256), "runs/x")

The CLI's `rnnkit train` is this function; under torchrun it trains with DDP (see distributed.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .checkpoint import (CheckpointError, clean_temporaries, find_checkpoint, model_meta, prefixed,
                         save_checkpoint, build_model, set_aside)
from .config import ModelConfig, RnnkitError, SampleConfig, TrainConfig, UsageError
from .corpus import load_ids, resolve_sources
from .models import SequenceModel, check_memory, count_params
from .plots import plot_curves
from .sample import generate
from .train import Hooks, Trainer, TrainState
from .vocab import Vocab
from .windows import RandomWindows, StreamBatches, to_long

LN2 = math.log(2)
# periodic evaluations read the validation text as this many parallel streams (3,125 chars each at
# the default --eval-chars 50,000): as fast per char as 32 streams here, with half the cold starts
EVAL_STREAMS = 16
# flags that may change when a run is resumed; everything else is fixed by the checkpoint
RESUMABLE = {"max_steps", "max_time", "patience", "eval_every", "save_every", "log_every", "device",
             "threads", "decay_steps", "eval_chars", "sample_chars"}


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) for training, the last part for validation (views)."""
    n_val = int(len(ids) * val_fraction)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]


@torch.inference_mode()
def evaluate_ids(model: nn.Module, ids: np.ndarray, streams: int = 1, chunk: int = 512,
                 device: torch.device | str = "cpu", rows: Optional[slice] = None) -> tuple[float, int, int]:
    """Sum of next-character losses (nats), count and correct guesses over `ids`, read as `streams`
    parallel streams with the hidden state carried from chunk to chunk (streams=1: the whole text as
    one stream, the fairest measure). `rows` restricts to some streams (a rank's share)."""
    model.eval()
    length = (len(ids) - 1) // streams
    if length < 1:
        return 0.0, 0, 0
    x_all = ids[: streams * length].reshape(streams, length)
    y_all = ids[1: streams * length + 1].reshape(streams, length)
    if rows is not None:
        x_all, y_all = x_all[rows], y_all[rows]
    if len(x_all) == 0:
        return 0.0, 0, 0
    total, correct, state = 0.0, 0, None
    for j in range(0, length, chunk):
        x, y = to_long(x_all[:, j: j + chunk], device), to_long(y_all[:, j: j + chunk], device)
        logits, state = model(x, state)
        logits = logits.float()
        total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                             reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
    return total, y_all.size, correct


@torch.inference_mode()
def cold_loss(model: nn.Module, ids: np.ndarray, window: int = 100, device="cpu", batch: int = 256) -> float:
    """Mean loss when every `window` characters start from a zero state (no carried context)."""
    n = (len(ids) - 1) // window
    x_all = ids[: n * window].reshape(n, window)
    y_all = ids[1: n * window + 1].reshape(n, window)
    total = 0.0
    for i in range(0, n, batch):
        logits, _ = model(to_long(x_all[i: i + batch], device))
        y = to_long(y_all[i: i + batch], device)
        total += nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                             reduction="sum").item()
    return total / max(1, n * window)


def ddp_evaluate(model: nn.Module, ids: np.ndarray, d: distributed.Dist, streams: int, chunk: int = 512) -> float:
    """Validation loss (nats/char) with the streams shared out across ranks, summed back."""
    share = np.array_split(np.arange(streams), d.world)[d.rank]
    rows = slice(int(share[0]), int(share[-1]) + 1) if len(share) else slice(0, 0)
    total, count, _ = evaluate_ids(model, ids, streams, chunk, d.device, rows)
    t = distributed.all_reduce_sum(d, torch.tensor([total, float(count)], dtype=torch.float64))
    return (t[0] / t[1]).item() if t[1] > 0 else float("nan")


@contextmanager
def writing(path: Path):
    """A failed write of a log or config file (a full disk) as one line naming the file."""
    try:
        yield
    except OSError as e:
        why = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise RnnkitError(f"could not write {path}: {why}; the checkpoints written so far are intact, "
                          "free space and continue with --resume") from None


class Run:
    """A run directory: metrics log, checkpoints, the id cache. Only rank 0 writes."""

    def __init__(self, out: Path, d: distributed.Dist, quiet: bool = False):
        self.out, self.d, self.quiet = out, d, quiet
        self.tty = sys.stdout.isatty()

    def say(self, msg: str) -> None:
        if self.d.main and not self.quiet:
            print(("\r\033[K" if self.tty else "") + msg, flush=True)

    def progress(self, rec: dict, cfg: TrainConfig, best: float) -> None:
        """A live bar on a terminal (step, loss, val bpc, chars/s, ETA); plain log lines otherwise."""
        if not self.d.main or self.quiet:
            return
        step, left = rec["step"], None
        if cfg.max_steps:
            left = (cfg.max_steps - step) * cfg.seq_len * cfg.batch / max(rec["chars_per_s"], 1e-9)
        if cfg.max_time:
            left = min(left if left is not None else math.inf, cfg.max_time - rec["time"])
        eta = f" ETA {int(left) // 60}:{int(left) % 60:02d}" if left is not None and math.isfinite(left) else ""
        total = f"/{cfg.max_steps}" if cfg.max_steps else ""
        val = f" val {best / LN2:.3f} bpc" if math.isfinite(best) else ""
        line = (f"step {step}{total} loss {rec['loss']:.4f} ({rec['loss'] / LN2:.3f} bpc){val} "
                f"lr {rec['lr']:.1e} {rec['chars_per_s']:,.0f} chars/s{eta}")
        if self.tty:
            print(f"\r\033[K{line}", end="", flush=True)
        else:
            print(line, flush=True)

    def record(self, rec: dict) -> None:
        if self.d.main:
            with writing(self.out / "metrics.jsonl"), open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")


def trainer_tensors(model: nn.Module, opt: torch.optim.Optimizer, s: TrainState, d: distributed.Dist) -> tuple[dict, dict]:
    """Tensors and JSON state of everything training needs to continue exactly."""
    tensors = prefixed("model", model.state_dict())
    osd = opt.state_dict()
    json_state = {}
    for idx, st in osd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                json_state[f"{idx}.{k}"] = v
    for r, rng in enumerate(distributed.all_gather(d, torch.get_rng_state())):
        tensors[f"rng.cpu.{r}"] = rng
    if torch.cuda.is_available() and d.device.type == "cuda":
        for r, rng in enumerate(distributed.all_gather(d, torch.cuda.get_rng_state(d.device).to(d.device))):
            tensors[f"rng.cuda.{r}"] = rng.cpu()
    if s.carried is not None:
        parts = s.carried if isinstance(s.carried, tuple) else (s.carried,)
        for name, t in zip("hc", parts):  # (layers, B/W, H) per rank -> (layers, B, H)
            tensors[f"carried.{name}"] = torch.cat([g.float() for g in distributed.all_gather(d, t)], dim=1)
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in osd["param_groups"]]
    info = {"step": s.step, "chars": s.chars, "elapsed": s.elapsed, "best_val": s.best_val if math.isfinite(s.best_val) else None,
            "evals_since_best": s.evals_since_best, "horizon": s.horizon, "world": d.world,
            "optim_groups": groups, "optim_scalars": json_state}
    return tensors, info


def restore_trainer(tensors: dict, info: dict, model: nn.Module, opt: torch.optim.Optimizer,
                    d: distributed.Dist, rows: slice) -> TrainState:
    osd = {"state": {}, "param_groups": info["optim_groups"]}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            osd["state"].setdefault(int(idx), {})[k] = v
    for key, v in info["optim_scalars"].items():
        idx, k = key.split(".", 1)
        osd["state"].setdefault(int(idx), {})[k] = v
    opt.load_state_dict(osd)
    if info.get("world") == d.world and f"rng.cpu.{d.rank}" in tensors:
        torch.set_rng_state(tensors[f"rng.cpu.{d.rank}"])
        if f"rng.cuda.{d.rank}" in tensors and d.device.type == "cuda":
            torch.cuda.set_rng_state(tensors[f"rng.cuda.{d.rank}"], d.device)
    carried = tuple(tensors[f"carried.{n}"][:, rows].contiguous().to(d.device) for n in "hc" if f"carried.{n}" in tensors)
    s = TrainState(step=info["step"], chars=info["chars"], elapsed=info["elapsed"],
                   best_val=info["best_val"] if info["best_val"] is not None else math.inf,
                   evals_since_best=info["evals_since_best"], horizon=info["horizon"])
    s.carried = None if not carried else carried if len(carried) == 2 else carried[0]
    return s


def restore_checked(ckpt: tuple, model: nn.Module, opt: torch.optim.Optimizer, d: distributed.Dist,
                    rows: slice) -> TrainState:
    """restore_trainer, with a CheckpointError naming the file when the saved training state does not
    fit the model (it would otherwise fail with a traceback at the first step)."""
    tensors, meta, path = ckpt
    try:
        s = restore_trainer(tensors, meta["state"], model, opt, d, rows)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise CheckpointError(f"{path}: training state does not fit the model ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})")
    diffs = [f"optimizer {k} of a {tuple(p.shape)} weight has shape {tuple(v.shape)}"
             for p, st in opt.state.items() for k, v in st.items()
             if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape]
    want = (model.config.layers, rows.stop - rows.start, model.config.hidden)
    parts = s.carried if isinstance(s.carried, tuple) else (s.carried,) if s.carried is not None else ()
    if parts and len(parts) != (2 if model.config.cell == "lstm" else 1):
        diffs.append(f"carried state has {len(parts)} part(s), a {model.config.cell} carries "
                     f"{2 if model.config.cell == 'lstm' else 1}")
    diffs += [f"carried state has shape {tuple(t.shape)}, the model needs {want}" for t in parts if tuple(t.shape) != want]
    if diffs:
        raise CheckpointError(f"{path}: training state does not fit the model: " + "; ".join(diffs[:4]))
    return s


def resume_configs(out: Path, given: dict, warn: Callable[[str], None]) -> tuple[TrainConfig, ModelConfig, Path, dict, dict]:
    path, tensors, meta = find_checkpoint(out, ("last", "prev"), warn)
    if meta.get("kind") != "charlm" or not isinstance(meta.get("train"), dict) or not isinstance(meta.get("state"), dict):
        raise CheckpointError(f"{path}: not a resumable rnnkit training checkpoint (no training state)")
    fixed = sorted(k for k in given if k not in RESUMABLE)
    if fixed:
        flags = ", ".join("--" + k.replace("_", "-") for k in fixed)
        raise UsageError(f"{flags} cannot change when resuming (the checkpoint fixes them); "
                         "start a new run with --out to change them")
    tcfg = dataclasses.replace(TrainConfig.from_dict(meta["train"], where=f"{path} train config"), **given).validate()
    return tcfg, ModelConfig.from_dict(meta["model"], where=f"{path} model config"), path, tensors, meta


def check_train_memory(mcfg: ModelConfig, tcfg: TrainConfig, d: distributed.Dist) -> None:
    """models.check_memory for one training step: on CPU the ranks of a machine share its memory
    (the whole --batch counts), on a GPU each rank holds its share of the batch."""
    batch = -(-tcfg.batch // d.world) if d.device.type == "cuda" else tcfg.batch
    check_memory(dataclasses.replace(mcfg, vocab_size=max(mcfg.vocab_size, 1)), batch, tcfg.seq_len,
                 device=d.device)


def train_lm(tcfg: Optional[TrainConfig], mcfg: Optional[ModelConfig], out: str | Path, resume: bool = False,
             given: Optional[dict] = None, quiet: bool = False, hooks: Optional[Hooks] = None) -> dict:
    """Train (or with resume=True continue) a character LM in run directory `out`.
    Returns a summary with the final step, validation loss and stop reason."""
    out = Path(out)
    d = distributed.setup((given or {}).get("device", tcfg.device if tcfg else "auto"))
    try:
        return _train_lm(tcfg, mcfg, out, resume, given or {}, quiet, hooks or Hooks(), d)
    except torch.distributed.DistError as e:  # a collective failed: another rank died or hung
        raise distributed.lost_peer(d, e) from None
    except RuntimeError as e:  # DDP's all-reduce inside backward: gloo raises a plain RuntimeError
        if distributed.is_lost_peer(d, e):
            raise distributed.lost_peer(d, e) from None
        raise
    finally:
        distributed.teardown(d, sys.exc_info()[2])


def load_ids_in_turn(sources, encoding: str, cache: Path, vocab: Optional[Vocab], d: distributed.Dist):
    """The id cache is built once: rank 0 first, then the first process of every other machine
    (when the run directory is not shared), then everyone else reads it. No two writers at once."""
    turns = (d.rank == 0, d.rank != 0 and d.local_rank == 0, d.local_rank != 0)
    for mine in turns:
        if mine:
            ids, vocab_out = load_ids(sources, encoding, cache, vocab)
        distributed.barrier(d)
    return ids, vocab_out


def _train_lm(tcfg, mcfg, out: Path, resume: bool, given: dict, quiet: bool, hooks: Hooks, d: distributed.Dist) -> dict:
    warn = lambda m: print(f"rnnkit: warning: {m}", file=sys.stderr) if d.main else None
    ckpt = None
    if resume:
        tcfg, mcfg, path, tensors, meta = resume_configs(out, given, warn)
        ckpt = (tensors, meta, path)
    else:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file, not a run directory; choose another --out")
        if (out / "last.safetensors").exists() or (out / "best.safetensors").exists():
            raise UsageError(f"{out} already holds a run; continue it with --resume {out} or choose another --out")
    tcfg.validate()
    check_train_memory(mcfg, tcfg, d)  # before anything is written (the vocabulary size: 1 until read)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed + d.rank)
    run = Run(out, d, quiet)
    sources = resolve_sources(tcfg.files, tcfg.corpus)  # bad input refused before anything is written
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        clean_temporaries(out)
    distributed.barrier(d)
    vocab_in = Vocab.from_json(ckpt[1]["vocab"]) if ckpt else None
    ids, vocab = load_ids_in_turn(sources, tcfg.encoding, out / "data", vocab_in, d)
    train_ids, val_ids = split_ids(ids, tcfg.val_fraction)
    mcfg = dataclasses.replace(mcfg, vocab_size=len(vocab)).validate()
    check_train_memory(mcfg, tcfg, d)
    if tcfg.batching == "streams":
        batches = StreamBatches(train_ids, tcfg.batch, tcfg.seq_len, d.rank, d.world)
    else:
        batches = RandomWindows(train_ids, tcfg.batch, tcfg.seq_len, tcfg.seed, d.rank, d.world)
    model = build_model(ckpt[0], ckpt[1], ckpt[2], d.device)[0] if ckpt else SequenceModel(mcfg).to(d.device)
    # DDP copies rank 0's weights to every rank here and averages the gradients in backward()
    net = DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None) \
        if d.active else model
    # fused: one pass over each parameter instead of ~10 elementwise kernels (CPU and CUDA)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay,
                            fused=d.device.type in ("cpu", "cuda"))
    state = restore_checked(ckpt, model, opt, d, batches.rows) if ckpt else None
    if ckpt and d.main and ckpt[2].name != "last.safetensors":  # `last` was damaged: never rotate it into prev
        aside = set_aside(out / "last.safetensors")
        if aside:
            warn(f"the damaged last checkpoint is kept as {aside.name}")
    split = (f"train {len(train_ids):,} chars (first {1 - tcfg.val_fraction:.0%}), "
             f"validation {len(val_ids):,} chars (last {tcfg.val_fraction:.0%})")
    src = ", ".join(tcfg.files) if tcfg.files else f"built-in corpus '{tcfg.corpus}'"
    run.say(f"data: {src}; {split}; vocabulary {len(vocab)} ({tcfg.encoding})")
    procs = f", {d.world} process{'es' if d.world > 1 else ''} ({d.backend})" if d.active else ""
    run.say(f"model: {mcfg.cell} x{mcfg.layers}, hidden {mcfg.hidden}, embed {mcfg.embed or 'one-hot'}, "
            f"{count_params(model):,} parameters on {d.device}{procs}")
    if ckpt:
        run.say(f"resuming {out} at step {state.step}")
    if d.main:
        with writing(out / "config.json"):
            (out / "config.json").write_text(json.dumps({"train": tcfg.to_dict(), "model": mcfg.to_dict(),
                                                         "vocab_size": len(vocab)}, indent=2))

    def evaluate(s: TrainState) -> float:
        n = len(val_ids) if not tcfg.eval_chars else min(len(val_ids), tcfg.eval_chars)
        val = ddp_evaluate(model, val_ids[:n], d, EVAL_STREAMS) if n > EVAL_STREAMS * 2 else float("nan")
        rec = {"step": s.step, "chars": s.chars, "val_loss": val, "val_bpc": val / LN2, "time": round(s.elapsed, 3)}
        if d.main and tcfg.sample_chars:
            rec["sample"] = generate(model, vocab, SampleConfig(length=tcfg.sample_chars, temperature=0.8,
                                                                seed=s.step, device=str(d.device)))[0]
        run.record(rec)
        run.say(f"step {s.step}: val loss {val:.4f} nats ({val / LN2:.3f} bpc) on {n:,} chars")
        return val if math.isfinite(val) else math.inf

    def save(s: TrainState, which: str) -> None:
        tensors, info = trainer_tensors(model, opt, s, d)
        if d.main:
            meta = model_meta(model, vocab) | {"train": tcfg.to_dict(), "state": info}
            prev = out / "prev.safetensors" if which == "last" else None
            save_checkpoint(out / f"{which}.safetensors", tensors, meta, keep_previous=prev)
        distributed.barrier(d)

    def log(rec: dict) -> None:
        run.record(rec)
        run.progress(rec, tcfg, best=trainer.state.best_val)

    hooks = dataclasses.replace(hooks, evaluate=hooks.evaluate or (evaluate if len(val_ids) > 1 else None),
                                save=hooks.save or save, log=hooks.log or log)
    trainer = Trainer(net, batches, tcfg, opt, d, hooks, state)
    t0 = time.time()
    try:
        why = trainer.run()
    except BaseException:  # stopped by a signal, a non-finite loss or an error: still draw the curves
        if d.main:
            with contextlib.suppress(Exception):
                plot_curves(out / "metrics.jsonl", out / "curves.png")
        raise
    if d.main:
        plot_curves(out / "metrics.jsonl", out / "curves.png")
    s = trainer.state
    run.say(f"stopped: {why}; step {s.step}, {s.chars:,} chars in {s.elapsed:.0f}s; "
            f"best val loss {s.best_val:.4f} nats ({s.best_val / LN2:.3f} bpc)")
    return {"step": s.step, "best_val": s.best_val, "stopped": why, "seconds": time.time() - t0}
