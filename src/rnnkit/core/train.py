"""The training loop. Nothing here knows which model it trains.

`Trainer` runs the long loop (each update is update.py's `optimizer_step`): truncated BPTT with carried
state, the lr schedule, evaluation, early stopping, checkpoints, signals and the non-finite-loss
guard, all configured by a `LoopConfig`. The model is any module called as
`model(x, state) -> (logits, state)`; the batches are any object with `get(step, device)`.
"""
from __future__ import annotations

import dataclasses
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from . import distributed, precision, regularize
from .config import RnnkitError
from .models import detach_state
from .update import NonFiniteLoss, accuracy, cross_entropy, fit, optimizer_step, torch_threads  # noqa: F401 (the old rnnkit.train names)


@dataclass
class LoopConfig:
    """What the long loop needs to know: the schedule, the limits and the cadences. Built from any
    config with fields of the same names (the LM's TrainConfig) by `LoopConfig.of(cfg)`."""

    lr: float = 2e-3
    schedule: str = "cosine"           # cosine | constant
    decay_steps: Optional[int] = None  # cosine length; default: max_steps, or what max_time allows
    warmup: int = 0
    min_lr_ratio: float = 0.05
    clip: float = 0.0
    max_steps: Optional[int] = None
    max_time: Optional[float] = None
    eval_every: int = 200
    save_every: int = 200
    patience: int = 0
    log_every: int = 20
    precision: str = "fp32"            # fp32 | bf16 | auto (precision.py decides what runs)
    seed: int = 0                      # seeds the dropout masks of each step (with the step)

    @classmethod
    def of(cls, cfg) -> "LoopConfig":
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls) if hasattr(cfg, f.name)})


