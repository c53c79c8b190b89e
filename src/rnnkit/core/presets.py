"""Recipes: `--preset auto|cpu|gpu` fills in the options a run was not given.

    cpu  the defaults of TrainConfig and ModelConfig, tuned on two CPU cores (README, "the recipe")
    gpu  a recipe for one GPU (docs/gpu.md): a wider model, a larger batch and stronger
         regularisation, since a GPU runs many more epochs of a small text in the same minutes
    auto gpu when training runs on CUDA, else cpu

Options given explicitly always win: on the command line, the flags typed and the keys of a
--config file; in the API, `explicit` names them (None: the fields that differ from their
defaults). The resolved preset and values are what config.json and the checkpoints record, so a
resumed run never changes recipe.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import torch

from .config import ModelConfig, TrainConfig

PRESETS: dict[str, dict[str, dict]] = {
    "cpu": {"train": {}, "model": {}},
    "gpu": {
        "train": {"batch": 128, "lr": 3e-3, "warmup": 100, "weight_decay": 0.3, "eval_every": 500},
        "model": {"layers": 2, "hidden": 768, "embed": 128, "dropout": 0.3, "weight_drop": 0.3,
                  "locked_dropout": 0.3, "init": "scaled"},
    },
}


def pick(preset: str, device: torch.device) -> str:
    """'auto' -> 'gpu' on CUDA, else 'cpu'; explicit choices are kept."""
    if preset != "auto":
        return preset
    return "gpu" if torch.device(device).type == "cuda" else "cpu"


def changed(cfg) -> set[str]:
    """The fields of a config that differ from their defaults (the API's guess at 'explicit')."""
    fresh = type(cfg)()
    return {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(fresh, f.name)}


def apply(tcfg: TrainConfig, mcfg: ModelConfig, device: torch.device,
          explicit: Optional[Iterable[str]] = None) -> tuple[TrainConfig, ModelConfig]:
    """The configs with the preset's values in every field not given explicitly, and `preset`
    resolved to the recipe used."""
    name = pick(tcfg.preset, device)
    given = set(explicit) if explicit is not None else changed(tcfg) | changed(mcfg)
    recipe = PRESETS[name]
    train = {k: v for k, v in recipe["train"].items() if k not in given}
    model = {k: v for k, v in recipe["model"].items() if k not in given}
    return (dataclasses.replace(tcfg, preset=name, **train).validate(),
            dataclasses.replace(mcfg, **model).validate())
