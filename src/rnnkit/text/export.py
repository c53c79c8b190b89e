"""ONNX export of a trained character model (pip install 'rnnkit[onnx]' to check it with onnxruntime).

    rnnkit export runs/shakespeare --onnx shakespeare.onnx

writes two models with a dynamic batch:
  FILE          the one-character step:  ids (B,) int64, h (L, B, H)[, c (L, B, H)]
                                         -> logits (B, V), h, c   (c for LSTM only)
  FILE.seq.onnx the fused sequence forward: ids (B, T) -> logits (B, T, V), h[, c]  (T dynamic)
and FILE.vocab.json (the symbols, so a sampler needs no PyTorch). Existing files are refused;
--force replaces earlier exports only, never a checkpoint or anyone's file. The exported step is
checked against PyTorch on the spot (see `check_onnx`).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..core.config import ExportConfig, RnnkitError, UsageError, param
from ..core.fileio import write_atomic


class StepModule(nn.Module):
    """ids (B,), state -> logits (B, V), state: one character through the model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.lstm = model, model.config.cell == "lstm"

    def forward(self, ids, h, c=None):
        logits, state = self.model(ids[:, None], (h, c) if self.lstm else h)
        return (logits[:, 0], *state) if self.lstm else (logits[:, 0], state)


class SeqModule(StepModule):
    """ids (B, T), state -> logits (B, T, V), state: the fused forward over a sequence."""

    def forward(self, ids, h, c=None):
        logits, state = self.model(ids, (h, c) if self.lstm else h)
        return (logits, *state) if self.lstm else (logits, state)


def paths(file: str) -> tuple[Path, Path, Path]:
    p = Path(file)
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.name
    return p, p.with_name(stem + ".seq.onnx"), p.with_name(stem + ".vocab.json")


def state_names(lstm: bool) -> tuple[list[str], list[str]]:
    return (["h", "c"], ["h_out", "c_out"]) if lstm else (["h"], ["h_out"])


def is_export(p: Path) -> bool:
    """Whether `p` is a file rnnkit export wrote: the vocabulary JSON with its keys, or an ONNX
    model from PyTorch whose first input is `ids`. A checkpoint, a log or anyone's file is not."""
    try:
        if p.name.endswith(".vocab.json"):
            meta = json.loads(p.read_text(encoding="utf-8"))
            return isinstance(meta, dict) and {"symbols", "kind", "cell", "layers", "hidden", "state"} <= set(meta)
        import onnx
        m = onnx.load(str(p), load_external_data=False)
        return m.producer_name == "pytorch" and [i.name for i in m.graph.input][:1] == ["ids"]
    except Exception:   # unreadable, not JSON, not an ONNX model: not an export
        return False


def check_targets(onnx: str, force: bool) -> tuple[Path, Path, Path]:
    """The three files to write, refused before any work when --onnx names a directory or a
    checkpoint, or when one exists that is not an earlier export (--force replaces only those:
    it never reaches a checkpoint or any other file, issue 26)."""
    p = Path(onnx)
    if onnx.endswith(("/", os.sep)) or p.name in ("", ".", "..") or p.is_dir():
        raise UsageError(f"--onnx {onnx} names a directory; give a file name in it, e.g. "
                         f"{Path(onnx) / 'model.onnx'}")
    if p.suffix == ".safetensors":
        raise UsageError(f"--onnx {onnx} names a checkpoint file; give a name ending in .onnx")
    if not p.parent.is_dir():
        raise UsageError(f"{p.parent}: no such directory")
    out = paths(onnx)
    for f in out:
        if f.is_symlink() or (f.exists() and not f.is_file()):
            raise UsageError(f"{f} is not a regular file; choose another --onnx path")
        if f.exists() and not force:
            raise UsageError(f"{f} exists; pass {param('force')} to overwrite it")
        if f.exists() and not is_export(f):
            raise UsageError(f"{f} exists and was not written by rnnkit export; {param('force')} replaces only "
                             "earlier exports: choose another --onnx path")
    return out


def export_onnx(run_dir: str, cfg: ExportConfig, warn=None) -> list[Path]:
    """Write the step and sequence models and the vocabulary; returns the paths written."""
    from ..core.checkpoint import load_model
    from ..core.models import SequenceModel
    out = check_targets(cfg.onnx, cfg.force)       # before any work
    model, vocab, _ = load_model(run_dir, "cpu", warn=warn)
    if not isinstance(model, SequenceModel):
        raise UsageError(f"{run_dir}: only recurrent character models can be exported")
    c = model.config
    lstm = c.cell == "lstm"
    ins, outs = state_names(lstm)
    state = [torch.zeros(c.layers, 2, c.hidden) for _ in ins]
    batch = {1: "batch"}
    dyn_state = {n: batch for n in ins + outs}
    step_axes = {"ids": {0: "batch"}, "logits": {0: "batch"}, **dyn_state}
    seq_axes = {"ids": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}, **dyn_state}
    jobs = [(StepModule(model), torch.zeros(2, dtype=torch.long), step_axes, out[0]),
            (SeqModule(model), torch.zeros(2, 5, dtype=torch.long), seq_axes, out[1])]
    written = []
    for module, ids, axes, path in jobs:
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with torch.no_grad(), warnings.catch_warnings():   # the exporter's notes on LSTM batch sizes
                warnings.simplefilter("ignore")                  # do not apply: the state is an input
                torch.onnx.export(module.eval(), (ids, *state), str(tmp), input_names=["ids", *ins],
                                  output_names=["logits", *outs], dynamic_axes=axes, opset_version=cfg.opset,
                                  dynamo=False)
            os.replace(tmp, path)
        except Exception as e:
            tmp.unlink(missing_ok=True)
            raise RnnkitError(f"ONNX export failed ({type(e).__name__}: {e})") from None
        written.append(path)
    meta = {"symbols": "".join(vocab.symbols), "kind": vocab.kind, "cell": c.cell, "layers": c.layers,
            "hidden": c.hidden, "state": ins}
    write_atomic(out[2], json.dumps(meta, ensure_ascii=False))
    written.append(out[2])
    return written


def check_onnx(run_dir: str, file: str, steps: int = 200, batch: int = 3, seed: int = 0) -> dict:
    """The largest absolute logit difference between onnxruntime and PyTorch over `steps` one-char
    steps (state fed back) and one sequence forward of the same ids."""
    import numpy as np
    import onnxruntime as ort

    from ..core.checkpoint import load_model
    model, vocab, _ = load_model(run_dir, "cpu")
    step_path, seq_path, _ = paths(file)
    c = model.config
    lstm = c.cell == "lstm"
    ins, _ = state_names(lstm)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, len(vocab), (batch, steps), generator=g)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    step = ort.InferenceSession(str(step_path), opts, providers=["CPUExecutionProvider"])
    seq = ort.InferenceSession(str(seq_path), opts, providers=["CPUExecutionProvider"])
    zeros = {n: np.zeros((c.layers, batch, c.hidden), np.float32) for n in ins}
    with torch.inference_mode():
        ref, _ = model(ids)                                           # (B, T, V)
    state, worst_step = dict(zeros), 0.0
    for t in range(steps):
        logits, *new = step.run(None, {"ids": ids[:, t].numpy(), **state})
        state = dict(zip(ins, new))
        worst_step = max(worst_step, float(np.abs(logits - ref[:, t].numpy()).max()))
    seq_logits = seq.run(None, {"ids": ids.numpy(), **zeros})[0]
    return {"step_max_abs": worst_step, "seq_max_abs": float(np.abs(seq_logits - ref.numpy()).max()),
            "steps": steps, "batch": batch}