def lr_at(cfg: LoopConfig, step: int, horizon: Optional[int]) -> float:
    """Linear warm-up, then cosine decay to lr * min_lr_ratio at `horizon` (constant after)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant" or not horizon:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / max(1, horizon - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class Interrupted(RnnkitError):
    """Stopped by SIGINT (exit 130) or SIGTERM (exit 143) after saving."""

    def __init__(self, signum: int, step: int):
        name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        super().__init__(f"stopped by {name} at step {step}; checkpoint saved, continue with --resume")
        self.exit_code = 128 + signum


@dataclass
class TrainState:
    """Everything about progress that a checkpoint must restore."""

    step: int = 0
    chars: int = 0
    elapsed: float = 0.0
    best_val: float = math.inf
    evals_since_best: int = 0
    horizon: Optional[int] = None      # cosine schedule length in steps, fixed once known
    carried: object = None             # hidden state carried between stream windows
    extra: dict = field(default_factory=dict)


class SignalFlag:
    """Records SIGINT/SIGTERM so the loop can stop at the next step boundary."""

    def __init__(self):
        self.signum = 0

    def __enter__(self):
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)


@dataclass
class Hooks:
    """What the loop calls out to; each may be None."""

    evaluate: Optional[Callable[[TrainState], float]] = None       # -> validation loss (nats)
    save: Optional[Callable[[TrainState, str], None]] = None        # (state, "last" | "best")
    log: Optional[Callable[[dict], None]] = None                   # metrics record
    inject: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None  # tests: alter the loss


REFIT_EVERY = 50   # steps between refits of a --max-time schedule length
SYNC_EVERY = 20    # on a GPU, the host reads the loss and the ranks agree at least this often
FAST_STEP = None   # None: the sync-free step on CUDA with fused AdamW; True/False force it (tests)


class TrainClock:
    """Seconds of training: `elapsed` at the start plus wall time since, less the time spent
    `aside` (periodic evaluation with its sample, checkpoint writes). --max-time counts this."""

    def __init__(self, elapsed: float):
        self.t0, self.e0, self.paused = time.time(), elapsed, 0.0

    def __call__(self) -> float:
        return self.e0 + time.time() - self.t0 - self.paused

    @contextmanager
    def aside(self):
        t = time.time()
        try:
            yield
        finally:
            self.paused += time.time() - t


class Trainer:
    """Truncated-BPTT training of `model` on `batches` (StreamBatches or RandomWindows)."""

    def __init__(self, model: nn.Module, batches, cfg: LoopConfig, optimizer: torch.optim.Optimizer,
                 d: distributed.Dist, hooks: Hooks, state: Optional[TrainState] = None,
                 loss_fn: Callable = cross_entropy):
        self.model, self.batches, self.cfg, self.opt, self.d = model, batches, cfg, optimizer, d
        self.hooks, self.loss_fn = hooks, loss_fn
        self.state = state or TrainState()
        self.precision = precision.resolve(cfg.precision, d.device)   # "fp32" | "bf16", what runs
        self.mask_gen = torch.Generator(device=d.device)
        # a GPU with fused AdamW steps without waiting for the host (device_step); else every step syncs
        fused = bool(getattr(optimizer, "defaults", {}).get("fused"))
        self.fast = fused and (d.device.type == "cuda" if FAST_STEP is None else FAST_STEP)
        self.at_sync = True                           # the last step agreed across ranks (see synced)
        self.bad_at: Optional[torch.Tensor] = None    # GPU: the first step with a non-finite loss (-1: none)

    def masks(self, step: int) -> regularize.MaskDraw:
        """The dropout masks of `step`: seeded by (seed, step) alike on every rank (regularize.py)."""
        seed = (self.cfg.seed * 1_000_003 + step) % (1 << 62)
        return regularize.MaskDraw(self.mask_gen, seed, self.batches.rows, self.batches.batch)

    def synced(self, step: int) -> bool:
        """Whether step `step` (1-based) reads the loss on the host and agrees across ranks: every
        step on a CPU; on a GPU only where a log line, an evaluation, a save or a limit needs it, so
        the host queues steps ahead instead of waiting for each."""
        cfg = self.cfg
        return (not self.fast or step == 1 or step % cfg.log_every == 0 or step % SYNC_EVERY == 0
                or step % cfg.eval_every == 0 or step % cfg.save_every == 0
                or (cfg.max_steps is not None and step >= cfg.max_steps))

    def step(self, flag: SignalFlag, clock: Optional[Callable[[], float]] = None) -> tuple[Optional[float], bool]:
        """One optimizer step; returns (global mean loss, whether any rank was signalled), the loss
        None on a step that does not sync. `clock()` is this rank's training time; the ranks' mean
        becomes `state.elapsed`, so every rank takes the same --max-time decisions and the same
        schedule length."""
        s, cfg = self.state, self.cfg
        if not self.batches.carries_state or self.batches.starts_epoch(s.step):
            s.carried = None
        x, y = self.batches.get(s.step, self.d.device)
        lr = lr_at(cfg, s.step, s.horizon)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.model.train()
        with precision.autocast(self.precision, self.d.device), regularize.drawn_from(self.masks(s.step)):
            logits, new_state = self.model(x, s.carried)
        loss = self.loss_fn(logits, y)
        if self.hooks.inject:
            loss = self.hooks.inject(s.step, loss)
        mean_loss, signalled = None, False
        self.at_sync = self.synced(s.step + 1) or (flag.signum != 0 and not self.d.active)
        if self.at_sync:
            mean_loss, signalled = self.agree(loss, flag, clock, lr)
        elif clock:
            s.elapsed = clock()
        if self.fast:
            self.device_step(loss)
        else:
            optimizer_step(self.model, self.opt, loss, cfg.clip, check=False)
        s.carried = detach_state(new_state) if self.batches.carries_state else None
        s.step += 1
        s.chars += x.numel() * self.d.world
        return mean_loss, signalled

    def agree(self, loss: torch.Tensor, flag: SignalFlag, clock, lr: float) -> tuple[float, bool]:
        """One small all-reduce: the global loss, whether any rank must stop or saw a non-finite
        loss (this step's, or on a GPU any since the last sync), the clock. Raises NonFiniteLoss."""
        s = self.state
        local = loss.item()
        earlier = int(self.bad_at.item()) if self.bad_at is not None else -1
        bad = not math.isfinite(local) or earlier >= 0
        shared = distributed.all_reduce_sum(self.d, torch.tensor(
            [local, float(flag.signum != 0), float(bad), clock() if clock else s.elapsed], dtype=torch.float64))
        w = self.d.world
        s.elapsed = shared[3].item() / w
        if shared[2].item() > 0:
            at = earlier + 1 if earlier >= 0 else s.step + 1
            raise NonFiniteLoss(f"non-finite loss at step {at} (lr {lr:.3g}); stopped without "
                                "updating the weights; the last checkpoint is intact. Lower --lr or --clip")
        return shared[0].item() / w, shared[1].item() > 0

    def device_step(self, loss: torch.Tensor) -> None:
        """optimizer_step without a host wait: a non-finite loss or gradient norm skips the update
        on the device (fused AdamW's found_inf, as GradScaler uses it) and is reported at the next
        sync, naming the step. Every later step until then is skipped too (a one-off non-finite
        loss included), so the weights stay as they were before it."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        bad = ~torch.isfinite(loss.detach())
        if self.cfg.clip:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
            bad = bad | ~torch.isfinite(norm)
        if self.bad_at is None:
            self.bad_at = torch.full((), -1, dtype=torch.long, device=loss.device)
        self.bad_at = torch.where(bad & (self.bad_at < 0), self.state.step, self.bad_at)
        # skip this step and every later one until the sync reports it, a finite one included:
        # the weights stay those from before the bad step, as the synced step leaves them
        self.opt.found_inf = (self.bad_at >= 0).float().reshape(())
        try:
            self.opt.step()
        finally:
            self.opt.found_inf = None

    def should_stop(self) -> Optional[str]:
        s, cfg = self.state, self.cfg
        if cfg.max_steps is not None and s.step >= cfg.max_steps:
            return f"reached --max-steps {cfg.max_steps}"
        if cfg.max_time is not None and s.elapsed >= cfg.max_time and (self.at_sync or not self.d.active):
            return f"reached --max-time {cfg.max_time:g}s"
        if cfg.patience and s.evals_since_best >= cfg.patience:
            return f"no better validation loss in {cfg.patience} evaluations (--patience)"
        return None

    def fix_horizon(self, steps_per_s: float, refit: bool = False) -> None:
        """The cosine schedule's length: --decay-steps, else --max-steps, else what --max-time allows
        at `steps_per_s` (with `refit`, the time-based length is updated to a newer speed)."""
        s, cfg = self.state, self.cfg
        if s.horizon is not None and not (refit and self.time_fitted()):
            return
        if cfg.max_steps is not None:
            s.horizon = cfg.max_steps
        elif cfg.max_time is not None and steps_per_s > 0:
            s.horizon = s.step + int(steps_per_s * max(0.0, cfg.max_time - s.elapsed))

    def time_fitted(self) -> bool:
        """The schedule's length comes from --max-time and the measured speed."""
        cfg = self.cfg
        return cfg.max_time is not None and cfg.decay_steps is None and cfg.max_steps is None

    def track_speed(self, start: tuple[int, float], ref: Optional[tuple[int, float]]) -> Optional[tuple[int, float]]:
        """Fit the schedule's length after the first 20 steps (or 10 s), then refit it every
        REFIT_EVERY steps to the speed measured since then (past warm-up, so a short run does not
        reach the floor lr early). `start`/`ref`: (step, elapsed) at this run's start / first fit."""
        s = self.state
        if ref is None:
            if s.step - start[0] >= 20 or s.elapsed - start[1] > 10:
                self.fix_horizon((s.step - start[0]) / max(1e-9, s.elapsed - start[1]))
                return (s.step, s.elapsed)
            return None
        if (s.step - ref[0]) % REFIT_EVERY == 0:
            self.fix_horizon((s.step - ref[0]) / max(1e-9, s.elapsed - ref[1]), refit=True)
        return ref

    def evaluate(self) -> None:
        s, h = self.state, self.hooks
        if not h.evaluate:
            return
        val = h.evaluate(s)
        improved = val < s.best_val
        s.evals_since_best = 0 if improved else s.evals_since_best + 1
        if improved:
            s.best_val = val
            if h.save:
                h.save(s, "best")

    def run(self) -> str:
        """Train until a limit; returns why it stopped. Saves `last` at the end."""
        s, cfg, h = self.state, self.cfg, self.hooks
        if cfg.decay_steps is not None:
            s.horizon = cfg.decay_steps
        elif s.horizon is None and cfg.max_steps is not None:
            s.horizon = cfg.max_steps
        window_t, window_chars = time.time(), s.chars
        clock, start, ref = TrainClock(s.elapsed), (s.step, s.elapsed), None
        saved_at = None  # the step `last` was written at, so the final save does not repeat it
        with SignalFlag() as flag:
            while (why := self.should_stop()) is None:
                loss, signalled = self.step(flag, clock=clock)
                ref = self.track_speed(start, ref)
                if s.step % cfg.log_every == 0 or s.step == 1:
                    now = time.time()
                    rate = (s.chars - window_chars) / max(1e-9, now - window_t)
                    window_t, window_chars = now, s.chars
                    if h.log:
                        h.log({"step": s.step, "chars": s.chars, "loss": loss, "lr": self.opt.param_groups[0]["lr"],
                               "chars_per_s": rate, "time": round(s.elapsed, 3)})
                if s.step % cfg.eval_every == 0:
                    with clock.aside():
                        self.evaluate()
                if signalled:
                    if h.save:
                        h.save(s, "last")
                    raise Interrupted(flag.signum or signal.SIGTERM, s.step)
                if s.step % cfg.save_every == 0 and h.save:
                    with clock.aside():
                        h.save(s, "last")
                    saved_at = s.step
        if s.step % cfg.eval_every != 0:
            self.evaluate()
        if h.save and saved_at != s.step:
            h.save(s, "last")
        return why

