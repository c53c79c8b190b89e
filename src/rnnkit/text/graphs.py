"""Generation in chunks of K steps, replayed on CUDA as one captured graph.

A one-character step on a GPU is a dozen tiny kernels, and launching them costs more than running
them (4,166 chars/s from a 2x512 LSTM on an H200, issue 24). `ChunkRunner` runs K sampling steps
(the Picker's choice, then FastStep.step) that write the drawn ids into a static (K, N) buffer.
On CUDA those K steps are captured once per `generate` call as a torch.cuda.CUDAGraph and
replayed; the host reads the K ids after each replay, one sync per K characters:

    per chunk:  Picker noise for steps t..t+K-1 --copy--> static noise (K, N, V)   (outside the graph)
                replay: K x [ ids[s] = choose(logits, noise[s]); logits = step(ids[s]) ]
                host:   ids (K, N) -> text, stop strings, on_text (overshoot past a stop is cut)

The noise comes from the Picker's seeded generator exactly as the per-step loop draws it (blocks
of `pick.chunk` steps, in order), and the graph replays the kernels the eager step launches, so a
seed gives the same text either way. The first steps run eagerly on a side stream (the warm-up
the CUDA graphs docs ask for). If the capture fails, or a replay cannot be launched, the same
steps run eagerly instead: the same text, only slower, never an error.

On a CPU (or with `graphs on` anywhere without CUDA) the same chunks run eagerly, which is what
the CPU tests hold to the per-step loop.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import torch

from .step import FastStep

MODES = ("auto", "on", "off")
WARMUP = 2   # eager steps on the side stream before the capture


def chunk_steps(length: int) -> int:
    """K, about sqrt(length / 2) as a power of two in [8, 128]: a short text pays for the capture
    (one recorded pass over K steps), a long one for a host sync every K steps."""
    k = 2 ** round(math.log2(max(1.0, math.sqrt(length / 2))))
    return max(8, min(128, k))


def runner_for(mode: str, stepper, pick, n: int, length: int, device: torch.device):
    """A ChunkRunner for `--graphs` `mode` (auto: on CUDA only), or None for the per-step loop."""
    if mode == "off" or not isinstance(stepper, FastStep) or length == 0:
        return None
    capture = device.type == "cuda"
    if mode == "auto" and not capture:
        return None
    return ChunkRunner(stepper, pick, n, length, capture)


def side_stream(device: torch.device):
    """The stream that warms up and captures (a new one on the model's GPU, as the CUDA graphs
    docs do; the tests replace it with None to run the capture logic on a CPU)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream())
    return side


def capture_graph(runner: "ChunkRunner", side):
    """Records K steps of `runner` into a CUDA graph (nothing runs: the buffers keep their values).
    thread_local: a server's other threads may use the GPU meanwhile."""
    graph = torch.cuda.CUDAGraph()
    try:
        context = torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local")
    except TypeError:   # an older torch without capture_error_mode
        context = torch.cuda.graph(graph, stream=side)
    before = torch.cuda.current_stream()
    try:
        with context:
            runner.steps(runner.K)
    except Exception:
        torch.cuda.set_stream(before)   # a failing capture_end skips the context's stream restore
        raise
    return graph


class ChunkRunner:
    """K steps per call from a FastStep and a Picker, through static buffers (see the module doc)."""

    def __init__(self, stepper: FastStep, pick, n: int, length: int, capture: bool):
        self.stepper, self.pick, self.length = stepper, pick, length
        self.K = max(1, min(chunk_steps(length), pick.chunk, length))   # pick.chunk bounds the noise bytes
        device = stepper.logits.device
        self.ids = torch.zeros(self.K, n, dtype=torch.long, device=device)            # (K, N) drawn ids
        self.noise = None if pick.greedy else torch.zeros((self.K,) + pick.shape[1:], device=device)
        self.capture, self.graph = capture, None          # capture: still to be tried
        self.block, self.block_at = None, -1              # the Picker's current noise block, its index

    def steps(self, count: int) -> None:
        """`count` <= K steps: choose from the current logits (stepper.logits), step the model."""
        st = self.stepper
        for s in range(count):
            self.pick.choose(st.logits, None if self.noise is None else self.noise[s], self.ids[s])
            st.step(self.ids[s])
        st.settle()

    def load_noise(self, t: int) -> None:
        """Static noise rows 0..K-1 <- the noise of steps t..t+K-1, drawn block by block in order
        as the per-step loop draws it (rows past the text's end keep old values: never read out)."""
        if self.noise is None:
            return
        c, s = self.pick.chunk, 0
        while s < self.K and t + s < self.length:
            j, r = divmod(t + s, c)
            if j != self.block_at:
                self.block, self.block_at = self.pick.draw(), j      # (chunk, N, K or V)
            m = min(self.K - s, c - r, self.length - t - s)
            self.noise[s:s + m].copy_(self.block[r:r + m])
            s += m

    def run(self, t: int) -> list[list[int]]:
        """The ids drawn for steps t, t+1, ... (at least one step, at most K), as (steps, N) lists;
        a replay returns all K, which the caller trims to the text's length."""
        self.load_noise(t)
        if self.graph is not None:
            try:
                self.graph.replay()
                return self.ids.tolist()
            except Exception as e:   # not launched: the state is as it was, step eagerly
                self._give_up("replay", e)
        if self.capture and self.length - t - WARMUP >= self.K:
            self.capture = False
            self._warm_up_and_capture()
            return self.ids[:WARMUP].tolist()
        count = min(self.K, self.length - t)
        self.steps(count)
        return self.ids[:count].tolist()

    def _warm_up_and_capture(self) -> None:
        error, side = None, None
        try:
            side = side_stream(self.stepper.logits.device)
        except Exception as e:
            error = e
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            self.steps(WARMUP)                               # real steps of the text
        if side is not None:
            torch.cuda.current_stream().wait_stream(side)
        if error is None:
            try:
                self.graph = capture_graph(self, side)
            except Exception as e:      # an op that cannot be captured, an old driver, ...
                error = e
                if self.stepper.c_home is not None:   # the capture ran nothing: the buffers hold the state
                    self.stepper.c[:] = self.stepper.c_home
        if error is not None:
            self._give_up("capture", error)

    def _give_up(self, what: str, e: Exception) -> None:
        self.graph = None
        warnings.warn(f"sampling without a CUDA graph ({what} failed: {str(e).splitlines()[0] if str(e) else e!r}); "
                      "the text is the same, only slower", RuntimeWarning, stacklevel=3)

    def generate(self, logits: torch.Tensor, emit, stoppers, check=None) -> None:
        """Draws the whole text from the prompt's logits (N, V): emit(rows) per chunk, rows being
        each sample's new ids; ends early once every stopper is done. `check()`, called before
        every chunk, may raise to abandon the work (the server's cancellation)."""
        self.stepper.logits.copy_(logits)
        device = self.stepper.logits.device
        # the model's GPU is the current one, so streams, capture and replay all run on it
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            self._generate(emit, stoppers, check)

    def _generate(self, emit, stoppers, check=None) -> None:
        t = 0
        while t < self.length:
            if check is not None:
                check()
            rows = self.run(t)[:self.length - t]                 # (steps, N)
            emit([list(r) for r in zip(*rows)])                  # (N, steps)
            t += len(rows)
            if stoppers is not None and all(s.done for s in stoppers):
                break
