"""Character language models end to end: run directory -> data -> model -> Trainer -> checkpoints.

    from rnnkit import ModelConfig, TrainConfig, resume_lm, train_lm
    res = train_lm(TrainConfig(files=["input.txt"], max_steps=2000), ModelConfig(hidden=256), "runs/x")
    res = resume_lm("runs/x", max_steps=4000)          # only limits and cadences may change

The CLI's `rnnkit train` is this module; under torchrun it trains with DDP (see distributed.py):

    torchrun --nproc-per-node 2 -m rnnkit train input.txt --out runs/ddp --threads 1
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..core import distributed, presets
from ..core.checkpoint import Checkpoint, build_model, model_meta, save_checkpoint, set_aside
from ..core.config import ModelConfig, SampleConfig, TrainConfig, UsageError, param, setting
from ..core.fileio import bits, warn, write_atomic
from ..core.models import SequenceModel, check_memory, count_params, init_of
from ..core.plots import plot_curves
from ..core.precision import check as check_precision
from ..core.precision import resolve as resolve_precision
from ..core.regularize import param_groups
from ..core.resume import restore_state, resume_point, state_tensors
from ..core.runlog import METRICS, RunLog
from ..core.train import Hooks, LoopConfig, Trainer, TrainState
from ..core.vocab import Vocab
from ..core.watch import LearningWatch
from ..core.windows import RandomWindows, StreamBatches, split_ids
from .corpus import load_ids
from .evaluate import distributed_loss
from .rundata import RunDir, data_record, resumed_ids
from .sample import generate

# periodic evaluations read the validation text as this many parallel streams (3,125 chars each at
# the default eval_chars 50,000): as fast per char as 32 streams here, with half the cold starts
EVAL_STREAMS = 16


@dataclass
class TrainResult:
    """How a training run ended. `res["step"]` also works (the 0.1 dict form)."""

    run_dir: Path
    step: int
    best_val: float          # lowest validation loss, nats per symbol (inf: never evaluated)
    stopped: str             # why it stopped
    seconds: float

    @property
    def best_bpc(self) -> float:
        return bits(self.best_val)

    def __getitem__(self, key: str):
        return getattr(self, key)


@dataclass
class Session:
    """Everything one training run is built from, in the order it is built."""

    d: distributed.Dist
    run: RunDir
    tcfg: TrainConfig
    mcfg: ModelConfig
    log: RunLog
    vocab: Vocab
    train_ids: np.ndarray
    val_ids: np.ndarray
    data: Optional[dict] = None        # the record of the encoded corpus (rundata.data_record)
    batches: object = None             # StreamBatches or RandomWindows over train_ids
    model: SequenceModel = None
    net: torch.nn.Module = None        # the model, wrapped in DDP under torchrun
    opt: torch.optim.Optimizer = None
    state: Optional[TrainState] = None


def shared_ids(sources: list, tcfg: TrainConfig, run: RunDir, vocab: Optional[Vocab], d: distributed.Dist):
    """The id cache is built once: rank 0 first, then the first process of every other machine
    (when the run directory is not shared), then everyone else reads it. No two writers at once."""
    turns = (d.rank == 0, d.rank != 0 and d.local_rank == 0, d.local_rank != 0)
    for mine in turns:
        if mine:
            ids, vocab_out = load_ids(sources, tcfg.encoding, run.data, vocab)
        distributed.barrier(d)
    return ids, vocab_out


def run_text(tcfg: TrainConfig, run: RunDir, ckpt: Optional[Checkpoint], d: distributed.Dist):
    """(ids, vocab, data record): the encoded corpus of a new run, or on resume the run's own copy
    of it (see rundata.py: sources that changed or moved since do not change the run)."""
    record = ckpt.meta.get("data") if ckpt else None
    if record is None:             # a new run, or a checkpoint from before records were kept
        vocab_in = Vocab.from_json(ckpt.meta["vocab"]) if ckpt else None
        ids, vocab = shared_ids(run.sources(tcfg), tcfg, run, vocab_in, d)
        return ids, vocab, data_record(Path(ids.filename), ids, run.sources(tcfg)) if d.main else None
    vocab = Vocab.from_json(ckpt.meta["vocab"])
    ids, sources = resumed_ids(run.path, record, warn if d.main else (lambda m: None))
    if ids is None:                # the copy is gone: rebuilt from the unchanged sources
        ids, _ = shared_ids(sources, tcfg, run, vocab, d)
        record = data_record(Path(ids.filename), ids, sources)
    return ids, vocab, record


def open_session(tcfg: TrainConfig, mcfg: ModelConfig, run: RunDir, ckpt: Optional[Checkpoint],
                 d: distributed.Dist, quiet: bool) -> Session:
    """Seed, read the data and build model and optimizer (restored from `ckpt` when resuming)."""
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed + d.rank)
    ids, vocab, record = run_text(tcfg, run, ckpt, d)
    train_ids, val_ids = split_ids(ids, tcfg.val_fraction)
    mcfg = dataclasses.replace(mcfg, vocab_size=len(vocab)).validate()
    check_train_memory(mcfg, tcfg, d)
    s = Session(d, run, tcfg, mcfg, RunLog(run.path, d.main, quiet), vocab, train_ids, val_ids, record)
    s.batches = batches_of(s)                  # a text too short is refused before the model is built
    s.model = build_model(ckpt, d.device)[0] if ckpt else SequenceModel(mcfg).to(d.device)
    # DDP copies rank 0's weights to every rank here and averages the gradients in backward()
    s.net = DistributedDataParallel(s.model, device_ids=[d.device.index] if d.device.type == "cuda" else None) \
        if d.active else s.model
    # fused: one pass over each parameter instead of ~10 elementwise kernels (CPU and CUDA)
    s.opt = torch.optim.AdamW(param_groups(s.model, tcfg.weight_decay), lr=tcfg.lr, weight_decay=tcfg.weight_decay,
                              fused=d.device.type in ("cpu", "cuda"))
    return s


def batches_of(s: Session):
    t, d = s.tcfg, s.d
    if t.batching == "streams":
        return StreamBatches(s.train_ids, t.batch, t.seq_len, d.rank, d.world)
    return RandomWindows(s.train_ids, t.batch, t.seq_len, t.seed, d.rank, d.world)


def announce(s: Session, resumed_at: Optional[int]) -> None:
    """The run's summary lines, and config.json (what `--config` accepts back)."""
    t, m, d = s.tcfg, s.mcfg, s.d
    split = (f"train {len(s.train_ids):,} chars (first {1 - t.val_fraction:.0%}), "
             f"validation {len(s.val_ids):,} chars (last {t.val_fraction:.0%})")
    src = ", ".join(t.files) if t.files else f"built-in corpus '{t.corpus}'"
    s.log.say(f"data: {src}; {split}; vocabulary {len(s.vocab)} ({t.encoding})")
    procs = f", {d.world} process{'es' if d.world > 1 else ''} ({d.backend})" if d.active else ""
    s.log.say(f"recipe: preset {t.preset}; lr {t.lr:g}, batch {t.batch}, dropout {m.dropout:g}, weight drop "
              f"{m.weight_drop:g}, locked dropout {m.locked_dropout:g}, weight decay {t.weight_decay:g}, "
              f"init {init_of(m)} ({setting('init', m.init)})")
    s.log.say(f"model: {m.cell} x{m.layers}, hidden {m.hidden}, embed {m.embed or 'one-hot'}, "
              f"{count_params(s.model):,} parameters on {d.device}{procs}, "
              f"precision {resolve_precision(t.precision, d.device)} ({setting('precision', t.precision)})")
    if resumed_at is not None:
        s.log.say(f"resuming {s.run.path} at step {resumed_at}")
    if d.main:
        config = {"train": t.to_dict(), "model": m.to_dict(), "vocab_size": len(s.vocab)}
        write_atomic(s.run.path / "config.json", json.dumps(config, indent=2), "config")


