"""Checkpoints: one safetensors file each, tensors plus a JSON header, never pickle.

A checkpoint rebuilds itself: the JSON (in the safetensors metadata) holds the schema version, the
model and training configs, the vocabulary and the training state; the tensors hold the weights,
the optimizer moments, the RNG states and the carried hidden state. A SHA-256 over the JSON and
every tensor's bytes catches truncation and flipped bits. Writes go to a temporary file that is
fsynced and renamed, so a crash or a full disk never damages the previous checkpoint.

A run directory holds `last.safetensors`, `prev.safetensors` (the `last` before it, the fallback)
and `best.safetensors` (lowest validation loss).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import Config, ModelConfig, RnnkitError, UsageError
from .fileio import check_regular_file, fsync_dir, tmp_name, write_synced
from .models import SequenceModel, check_memory, shapes_only
from .vocab import Vocab, check_symbols

SCHEMA = 1
SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


class CheckpointError(RnnkitError):
    """A checkpoint that cannot be used: damaged, incompatible, or missing."""

    exit_code = 2


class Checkpoint(NamedTuple):
    """One verified checkpoint file: where it is, its tensors and its JSON header."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


@dataclass
class Loaded:
    """A trained model rebuilt from its checkpoint: the same record for every kind of model.
    `vocab` is set for character LMs, `scaler` for forecasters. Unpacks as the 0.1 tuples:
    `model, vocab, meta = load_model(...)`, `model, scaler, config, meta = load_forecaster(...)`."""

    model: torch.nn.Module
    config: Config
    meta: dict[str, Any]
    path: Path
    vocab: Optional[Vocab] = None
    scaler: Any = None

    def __iter__(self):
        if self.scaler is not None:
            return iter((self.model, self.scaler, self.config, self.meta))
        return iter((self.model, self.vocab, self.meta))


