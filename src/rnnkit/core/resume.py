"""What happens on resume: the training state a checkpoint carries, and the rules for continuing.

A `last` checkpoint holds, besides the weights (`model.*`):

    optim.IDX.NAME      AdamW moments per parameter        tensors
    rng.cpu.RANK        each rank's CPU generator          tensors (rng.cuda.RANK on GPUs)
    carried.h / .c      the carried hidden state, (layers, global batch, hidden)
    meta["train"]       the TrainConfig                    JSON
    meta["state"]       step, chars, elapsed, best_val, evals_since_best, horizon, world,
                        optimizer hyper-parameters and scalar state

A resumed run takes its configs from the checkpoint; only the limits and cadences in `RESUMABLE`
may change. It restores the optimizer, every rank's RNG (same world size) and its rows of the
carried state, so k steps + resume to n equals n steps bit for bit (CPU, fixed seed).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .checkpoint import Checkpoint, CheckpointError, find_checkpoint, prefixed
from .config import ModelConfig, TrainConfig, UsageError, param
from .train import TrainState

# settings that may change when a run is resumed; everything else is fixed by the checkpoint
RESUMABLE = {"max_steps", "max_time", "patience", "eval_every", "save_every", "log_every", "device",
             "threads", "decay_steps", "eval_chars", "sample_chars"}


def state_tensors(model: nn.Module, opt: torch.optim.Optimizer, s: TrainState,
                  d: distributed.Dist) -> tuple[dict, dict]:
    """Tensors and JSON state of everything training needs to continue exactly (every rank
    calls this: the RNG states and carried rows are gathered to rank 0)."""
    tensors = prefixed("model", model.state_dict())
    osd = opt.state_dict()
    scalars = {}
    for idx, st in osd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
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
    info = {"step": s.step, "chars": s.chars, "elapsed": s.elapsed,
            "best_val": s.best_val if math.isfinite(s.best_val) else None,
            "evals_since_best": s.evals_since_best, "horizon": s.horizon, "world": d.world,
            "optim_groups": groups, "optim_scalars": scalars}
    return tensors, info


def _restore(tensors: dict, info: dict, opt: torch.optim.Optimizer, d: distributed.Dist,
             rows: slice) -> TrainState:
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
    carried = tuple(tensors[f"carried.{n}"][:, rows].contiguous().to(d.device)
                    for n in "hc" if f"carried.{n}" in tensors)
    s = TrainState(step=info["step"], chars=info["chars"], elapsed=info["elapsed"],
                   best_val=info["best_val"] if info["best_val"] is not None else math.inf,
                   evals_since_best=info["evals_since_best"], horizon=info["horizon"])
    s.carried = None if not carried else carried if len(carried) == 2 else carried[0]
    return s


def _misfits(s: TrainState, model: nn.Module, opt: torch.optim.Optimizer, rows: slice) -> list[str]:
    """How a restored training state does not fit the model (empty when it fits)."""
    diffs = [f"optimizer {k} of a {tuple(p.shape)} weight has shape {tuple(v.shape)}"
             for p, st in opt.state.items() for k, v in st.items()
             if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape]
    c = model.config
    want = (c.layers, rows.stop - rows.start, c.hidden)
    parts = s.carried if isinstance(s.carried, tuple) else (s.carried,) if s.carried is not None else ()
    n_parts = 2 if c.cell == "lstm" else 1
    if parts and len(parts) != n_parts:
        diffs.append(f"carried state has {len(parts)} part(s), a {c.cell} carries {n_parts}")
    diffs += [f"carried state has shape {tuple(t.shape)}, the model needs {want}"
              for t in parts if tuple(t.shape) != want]
    return diffs


def restore_state(ckpt: Checkpoint, model: nn.Module, opt: torch.optim.Optimizer, d: distributed.Dist,
                  rows: slice) -> TrainState:
    """The optimizer, RNG and carried state of `ckpt` put back; a CheckpointError naming the file
    when the saved state does not fit the model (it would otherwise fail at the first step)."""
    try:
        s = _restore(ckpt.tensors, ckpt.meta["state"], opt, d, rows)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{ckpt.path}: training state does not fit the model ({type(e).__name__}: {first})")
    diffs = _misfits(s, model, opt, rows)
    if diffs:
        raise CheckpointError(f"{ckpt.path}: training state does not fit the model: " + "; ".join(diffs[:4]))
    return s


def resume_point(run_dir: Path, changes: dict, warn) -> tuple[Checkpoint, TrainConfig, ModelConfig]:
    """The checkpoint to continue from (`last`, else `prev`) and the configs it fixes, with the
    allowed `changes` applied; anything else that differs is refused."""
    ckpt = find_checkpoint(run_dir, ("last", "prev"), warn)
    meta = ckpt.meta
    if (meta.get("kind") != "charlm" or not isinstance(meta.get("train"), dict)
            or not isinstance(meta.get("state"), dict)):
        raise CheckpointError(f"{ckpt.path}: not a resumable rnnkit training checkpoint (no training state)")
    fixed = sorted(k for k in changes if k not in RESUMABLE)
    if fixed:
        raise UsageError(f"{', '.join(map(param, fixed))} cannot change when resuming (the checkpoint "
                         "fixes them); start a new run in another directory to change them")
    tcfg = TrainConfig.from_dict(meta["train"], where=f"{ckpt.path} train config")
    tcfg = dataclasses.replace(tcfg, **changes).validate()
    return ckpt, tcfg, ModelConfig.from_record(meta["model"], where=f"{ckpt.path} model config")