class LMHooks:
    """What the Trainer calls out to for a character LM: evaluate, save, log."""

    def __init__(self, s: Session):
        self.s = s
        self.trainer: Optional[Trainer] = None
        self.watch = LearningWatch(s.train_ids, s.tcfg.lr)

    def warn_stuck(self, step: int, message: Optional[str]) -> None:
        if message:
            self.s.log.say(message)
            self.s.log.record({"step": step, "not_learning": message})

    def evaluate(self, st: TrainState) -> float:
        s, t = self.s, self.s.tcfg
        n = len(s.val_ids) if not t.eval_chars else min(len(s.val_ids), t.eval_chars)
        streams = min(EVAL_STREAMS, max(1, (n - 1) // 2))   # a short split: fewer, still whole streams
        val = distributed_loss(s.model, s.val_ids[:n], s.d, streams)
        rec = {"step": st.step, "chars": st.chars, "val_loss": val, "val_bpc": bits(val), "time": round(st.elapsed, 3),
               "unix_time": round(time.time(), 3)}
        if s.d.main and t.sample_chars:
            rec["sample"] = generate(s.model, s.vocab, SampleConfig(length=t.sample_chars, temperature=0.8,
                                                                    seed=st.step, device=str(s.d.device)))[0]
        s.log.record(rec)
        s.log.say(f"step {st.step}: val loss {val:.4f} nats ({bits(val):.3f} bpc) on {n:,} chars")
        self.warn_stuck(st.step, self.watch.val(st.step, val))
        return val if math.isfinite(val) else math.inf

    def save(self, st: TrainState, which: str) -> None:
        s = self.s
        tensors, info = state_tensors(s.model, s.opt, st, s.d)
        if s.d.main:
            meta = model_meta(s.model, s.vocab) | {"train": s.tcfg.to_dict(), "state": info,
                                                   "precision": resolve_precision(s.tcfg.precision, s.d.device)}
            if s.data is not None:
                meta["data"] = s.data
            prev = s.run.path / "prev.safetensors" if which == "last" else None
            save_checkpoint(s.run.path / f"{which}.safetensors", tensors, meta, keep_previous=prev)
        distributed.barrier(s.d)

    def log(self, rec: dict) -> None:
        t, st = self.s.tcfg, self.trainer.state
        left = None
        if t.max_steps:
            left = (t.max_steps - rec["step"]) * t.seq_len * t.batch / max(rec["chars_per_s"], 1e-9)
        if t.max_time:
            left = min(left if left is not None else math.inf, t.max_time - rec["time"])
        self.s.log.record(rec)
        self.s.log.progress(rec, t.max_steps, left, best=st.best_val)
        self.warn_stuck(rec["step"], self.watch.train(rec["step"], rec["loss"]))

    def bound(self, given: Hooks) -> Hooks:
        """Ours, where the caller (a test) did not give its own."""
        has_val = len(self.s.val_ids) > 1
        return dataclasses.replace(given, evaluate=given.evaluate or (self.evaluate if has_val else None),
                                   save=given.save or self.save, log=given.log or self.log)


def draw_curves(s: Session) -> None:
    if s.d.main:
        # quietly: a torn last line is what a crash leaves; `rnnkit report` counts bad records aloud
        plot_curves(s.run.path / METRICS, s.run.path / "curves.png", warn=lambda m: None)


def run_session(s: Session, hooks: Hooks) -> TrainResult:
    """Train until a limit; draw the curves whatever happens (a signal, a non-finite loss)."""
    ours = LMHooks(s)
    trainer = ours.trainer = Trainer(s.net, s.batches, LoopConfig.of(s.tcfg), s.opt, s.d, ours.bound(hooks), s.state)
    t0 = time.time()
    try:
        why = trainer.run()
    except BaseException:
        with contextlib.suppress(Exception):
            draw_curves(s)
        raise
    draw_curves(s)
    st = trainer.state
    s.log.say(f"stopped: {why}; step {st.step}, {st.chars:,} chars in {st.elapsed:.0f}s; "
              f"best val loss {st.best_val:.4f} nats ({bits(st.best_val):.3f} bpc)")
    return TrainResult(s.run.path, st.step, st.best_val, why, time.time() - t0)


def _train(tcfg: Optional[TrainConfig], mcfg: Optional[ModelConfig], out: Path, changes: Optional[dict],
           quiet: bool, hooks: Hooks, d: distributed.Dist, explicit=None) -> TrainResult:
    """A new run (changes is None) or the continuation of the one in `out`."""
    report = warn if d.main else (lambda m: None)
    run = RunDir(out, d)
    ckpt = None
    if changes is not None:
        ckpt, tcfg, mcfg = resume_point(out, changes, report)
    else:    # the recipe fills in what was not given; the run records the resolved values
        tcfg, mcfg = presets.apply(tcfg.validate(), mcfg, d.device, explicit)
    check_train_memory(mcfg, tcfg.validate(), d)  # before anything is written (vocabulary size 1 until read)
    check_precision(tcfg.precision, d.device)
    with run.claimed(tcfg, resuming=ckpt is not None):
        s = open_session(tcfg.validate(), mcfg, run, ckpt, d, quiet)
        if ckpt:
            s.state = restore_state(ckpt, s.model, s.opt, d, s.batches.rows)
            if d.main and ckpt.path.name != "last.safetensors":  # `last` was damaged: never rotate it into prev
                aside = set_aside(out / "last.safetensors")
                if aside:
                    report(f"the damaged last checkpoint is kept as {aside.name}")
        announce(s, s.state.step if s.state else None)
        for note in schedule_notes(s, changes):
            s.log.say(f"note: {note}")
        return run_session(s, hooks)


def check_train_memory(mcfg: ModelConfig, tcfg: TrainConfig, d: distributed.Dist) -> None:
    """models.check_memory for one training step: on CPU the ranks of a machine share its memory
    (the whole --batch counts), on a GPU each rank holds its share of the batch."""
    batch = -(-tcfg.batch // d.world) if d.device.type == "cuda" else tcfg.batch
    check_memory(dataclasses.replace(mcfg, vocab_size=max(mcfg.vocab_size, 1)), batch, tcfg.seq_len,
                 device=d.device)


def schedule_notes(s: Session, changes: Optional[dict]) -> list[str]:
    """What the schedule will do that a user may not expect (refused where it cannot work)."""
    t, st, notes = s.tcfg, s.state, []
    if t.patience and len(s.val_ids) < 2:
        raise UsageError(f"{param('patience')} needs a validation split, but {param('val_fraction')} "
                         f"{t.val_fraction} leaves {len(s.val_ids)} characters; raise it or drop patience")
    if changes is None and t.max_steps is not None and t.warmup >= t.max_steps:
        notes.append(f"warm-up ({t.warmup} steps) is as long as the run ({t.max_steps} steps): the learning "
                     f"rate never reaches {t.lr:g}; lower {param('warmup')}")
    extended = (changes is not None and st is not None and st.horizon is not None and t.schedule == "cosine"
                and "decay_steps" not in changes and t.max_steps is not None and t.max_steps > st.horizon)
    if extended:
        notes.append(f"the cosine schedule ends at step {st.horizon}: steps {st.horizon + 1}-{t.max_steps} train at "
                     f"its floor lr {t.lr * t.min_lr_ratio:.3g}. To decay over the longer run instead, add "
                     f"{setting('decay_steps', t.max_steps)} (the cosine is stretched from where it is)")
    return notes


def _guarded(tcfg, mcfg, out, changes, quiet, hooks, explicit=None) -> TrainResult:
    device = (changes or {}).get("device", tcfg.device if tcfg else "auto")
    d = distributed.setup(device)
    try:
        return _train(tcfg, mcfg, Path(out), changes, quiet, hooks or Hooks(), d, explicit)
    except torch.distributed.DistError as e:  # a collective failed: another rank died or hung
        raise distributed.lost_peer(d, e) from None
    except RuntimeError as e:  # DDP's all-reduce inside backward: gloo raises a plain RuntimeError
        if distributed.is_lost_peer(d, e):
            raise distributed.lost_peer(d, e) from None
        raise
    finally:
        distributed.teardown(d, sys.exc_info()[2])


def train_lm(tcfg: Optional[TrainConfig], mcfg: Optional[ModelConfig] = None, out: str | Path = "runs/lm",
             resume: bool = False, given: Optional[dict] = None, quiet: bool = False,
             hooks: Optional[Hooks] = None, explicit=None) -> TrainResult:
    """Train a new character LM in run directory `out` (refused if `out` holds anything else).
    `tcfg.preset` fills in the fields not named in `explicit` (None: those left at their
    defaults; see presets.py). `resume=True, given={...}` is the 0.1 spelling of
    `resume_lm(out, **given)`."""
    if resume:
        return resume_lm(out, quiet=quiet, hooks=hooks, **(given or {}))
    if tcfg is None:
        raise UsageError("train_lm needs a TrainConfig (to continue a run use resume_lm)")
    return _guarded(tcfg, mcfg or ModelConfig(), out, None, quiet, hooks, explicit)


def resume_lm(run_dir: str | Path, quiet: bool = False, hooks: Optional[Hooks] = None, **changes) -> TrainResult:
    """Continue the run in `run_dir` exactly where its `last` checkpoint stopped. `changes` may
    set only limits and cadences (max_steps, max_time, patience, eval_every, ...)."""
    return _guarded(None, None, run_dir, changes, quiet, hooks)