def _digest(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                    keep_previous: Path | None = None) -> None:
    """Save atomically. With `keep_previous`, an existing file at `path` is first moved there."""
    path = Path(path)
    meta = {"schema": SCHEMA, **meta}
    meta_json = json.dumps(meta, sort_keys=True)
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {"rnnkit": meta_json, "sha256": _digest(meta_json, cpu)}
    data = st_save(cpu, metadata=header)
    tmp = tmp_name(path)
    write_synced(tmp, data, "checkpoint")  # complete on disk before anything is renamed
    if keep_previous is not None and path.exists():
        keep_copy(path, keep_previous)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def keep_copy(path: Path, keep: Path) -> None:
    """Make `keep` the file `path` is now, while `path` stays in place: a hard link renamed over
    `keep`, so at every instant both names hold a whole checkpoint (a crash between two renames
    cannot leave `path` missing). Where hard links are not supported, `path` is renamed."""
    link = tmp_name(keep)
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
    except OSError:
        os.replace(path, keep)
        return
    os.replace(link, keep)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a checkpoint file, verified; CheckpointError names what is wrong."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: pickle-based files are never loaded (they can run code); "
                              "rnnkit checkpoints are .safetensors")
    try:
        check_regular_file(path, "checkpoint file", "pass a checkpoint file")
    except UsageError as e:
        raise CheckpointError(str(e)) from None
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})")
    damaged = f"{path}: damaged or not an rnnkit checkpoint"
    if len(data) < 8:
        raise CheckpointError(f"{damaged} (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError(f"{damaged} (truncated header)")
    try:
        header = json.loads(data[8:8 + n])
        info = header["__metadata__"]
        meta_json, digest = info["rnnkit"], info["sha256"]
        tensors = st_load(data)
        meta = json.loads(meta_json)
    except Exception as e:  # any parse failure means the bytes are not what we wrote
        raise CheckpointError(f"{damaged} ({type(e).__name__})")
    if not isinstance(meta, dict) or _digest(meta_json, tensors) != digest:
        raise CheckpointError(f"{damaged} (checksum mismatch: truncated or modified)")
    schema = meta.get("schema")
    if type(schema) is not int or schema < 1:
        raise CheckpointError(f"{path}: no valid schema version ({schema!r}); not an rnnkit checkpoint")
    if schema > SCHEMA:
        raise CheckpointError(f"{path}: written by a newer rnnkit (schema {schema}, this one reads "
                              f"<= {SCHEMA}); upgrade rnnkit")
    meta = upgrade(meta)
    validate_meta(meta, path, tensors)
    return tensors, meta


def upgrade(meta: dict) -> dict:
    """Bring older schemas up to date (schema 1 is the first; nothing to do yet)."""
    return meta


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def find_checkpoint(target: str | os.PathLike, order: tuple[str, ...] = ("best", "last", "prev"),
                    warn=None) -> Checkpoint:
    """The first loadable checkpoint of a run directory (in `order`), or a file given directly.
    A damaged one is reported through `warn` and the next is tried."""
    target = Path(target)
    try:
        target.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{target}: no such run directory or checkpoint")
    except OSError as e:  # a symlink loop, permissions
        raise CheckpointError(f"{target}: cannot read ({e.strerror or e})")
    if not target.is_dir():
        return Checkpoint(target, *load_checkpoint(target))
    errors = []
    for path in (target / f"{name}{SUFFIX}" for name in order):
        if not path.exists():
            continue
        try:
            tensors, meta = load_checkpoint(path)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors and warn:
            warn(f"{errors[-1]}; using {path.name} instead")
        return Checkpoint(path, tensors, meta)
    if errors:
        raise CheckpointError(errors[0])
    if (target / "forecast.safetensors").exists():   # issue 26: say what the run is, and its command
        raise CheckpointError(f"{target}: a forecast run, not a character model; it forecasts with "
                              f"`rnnkit forecast --predict {target} CSV`")
    pickles = ", ".join(sorted(p.name for p in target.iterdir() if p.suffix in PICKLE_SUFFIXES))
    pickles = f" (found {pickles}: pickle files are never loaded)" if pickles else ""
    raise CheckpointError(f"{target}: holds no rnnkit checkpoint{pickles}; "
                          f"train one with `rnnkit train --out {target}`")


def set_aside(path: Path) -> Path | None:
    """Rename a damaged checkpoint to NAME.damaged (kept for inspection), so that the next save
    never rotates it into `prev`, the good fallback. Returns the new name, or None if absent."""
    if not path.exists():
        return None
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    return aside


def model_meta(model: SequenceModel, vocab: Vocab) -> dict:
    return {"kind": "charlm", "model": model.config.to_dict(), "vocab": vocab.to_json()}


def weight_differences(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> list[str]:
    """How checkpoint weights differ from what a model expects: missing, extra, or other shapes."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in weights.items()}
    diffs = [f"{k} missing" for k in sorted(want.keys() - have.keys())]
    diffs += [f"{k} unexpected" for k in sorted(have.keys() - want.keys())]
    diffs += [f"{k} has shape {have[k]}, the config needs {want[k]}"
              for k in sorted(want.keys() & have.keys()) if have[k] != want[k]]
    return diffs


def build_model(ckpt: Checkpoint, device: torch.device | str = "cpu") -> tuple[SequenceModel, Vocab]:
    """The model and vocabulary a character-LM checkpoint describes, weights loaded."""
    meta, source = ckpt.meta, ckpt.path
    if meta.get("kind") != "charlm":
        hint = f"; use `rnnkit forecast --predict {source.parent} CSV`" if meta.get("kind") == "forecast" else ""
        raise CheckpointError(f"{source}: holds a {meta.get('kind')!r} model, not a character language model{hint}")
    check_charlm_sizes(ckpt.tensors, meta, source)  # sizes agree with the weights before anything is built
    try:
        vocab = Vocab.from_json(meta["vocab"])
        model = SequenceModel(ModelConfig.from_record(meta["model"], where=f"{source} model config"))
    except (UsageError, KeyError) as e:
        raise CheckpointError(f"{source}: inconsistent checkpoint ({e})")
    if len(vocab) != model.config.vocab_size:
        raise CheckpointError(f"{source}: vocabulary has {len(vocab)} symbols but the model expects "
                              f"{model.config.vocab_size}")
    weights = unprefixed("model", ckpt.tensors)
    diffs = weight_differences(model, weights)
    if diffs:
        raise CheckpointError(f"{source}: weights do not match the model config "
                              f"({model.config.cell}, {model.config.layers} layers, hidden {model.config.hidden}): "
                              + "; ".join(diffs[:4]))
    model.load_state_dict(weights)
    return model.to(device).eval(), vocab


def load_model(target: str | os.PathLike, device: torch.device | str = "cpu",
               order: tuple[str, ...] = ("best", "last", "prev"), warn=None) -> Loaded:
    """Load a trained character LM from a run directory (best, else last) or a checkpoint file.

        loaded = load_model("runs/mine")          # loaded.model, .vocab, .config, .meta, .path
        model, vocab, meta = load_model("runs/mine")
    """
    ckpt = find_checkpoint(target, order, warn)
    model, vocab = build_model(ckpt, device)
    return Loaded(model, model.config, ckpt.meta, ckpt.path, vocab=vocab)


# ---- the JSON header, checked before anything is built from it (issue 14) ----

def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


# the training state a charlm checkpoint stores (lm.trainer_tensors): field -> (check, rule in words)
STATE_FIELDS = {
    "step": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "chars": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "elapsed": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "best_val": (lambda v: v is None or _number(v), "a finite number or null"),
    "evals_since_best": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "horizon": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1 or null"),
    "world": (lambda v: _int(v) and 1 <= v <= 1 << 20, "an integer from 1 to 2**20"),
    "optim_groups": (lambda v: isinstance(v, list) and all(isinstance(g, dict) for g in v), "a list of objects"),
    "optim_scalars": (lambda v: isinstance(v, dict), "an object"),
}


def validate_meta(meta: dict, path: Path, tensors: dict | None = None) -> None:
    """Refuse a header whose fields have the wrong type or impossible sizes (one line naming the
    file and the field), so that nothing is ever built from it: the checksum only proves that the
    file is what someone wrote, not that rnnkit wrote it."""
    bad = lambda field, why: CheckpointError(f"{path}: header field {field} {why}; not a checkpoint "
                                             "rnnkit wrote (edited?)")
    if "kind" in meta and not isinstance(meta["kind"], str):
        raise bad("kind", f"must be a string (got {meta.get('kind')!r:.60})")
    if meta.get("kind") != "charlm":
        return  # other kinds: their loader checks (validate_forecast_meta); a kind mismatch is named there
    for key in ("model", "vocab"):
        if not isinstance(meta.get(key), dict):
            raise bad(key, f"must be an object (got {type(meta.get(key)).__name__})")
    for key in ("train", "state"):
        if key in meta and not isinstance(meta[key], dict):
            raise bad(key, f"must be an object (got {type(meta[key]).__name__})")
    try:
        cfg = ModelConfig.from_record(meta["model"], where="model config")
        v = meta["vocab"]
        check_symbols(v.get("symbols") if isinstance(v.get("symbols"), str) else "", v.get("kind", "chars"))
    except UsageError as e:
        raise bad("model" if str(e).startswith("model") else "vocab", f"is invalid ({e})") from None
    if cfg.vocab_size != len(meta["vocab"]["symbols"]):
        raise CheckpointError(f"{path}: vocabulary has {len(meta['vocab']['symbols'])} symbols but the model "
                              f"expects {cfg.vocab_size} (header field model.vocab_size)")
    for field, (ok, rule) in STATE_FIELDS.items():
        state = meta.get("state", {})
        if field in state and not ok(state[field]):
            raise CheckpointError(f"{path}: training state does not fit the model: header field "
                                  f"state.{field} must be {rule} (got {state[field]!r:.60})")


def check_charlm_sizes(tensors: dict[str, torch.Tensor], meta: dict, source: Path) -> None:
    """The model config's weight shapes against the tensors in the file, worked out on the meta
    device (no memory is allocated): an edited `hidden` or `vocab_size` is refused here, before
    SequenceModel would allocate it. A model beyond the machine's memory is refused too."""
    try:
        cfg = ModelConfig.from_record(meta["model"], where=f"{source} model config")
        with shapes_only():
            probe = SequenceModel(cfg)
    except (UsageError, KeyError, TypeError) as e:
        raise CheckpointError(f"{source}: inconsistent checkpoint ({e})")
    diffs = weight_differences(probe, unprefixed("model", tensors))
    if diffs:
        raise CheckpointError(f"{source}: weights do not match the model config ({cfg.cell}, {cfg.layers} "
                              f"layers, hidden {cfg.hidden}): " + "; ".join(diffs[:4]))
    check_memory(cfg, training=False, where=f"{source}: ")


def validate_forecast_meta(meta: dict, path: Path, tensors: dict | None = None) -> None:
    """A forecaster's header before anything is read from it: the features a list of 1 to 100,000
    names, the config an object of valid fields. forecast_io.check_shapes then compares the weights
    the config describes with those in the file, on the meta device."""
    bad = lambda field, why: CheckpointError(f"{path}: header field {field} {why}; not a checkpoint "
                                             "rnnkit wrote (edited?)")
    feats = meta.get("features")
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats) or len(feats) > 100_000:
        raise bad("features", "must be a list of 1 to 100000 column names")
    if not isinstance(meta.get("config"), dict):
        raise bad("config", f"must be an object (got {type(meta.get('config')).__name__})")
    for key in ("outputs", "calendar"):
        v = meta.get(key, 1)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100_000:
            raise bad(key, f"must be an integer from 0 to 100000 (got {v!r:.60})")
