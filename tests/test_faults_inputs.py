"""Promise 9 (second half): bad inputs for `rnnkit forecast`, and for every command the awkward
files: paths with spaces and Unicode, a symlink loop, a FIFO, 0-byte files, JSON configs with
unknown keys or wrong types. Each case: exit status 2 (usage) or 1 (runtime), one line on stderr
naming the problem, no traceback, no hang, and nothing on disk changed."""
from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from faults_helpers import cli, deadline, make_text, one_line_error, trained_run, tree_digest
from rnnkit.core.config import ForecastConfig
from rnnkit.forecast import run_forecast

HEADER = "Date,Open,High,Low,Volume,Close"


def rows_csv(n: int, seed: int = 0, dates: bool = True) -> str:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    days = np.arange("2020-01-01", n, dtype="datetime64[D]")
    lines = [HEADER if dates else HEADER.split(",", 1)[1]]
    for i in range(n):
        cells = [f"{v:.4f}" for v in (close[i] + .1, close[i] + 1, close[i] - 1, 1000 + i, close[i])]
        lines.append(",".join(([str(days[i])] if dates else []) + cells))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A directory of good and awkward inputs; tests copy nothing and must change nothing."""
    base = tmp_path_factory.mktemp("inputs")
    (base / "good.csv").write_text(rows_csv(60))
    (base / "short.csv").write_text(rows_csv(9))
    (base / "prices ü 株.csv").write_text(rows_csv(40, seed=1))
    (base / "nan.csv").write_text(rows_csv(30).replace("1005.0000", "nan"))
    (base / "inf.csv").write_text(rows_csv(30).replace("1005.0000", "-inf"))
    (base / "header-only.csv").write_text(HEADER + "\n")
    (base / "dupcols.csv").write_text("A,B,A\n1,2,3\n")
    (base / "empty.csv").write_bytes(b"")
    (base / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (base / "text.txt").write_text(make_text(40))
    (base / "empty.txt").write_bytes(b"")
    (base / "empty.safetensors").write_bytes(b"")
    (base / "zero-run").mkdir()
    (base / "zero-run" / "last.safetensors").write_bytes(b"")
    (base / "no-model").mkdir()
    os.mkfifo(base / "pipe")
    os.symlink("loop", base / "loop")                      # loop -> loop
    (base / "a file").write_text("not a directory")
    shutil.copytree(trained_run(tmp_path_factory), base / "lm run ü")
    shutil.copy(trained_run(tmp_path_factory).parent / "corpus.txt", base / "corpus ü.txt")
    cfg = ForecastConfig(epochs=2, hidden=4, batch=0, seed=0, val_fraction=0.0)
    run_forecast(cfg, str(base / "good.csv"), str(base / "fc"), log=lambda m: None)
    configs = {
        "unknown-key.json": {"hidden": 8, "bogus": 1},
        "wrong-type.json": {"hidden": "big"},
        "bool-for-int.json": {"layers": True},
        "string-float.json": {"dropout": "0.1"},
        "out-of-range.json": {"lr": 1e9},
        "negative.json": {"seed": -1},
        "files-not-list.json": {"files": "text.txt"},
        "nested.json": {"model": {"hidden": 8}},
        "null-int.json": {"seq_len": None},
        "nan.json": {"lr": float("nan")},
        "vocab-size.json": {"vocab_size": 5},
    }
    for name, d in configs.items():
        (base / name).write_text(json.dumps(d))
    (base / "list.json").write_text("[1, 2]")
    (base / "broken.json").write_text('{"hidden": 8,\n "lr": }')
    (base / "huge.json").write_text('{"lr": 1e400}')
    return base


FORECAST = [  # (id, argv, exit status, words in the one line)
    ("missing csv", ["forecast", "nope.csv"], 2, "nope.csv: no such file"),
    ("missing csv with spaces and unicode", ["forecast", "no such ü 株.csv"], 2, "no such ü 株.csv: no such file"),
    ("csv is a directory", ["forecast", "no-model"], 2, "no-model: is a directory"),
    ("csv is a fifo", ["forecast", "pipe"], 2, "pipe: not a regular file (a pipe or device)"),
    ("csv is a symlink loop", ["forecast", "loop"], 2, "loop: cannot read (Too many levels of symbolic links)"),
    ("0-byte csv", ["forecast", "empty.csv"], 2, "empty.csv: no data rows"),
    ("binary csv", ["forecast", "binary.bin"], 2, "binary.bin: not a UTF-8 text file"),
    ("header only", ["forecast", "header-only.csv"], 2, "header-only.csv: no data rows (only a header"),
    ("nan cell", ["forecast", "nan.csv"], 2, "'nan' is not a finite number"),
    ("inf cell", ["forecast", "inf.csv"], 2, "'-inf' is not a finite number"),
    ("duplicate columns", ["forecast", "dupcols.csv"], 2, "column name(s) A appear more than once"),
    ("unknown target", ["forecast", "good.csv", "--target", "Nope"], 2, "unknown column 'Nope' for --target"),
    ("unknown feature", ["forecast", "good.csv", "--features", "Open,Nope"], 2, "unknown column 'Nope' for --features"),
    ("empty feature name", ["forecast", "good.csv", "--features", "Open,,Close"], 2, "empty column name"),
    ("date as target", ["forecast", "good.csv", "--target", "Date"], 2, "'Date' holds dates; it cannot be the --target"),
    ("window 0", ["forecast", "good.csv", "--window", "0"], 2, "--window must be >= 1 (got 0)"),
    ("horizon 0", ["forecast", "good.csv", "--horizon", "0"], 2, "--horizon must be >= 1 (got 0)"),
    ("test fraction 0", ["forecast", "good.csv", "--test-fraction", "0"], 2, "--test-fraction must be > 0.0"),
    ("test fraction 0.95", ["forecast", "good.csv", "--test-fraction", "0.95"], 2, "--test-fraction must be <= 0.9"),
    ("nan lr", ["forecast", "good.csv", "--lr", "nan"], 2, "--lr must be a finite number"),
    ("window longer than the file", ["forecast", "short.csv"], 2, "9 rows are too few for --window 7"),
    ("huge window", ["forecast", "good.csv", "--window", "99999"], 2, "60 rows are too few for --window 99999"),
    ("bad cell", ["forecast", "good.csv", "--cell", "transformer"], 2, "invalid choice: 'transformer'"),
    ("epochs not a number", ["forecast", "good.csv", "--epochs", "many"], 2, "invalid int value: 'many'"),
    ("unknown option", ["forecast", "good.csv", "--colour", "red"], 2, "unrecognized arguments: --colour red"),
    ("--reverse on oldest-first dates", ["forecast", "good.csv", "--reverse"], 2, "run oldest first; drop --reverse"),
    ("--reverse on the built-in series", ["forecast", "--reverse"], 2, "--reverse applies to a CSV file"),
    ("--columns on a file with a header", ["forecast", "good.csv", "--columns", "a,b,c,d,e,f"], 2, "line 1 is a header row"),
    ("predict: model option", ["forecast", "--predict", "fc", "good.csv", "--window", "3"], 2, "--window cannot be used with --predict"),
    ("predict: --out", ["forecast", "--predict", "fc", "good.csv", "--out", "x"], 2, "--out cannot be used with --predict"),
    ("predict: no csv", ["forecast", "--predict", "fc"], 2, "--predict RUN_DIR needs the CSV file"),
    ("predict: no model", ["forecast", "--predict", "no-model", "good.csv"], 2, "no-model: no forecast model here"),
    ("predict: 0-byte model", ["forecast", "--predict", "empty.safetensors", "good.csv"], 2, "empty.safetensors: damaged or not an rnnkit checkpoint (only 0 bytes)"),
    ("predict: model is a fifo", ["forecast", "--predict", "pipe", "good.csv"], 2, "pipe: not a regular file"),
    ("predict: model is a symlink loop", ["forecast", "--predict", "loop", "good.csv"], 2, "loop: cannot read"),
    ("predict: a language model", ["forecast", "--predict", "lm run ü/best.safetensors", "good.csv"], 2, "holds a 'charlm' model, not a forecaster"),
    ("predict: csv lacks a column", ["forecast", "--predict", "fc", "dupcols.csv"], 2, "column name(s) A appear more than once"),
    ("predict: too few rows", ["forecast", "--predict", "fc", "header-only.csv"], 2, "no data rows"),
    ("predict: csv is a fifo", ["forecast", "--predict", "fc", "pipe"], 2, "pipe: not a regular file"),
]

OTHERS = [
    ("train: missing file with spaces and unicode", ["train", "my tëxt 文.txt"], 2, "my tëxt 文.txt: no such file"),
    ("train: fifo", ["train", "pipe", "--out", "r"], 2, "pipe: not a regular file (a pipe or device)"),
    ("train: symlink loop", ["train", "loop", "--out", "r"], 2, "loop: cannot read (Too many levels of symbolic links)"),
    ("train: 0-byte text", ["train", "empty.txt", "--out", "r"], 2, "empty.txt: file is empty"),
    ("train: --out is a file", ["train", "text.txt", "--out", "a file", "--max-steps", "1"], 2, "--out a file is a file, not a run directory"),
    ("train: resume a fifo", ["train", "--resume", "pipe"], 2, "pipe: not a regular file"),
    ("train: resume a symlink loop", ["train", "--resume", "loop"], 2, "loop: cannot read"),
    ("train: resume a 0-byte checkpoint", ["train", "--resume", "zero-run"], 2, "last.safetensors: damaged or not an rnnkit checkpoint (only 0 bytes)"),
    ("sample: fifo as the run", ["sample", "pipe"], 2, "pipe: not a regular file"),
    ("sample: symlink loop as the run", ["sample", "loop"], 2, "loop: cannot read (Too many levels of symbolic links)"),
    ("sample: 0-byte checkpoint file", ["sample", "empty.safetensors"], 2, "empty.safetensors: damaged or not an rnnkit checkpoint (only 0 bytes)"),
    ("sample: run with a 0-byte last", ["sample", "zero-run"], 2, "zero-run/last.safetensors: damaged"),
    ("sample: missing run with spaces", ["sample", "no such run ü"], 2, "no such run ü: no such run directory or checkpoint"),
    ("eval: fifo text", ["eval", "lm run ü", "pipe"], 2, "pipe: not a regular file"),
    ("eval: symlink loop text", ["eval", "lm run ü", "loop"], 2, "loop: cannot read"),
    ("eval: 0-byte text", ["eval", "lm run ü", "empty.txt"], 2, "empty.txt: file is empty"),
    ("eval: 0-byte checkpoint", ["eval", "empty.safetensors", "text.txt"], 2, "empty.safetensors: damaged"),
    ("eval: negative --cold", ["eval", "lm run ü", "corpus ü.txt", "--cold", "-5"], 2, "--cold must be >= 0"),
    ("eval: --cold longer than the text", ["eval", "lm run ü", "corpus ü.txt", "--cold", "10000000"], 2, "--cold 10000000 is longer than corpus ü.txt"),
    ("config: unknown key", ["train", "text.txt", "--config", "unknown-key.json"], 2, "unknown-key.json has unknown key(s) bogus"),
    ("config: wrong type", ["train", "text.txt", "--config", "wrong-type.json"], 2, "--hidden must be of type int (got 'big')"),
    ("config: bool for an int", ["train", "text.txt", "--config", "bool-for-int.json"], 2, "--layers must be of type int (got True)"),
    ("config: string for a float", ["train", "text.txt", "--config", "string-float.json"], 2, "--dropout must be of type float (got '0.1')"),
    ("config: out of range", ["train", "text.txt", "--config", "out-of-range.json"], 2, "--lr must be <= 10.0"),
    ("config: negative seed", ["train", "text.txt", "--config", "negative.json"], 2, "--seed must be >= 0"),
    ("config: files not a list", ["train", "--config", "files-not-list.json"], 2, "--files must be a list of strings"),
    ("config: nested object", ["train", "text.txt", "--config", "nested.json"], 2, "unknown key(s) model"),
    ("config: null for an int", ["train", "text.txt", "--config", "null-int.json"], 2, "--seq-len must be of type int (got None)"),
    ("config: NaN", ["train", "text.txt", "--config", "nan.json"], 2, "--lr must be a finite number"),
    ("config: 1e400", ["train", "text.txt", "--config", "huge.json"], 2, "--lr must be a finite number"),
    ("config: vocab_size", ["train", "text.txt", "--config", "vocab-size.json"], 2, "unknown key(s) vocab_size"),
    ("config: a list", ["train", "text.txt", "--config", "list.json"], 2, "list.json: a config file must hold a JSON object"),
    ("config: broken JSON", ["train", "text.txt", "--config", "broken.json"], 2, "broken.json: invalid JSON at line 2"),
    ("config: fifo", ["train", "text.txt", "--config", "pipe"], 2, "pipe: not a regular file"),
    ("config: missing", ["train", "text.txt", "--config", "nope ü.json"], 2, "nope ü.json: no such file"),
]


@pytest.mark.parametrize("argv, code, words", [c[1:] for c in FORECAST + OTHERS], ids=[c[0] for c in FORECAST + OTHERS])
def test_bad_input_is_one_line_and_changes_nothing(capsys, monkeypatch, world, argv, code, words):
    monkeypatch.chdir(world)
    before = tree_digest(world)
    with deadline(60, " ".join(argv)):
        rc, out, err = cli(capsys, *argv)
    line = one_line_error(rc, err, codes=(code,))
    assert words in line, line
    assert tree_digest(world) == before


def subcommands() -> list[str]:
    from rnnkit.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_command_refuses_an_unknown_option_in_one_line(capsys, monkeypatch, world, command):
    """Derived from the parser, so a new command is covered the day it is added."""
    monkeypatch.chdir(world)
    before = tree_digest(world)
    rc, out, err = cli(capsys, command, "x", "y", "--no-such-option", "1")   # positionals enough for any
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "unrecognized arguments:" in lines[0], err
    assert "--no-such-option" in lines[0], err
    assert "Traceback" not in err and tree_digest(world) == before


def test_paths_with_spaces_and_unicode_work(capsys, monkeypatch, world, tmp_path):
    """The good cases of the same awkward names: every command accepts them."""
    d = tmp_path / "dir with spaces ü 株"
    d.mkdir()
    text = d / "corpus ü.txt"
    shutil.copy(world / "corpus ü.txt", text)
    rc, out, err = cli(capsys, "train", text, "--out", d / "run ü", "--max-steps", "2", "--seq-len", "8",
                       "--batch", "4", "--hidden", "8", "--embed", "4", "--layers", "1", "--sample-chars", "0",
                       "--threads", "1", "--device", "cpu")
    assert rc == 0, err
    assert cli(capsys, "sample", d / "run ü", "--length", "10", "--seed", "1")[0] == 0
    rc, out, err = cli(capsys, "eval", d / "run ü", text, "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["chars"] > 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # no font warning for the CJK name in the plot title
        rc, out, err = cli(capsys, "forecast", world / "prices ü 株.csv", "--out", d / "fc ü", "--epochs", "1",
                           "--hidden", "4")
    assert rc == 0 and (d / "fc ü" / "forecast.safetensors").exists(), err
    rc, out, err = cli(capsys, "forecast", "--predict", d / "fc ü", world / "prices ü 株.csv")
    assert rc == 0 and "forecast of Close" in out, err
