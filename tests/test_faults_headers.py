"""Issue 14, class 5: checkpoints whose JSON header was edited and re-hashed are refused in one
line before anything is built (language models and forecasters; each case failed before its fix).
Commands run as real processes forked from a server (conftest `cli`)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import tree_digest
from faults_helpers import error_line, resign, rows_csv, trained_run
from rnnkit.core.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory) -> Path:
    """One small forecast run (p.csv, fc/) that each header case copies and edits."""
    from rnnkit.core.config import ForecastConfig
    from rnnkit.forecast import run_forecast
    d = tmp_path_factory.mktemp("forecaster")
    (d / "p.csv").write_text(rows_csv())
    run_forecast(ForecastConfig(epochs=1, hidden=4, seed=0, combine="off"), str(d / "p.csv"), str(d / "fc"), log=lambda m: None)
    return d


# ---- 5. checkpoint headers edited and re-hashed ------------------------------------------------------

def model_(**kw):
    return lambda m: m["model"].update(kw)


def state_(**kw):
    return lambda m: m["state"].update(kw)


def vocab_(**kw):
    return lambda m: m["vocab"].update(kw)


HEADERS = [  # (id, meta edit, commands, words of the one line)
    ("vocab_size 1e10", model_(vocab_size=10**10), "sre", "vocabulary has 28 symbols but the model expects 10000000000"),
    ("vocab_size 1e9 as a float", model_(vocab_size=1e9), "sr", "--vocab-size must be of type int"),
    ("hidden 65536", model_(hidden=65536), "se", "weights do not match the model config (lstm, 1 layers, hidden 65536)"),
    ("layers 64", model_(layers=64), "sr", "weights do not match the model config (lstm, 64 layers"),
    ("hidden a string", model_(hidden="8"), "sr", "--hidden must be of type int"),
    ("model not an object", lambda m: m.update(model=[8]), "sr", "header field model must be an object"),
    ("kind not a string", lambda m: m.update(kind=5), "sr", "header field kind must be a string"),
    ("negative step", state_(step=-1), "rR", "state.step must be an integer >= 0 (got -1)"),
    ("step a string", state_(step="5"), "rR", "state.step must be an integer >= 0 (got '5')"),
    ("step a float", state_(step=5.0), "r", "state.step must be an integer >= 0"),
    ("chars a string", state_(chars="many"), "rR", "state.chars must be an integer >= 0"),
    ("elapsed negative", state_(elapsed=-3.0), "rR", "state.elapsed must be a finite number >= 0"),
    ("best_val a string", state_(best_val="low"), "rR", "state.best_val must be a finite number or null"),
    ("world 0", state_(world=0), "r", "state.world must be an integer from 1"),
    ("horizon negative", state_(horizon=-3), "r", "state.horizon must be an integer >= 1 or null"),
    ("optimizer groups not a list", state_(optim_groups={"lr": 1}), "r", "state.optim_groups must be a list of objects"),
    ("state not an object", lambda m: m.update(state=[1, 2]), "rR", "header field state must be an object"),
    ("bytes vocabulary with non-byte symbols", vocab_(kind="bytes", symbols=None), "sre",
     "a bytes vocabulary holds byte values 0..255"),
    ("vocabulary not sorted", vocab_(symbols=None), "sre", "must be distinct and sorted by code point"),
    ("vocabulary kind unknown", vocab_(kind="words"), "sr", "vocabulary kind must be chars or bytes"),
    ("vocabulary symbols a list", vocab_(symbols=["a", "b"]), "sr", "header field vocab is invalid"),
]
COMMANDS = {"s": ("sample", ["sample", "{F}", "--length", "3"]),
            "e": ("eval", ["eval", "{F}", "text.txt"]),
            "r": ("resume", ["train", "--resume", "{D}", "--max-steps", "9"]),
            "R": ("report", ["report", "{D}", "--chars", "50", "--sample-chars", "5"])}
HEADER_CASES = [(f"{name}: {COMMANDS[c][0]}", edit, COMMANDS[c][1], words)
                for name, edit, cmds, words in HEADERS for c in cmds]


@pytest.mark.parametrize("edit, argv, words", [c[1:] for c in HEADER_CASES], ids=[c[0] for c in HEADER_CASES])
def test_an_edited_header_is_refused_before_building(cli, tmp_path, base, edit, argv, words):
    run = shutil.copytree(base, tmp_path / "run")
    shutil.copy(base.parent / "corpus.txt", tmp_path / "text.txt")
    symbols = load_checkpoint(base / "last.safetensors")[1]["vocab"]["symbols"]

    def edit_all(meta):
        edit(meta)
        v = meta["vocab"]
        if "symbols" in v and v["symbols"] is None:   # the vocab edits that need the real symbols
            v["symbols"] = symbols[:-1] + "€" if v.get("kind") == "bytes" else symbols[::-1]
    for name in ("last", "prev", "best"):             # every fallback edited too: no way around it
        if (run / f"{name}.safetensors").exists():
            resign(run / f"{name}.safetensors", run / f"{name}.safetensors", edit_all)
    before = tree_digest(tmp_path)
    args = [a.replace("{F}", str(run / "last.safetensors")).replace("{D}", str(run)) for a in argv]
    r = cli(*args, cwd=tmp_path, timeout=60)
    assert not r.timed_out and "Traceback" not in r.err, r
    assert r.rc == 2, r
    lines = [line for line in r.err_lines if ": error: " in line]
    assert len(lines) == 1 and words in lines[0] and ".safetensors" in lines[0], r.err
    assert tree_digest(tmp_path) == before


FORECASTER_HEADERS = [  # (id, meta edit, words): `forecast --predict` of a re-signed forecaster
    ("hidden 4096 x 16 layers", lambda m: m["config"].update(hidden=4096, layers=16),
     "the weights do not match the config (lstm, 16 layers, hidden 4096"),
    ("hidden edited", lambda m: m["config"].update(hidden=5), "the weights do not match the config"),
    ("cell edited", lambda m: m["config"].update(cell="gru"), "the weights do not match the config (gru, 1 layers, hidden 4"),
    ("outputs huge", lambda m: m.update(outputs=10**9), "header field outputs must be an integer from 0 to 100000"),
    ("hidden a string", lambda m: m["config"].update(hidden="4"), "--hidden must be of type int"),
    ("config not an object", lambda m: m.update(config=[1]), "header field config must be an object"),
    ("features not a list", lambda m: m.update(features="Open"), "header field features must be a list"),
    ("features empty", lambda m: m.update(features=[]), "header field features must be a list"),
    ("features not names", lambda m: m.update(features=[1, 2]), "header field features must be a list"),
]


@pytest.mark.parametrize("edit, words", [c[1:] for c in FORECASTER_HEADERS], ids=[c[0] for c in FORECASTER_HEADERS])
def test_an_edited_forecaster_header_is_refused_before_building(cli, forecaster, tmp_path, edit, words):
    shutil.copy(forecaster / "p.csv", tmp_path / "p.csv")
    shutil.copytree(forecaster / "fc", tmp_path / "fc")
    model = tmp_path / "fc" / "forecast.safetensors"
    resign(model, model, edit)
    before = tree_digest(tmp_path)
    line = error_line(cli("forecast", "--predict", "fc", "p.csv", cwd=tmp_path))
    assert words in line and "forecast.safetensors" in line, line
    assert tree_digest(tmp_path) == before
