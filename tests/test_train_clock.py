"""--max-time counts training only, and the cosine length follows the settled speed."""
import time
from types import SimpleNamespace

import torch

from rnnkit.core.config import TrainConfig
from rnnkit.core.train import REFIT_EVERY, Hooks, TrainClock, Trainer


def test_clock_leaves_out_time_set_aside():
    clock = TrainClock(5.0)
    with clock.aside():
        time.sleep(0.3)
    assert 5.0 <= clock() < 5.2   # the 0.3 s aside are not training time


def trainer(**cfg) -> Trainer:
    d = SimpleNamespace(device=torch.device("cpu"), world=1)
    return Trainer(torch.nn.Linear(1, 1), None, TrainConfig(**cfg), None, d, Hooks())


def run_steps(t: Trainer, rates: list[tuple[int, float]]):
    """Advance the state by (steps, steps per second) pieces, calling track_speed after each step."""
    s, start, ref = t.state, (0, 0.0), None
    for steps, rate in rates:
        for _ in range(steps):
            s.step += 1
            s.elapsed += 1.0 / rate
            ref = t.track_speed(start, ref)
    return ref


def test_schedule_refit_to_the_settled_speed():
    t = trainer(max_time=100.0)
    run_steps(t, [(20, 2.0)])               # slow warm-up: 2 steps/s for 10 s
    first = t.state.horizon
    assert first == 20 + int(2.0 * 90)      # fitted on the warm-up speed
    run_steps(t, [(REFIT_EVERY * 4, 10.0)])  # then 10 steps/s
    s = t.state
    assert s.horizon == s.step + int(10.0 * (100.0 - s.elapsed))  # the speed since the first fit
    assert s.horizon > 2 * first


def test_fixed_lengths_are_never_refit():
    for cfg in (dict(max_time=100.0, decay_steps=500), dict(max_time=100.0, max_steps=300)):
        t = trainer(**cfg)
        t.state.horizon = cfg.get("decay_steps") or cfg["max_steps"]
        run_steps(t, [(20, 2.0), (REFIT_EVERY * 2, 10.0)])
        assert t.state.horizon == (cfg.get("decay_steps") or cfg["max_steps"])
