"""Bad input to `rnnkit lab | train | sample | eval`, table-driven. Every case must end with exit
status 2 (usage) or 1 (runtime), exactly one line on stderr naming the problem, nothing on stdout,
no traceback, no file outside the run directory changed, and existing checkpoints byte-identical."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from conftest import tree_digest
from rnnkit import UsageError, load_checkpoint, save_checkpoint
from rnnkit.labs import LabOptions, teach_sample

RUN = "run ü dir"      # the trained run, under a name with a space and Unicode


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_run, text_file) -> Path:
    """A workspace of bad inputs next to a good run and a good text."""
    w = tmp_path_factory.mktemp("ws")
    shutil.copytree(tiny_run, w / RUN)
    shutil.copy(text_file, w / "text.txt")
    shutil.copy(text_file, w / "my text ü.txt")
    (w / "empty.txt").write_bytes(b"")
    (w / "my empty ü.txt").write_bytes(b"")
    (w / "short.txt").write_text("the fox")
    (w / "one.txt").write_text("t")
    (w / "unknown.txt").write_text("the QUICK fox")
    (w / "binary.dat").write_bytes(b"hello \xff\xfe\x00\x01" + bytes(range(256)))
    (w / "adir").mkdir()
    (w / "afile").write_text("not a directory")
    os.symlink("loop2", w / "loop1")
    os.symlink("loop1", w / "loop2")
    os.mkfifo(w / "fifo")
    (w / "zero.safetensors").write_bytes(b"")
    (w / "norun").mkdir()
    (w / "zrun").mkdir()
    (w / "zrun" / "last.safetensors").write_bytes(b"")
    (w / "newer").mkdir()
    tensors, meta = load_checkpoint(tiny_run / "last.safetensors")
    save_checkpoint(w / "newer" / "last.safetensors", tensors, {**meta, "schema": 99})
    (w / "model.pt").write_bytes((tiny_run / "last.safetensors").read_bytes())
    (w / "unknown.json").write_text('{"hidden": 16, "bogus": 1}')
    (w / "wrongtype.json").write_text('{"hidden": "big"}')
    (w / "wrongtype2.json").write_text('{"max_steps": "ten", "hidden": 8}')
    (w / "range.json").write_text('{"dropout": 3.0}')
    (w / "boolseed.json").write_text('{"seed": true}')
    (w / "bad.json").write_text('{"hidden": 16,')
    (w / "list.json").write_text("[1, 2]")
    return w


# (id, args, exit status, regex the one stderr line must match)
CASES = [
    # lab
    ("lab-unknown", ["lab", "nope"], 2, r"unknown lab 'nope'.*hello"),
    ("lab-epochs-0", ["lab", "hello", "--epochs", "0"], 2, r"--epochs must be >= 1 \(got 0\)"),
    ("lab-epochs-negative", ["lab", "charseq", "--epochs", "-3"], 2, r"--epochs must be >= 1"),
    ("lab-epochs-not-int", ["lab", "hello", "--epochs", "many"], 2, r"--epochs.*invalid int"),
    ("lab-unknown-cell", ["lab", "hello", "--cell", "cnn"], 2, r"--cell.*'cnn'"),
    ("no-command", [], 2, r"required: COMMAND|COMMAND"),
    ("unknown-command", ["fly"], 2, r"invalid choice: 'fly'"),
    # train: input files
    ("train-missing", ["train", "missing.txt", "--out", "new"], 2, r"missing\.txt: no such file"),
    ("train-empty", ["train", "empty.txt", "--out", "new"], 2, r"empty\.txt: file is empty"),
    ("train-empty-unicode-path", ["train", "my empty ü.txt", "--out", "new"], 2, r"my empty ü\.txt: file is empty"),
    ("train-short", ["train", "short.txt", "--out", "new", "--seq-len", "16", "--batch", "4"], 2,
     r"too short for --batch 4 streams of --seq-len 16"),
    ("train-short-random", ["train", "short.txt", "--out", "new", "--batching", "random"], 2,
     r"shorter than one window of --seq-len 100"),
    ("train-one-char", ["train", "one.txt", "--out", "new"], 2, r"too short"),
    ("train-directory", ["train", "adir", "--out", "new"], 2, r"adir: is a directory"),
    ("train-binary", ["train", "binary.dat", "--out", "new"], 2, r"binary\.dat: invalid UTF-8 at byte offset 6;.*--encoding bytes"),
    ("train-symlink-loop", ["train", "loop1", "--out", "new"], 2, r"loop1: cannot read \(Too many levels of symbolic links\)"),
    ("train-fifo", ["train", "fifo", "--out", "new"], 2, r"fifo: not a regular file"),
    ("train-unknown-corpus", ["train", "--corpus", "nope", "--out", "new"], 2, r"unknown corpus 'nope'"),
    # train: options and configs
    ("train-seq-len-0", ["train", "text.txt", "--out", "new", "--seq-len", "0"], 2, r"--seq-len must be >= 1 \(got 0\)"),
    ("train-lr-nan", ["train", "text.txt", "--out", "new", "--lr", "nan"], 2, r"--lr must be a finite number"),
    ("train-val-fraction", ["train", "text.txt", "--out", "new", "--val-fraction", "0.9"], 2, r"--val-fraction must be <= 0.5"),
    ("train-unknown-cell", ["train", "text.txt", "--out", "new", "--cell", "cnn"], 2, r"--cell.*invalid choice: 'cnn'"),
    ("train-unknown-flag", ["train", "text.txt", "--out", "new", "--hiddn", "8"], 2, r"unrecognized arguments: --hiddn"),
    ("train-config-unknown-key", ["train", "text.txt", "--out", "new", "--config", "unknown.json"], 2,
     r"unknown\.json has unknown key\(s\) bogus; allowed: .*hidden.*lr"),
    ("train-config-wrong-type", ["train", "text.txt", "--out", "new", "--config", "wrongtype.json"], 2,
     r"wrongtype\.json: --hidden must be of type int \(got 'big'\)"),
    ("train-config-wrong-type-train", ["train", "text.txt", "--out", "new", "--config", "wrongtype2.json"], 2,
     r"wrongtype2\.json: --max-steps must be of type int"),
    ("train-config-out-of-range", ["train", "text.txt", "--out", "new", "--config", "range.json"], 2,
     r"range\.json: --dropout must be <= 0.95"),
    ("train-config-bool-for-int", ["train", "text.txt", "--out", "new", "--config", "boolseed.json"], 2,
     r"boolseed\.json: --seed must be of type int \(got True\)"),
    ("train-config-bad-json", ["train", "text.txt", "--out", "new", "--config", "bad.json"], 2, r"bad\.json: invalid JSON at line 1"),
    ("train-config-not-object", ["train", "text.txt", "--out", "new", "--config", "list.json"], 2, r"list\.json: .*JSON object"),
    ("train-config-missing", ["train", "text.txt", "--out", "new", "--config", "nope.json"], 2, r"nope\.json: no such file"),
    ("train-out-is-a-run", ["train", "text.txt", "--out", RUN], 2, r"already holds a run; continue it with --resume"),
    ("train-out-is-a-file", ["train", "text.txt", "--out", "afile", "--max-steps", "1"], 2, r"--out afile is a file, not a run directory"),
    # train --resume
    ("resume-no-checkpoint", ["train", "--resume", "norun"], 2, r"norun: holds no rnnkit checkpoint"),
    ("resume-missing", ["train", "--resume", "nowhere"], 2, r"nowhere: no such run directory"),
    ("resume-newer-schema", ["train", "--resume", "newer"], 2, r"newer rnnkit \(schema 99"),
    ("resume-zero-byte", ["train", "--resume", "zrun"], 2, r"last\.safetensors: damaged or not an rnnkit checkpoint \(only 0 bytes\)"),
    ("resume-fixed-option", ["train", "--resume", RUN, "--hidden", "32"], 2, r"--hidden cannot change when resuming"),
    ("resume-with-files", ["train", "--resume", RUN, "text.txt"], 2, r"FILE arguments cannot change when resuming"),
    ("resume-bad-limit", ["train", "--resume", RUN, "--max-steps", "0"], 2, r"--max-steps must be >= 1"),
    ("resume-fifo", ["train", "--resume", "fifo"], 2, r"fifo: not a regular file"),
    # sample
    ("sample-temperature", ["sample", RUN, "--temperature", "-1"], 2, r"--temperature must be >= 0.0 \(got -1.0\)"),
    ("sample-length-negative", ["sample", RUN, "--length", "-1"], 2, r"--length must be >= 0 \(got -1\)"),  # 0 prints the prime (issue 14)
    ("sample-length-huge", ["sample", RUN, "--length", "1000000000000"], 2, r"--length must be <= 100000000"),
    ("sample-top-k-0", ["sample", RUN, "--top-k", "0"], 2, r"--top-k must be >= 1 \(got 0\)"),
    ("sample-num-0", ["sample", RUN, "--num", "0"], 2, r"--num must be >= 1"),
    ("sample-unknown-prime", ["sample", RUN, "--prime", "the QUICK"], 2, r"5 character\(s\) not in the vocabulary: 'Q', 'U', 'I', 'C', 'K'"),
    ("sample-no-checkpoint", ["sample", "norun"], 2, r"norun: holds no rnnkit checkpoint"),
    ("sample-missing-run", ["sample", "nowhere"], 2, r"nowhere: no such run directory"),
    ("sample-newer-schema", ["sample", "newer"], 2, r"newer rnnkit \(schema 99, this one reads <= 1\)"),
    ("sample-zero-byte-file", ["sample", "zero.safetensors"], 2, r"zero\.safetensors: damaged.*only 0 bytes"),
    ("sample-zero-byte-run", ["sample", "zrun"], 2, r"zrun.*last\.safetensors: damaged"),
    ("sample-text-as-checkpoint", ["sample", "text.txt"], 2, r"text\.txt: damaged or not an rnnkit checkpoint"),
    ("sample-pickle", ["sample", "model.pt"], 2, r"model\.pt: pickle-based files are never loaded"),
    ("sample-symlink-loop", ["sample", "loop1"], 2, r"loop1: cannot read"),
    ("sample-fifo", ["sample", "fifo"], 2, r"fifo: not a regular file"),
    ("sample-directory-of-text", ["sample", "adir"], 2, r"adir: holds no rnnkit checkpoint"),
    # eval
    ("eval-missing", ["eval", RUN, "missing.txt"], 2, r"missing\.txt: no such file"),
    ("eval-empty", ["eval", RUN, "my empty ü.txt"], 2, r"my empty ü\.txt: file is empty"),
    ("eval-one-char", ["eval", RUN, "one.txt"], 2, r"one\.txt: needs at least 2 characters"),
    ("eval-directory", ["eval", RUN, "adir"], 2, r"adir: is a directory"),
    ("eval-binary", ["eval", RUN, "binary.dat"], 2, r"invalid UTF-8 at byte offset 6"),
    ("eval-unknown-chars", ["eval", RUN, "unknown.txt"], 2, r"vocabulary lacks: 'C', 'I', 'K', 'Q', 'U'"),
    ("eval-fifo", ["eval", RUN, "fifo"], 2, r"fifo: not a regular file"),
    ("eval-symlink-loop", ["eval", RUN, "loop1"], 2, r"loop1: cannot read"),
    ("eval-no-checkpoint", ["eval", "norun", "text.txt"], 2, r"norun: holds no rnnkit checkpoint"),
    ("eval-newer-schema", ["eval", "newer", "text.txt"], 2, r"schema 99"),
    ("eval-zero-byte", ["eval", "zero.safetensors", "text.txt"], 2, r"only 0 bytes"),
    ("eval-cold-negative", ["eval", RUN, "text.txt", "--cold", "-5"], 2, r"--cold must be >= 0"),
    ("eval-cold-too-long", ["eval", RUN, "short.txt", "--cold", "100"], 2, r"--cold 100 is longer than short\.txt"),
]
if torch.cuda.is_available():
    CASES = [c for c in CASES if "cuda" not in c[0]]
else:
    CASES += [("train-no-gpu", ["train", "text.txt", "--out", "new", "--device", "cuda"], 2, r"no CUDA GPU"),
              ("sample-no-gpu", ["sample", RUN, "--device", "cuda"], 2, r"no CUDA GPU"),
              ("eval-no-gpu", ["eval", RUN, "text.txt", "--device", "cuda"], 2, r"no CUDA GPU")]


@pytest.mark.parametrize("args, code, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(cli, ws, args, code, pattern):
    run_dir = ws / "new" if args[:1] == ["train"] else None
    before = tree_digest(ws, skip=run_dir)
    ckpts = {p: p.read_bytes() for p in ws.rglob("*.safetensors") if p.is_file()}
    r = cli(*args, cwd=ws, timeout=60)
    assert not r.timed_out, f"hung: {r}"
    assert r.rc == code, r
    assert "Traceback" not in r.err, r
    assert len(r.err_lines) == 1, r
    line = r.err_lines[0]
    assert line.startswith("rnnkit") and "error: " in line, r
    assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert r.out == "", r
    assert tree_digest(ws, skip=run_dir) == before
    for p, data in ckpts.items():
        assert p.read_bytes() == data, p
    if run_dir is not None and run_dir.exists():
        # bad input found before any data was read must not leave a run directory behind
        assert code != 2 or not re.search(r"no such file|is empty|is a directory|cannot read|not a regular", line)
        shutil.rmtree(run_dir)


def out_of_range() -> list[tuple[str, list[str], str]]:
    """Every option with a range, in every config the CLI is built from, just outside each end."""
    import dataclasses

    from rnnkit.core.config import (
        ForecastConfig,
        LabConfig,
        ModelConfig,
        ReportConfig,
        SampleConfig,
        TrainConfig,
        flag_name,
    )
    commands = [(TrainConfig, ["train", "missing.txt", "--out", "new"]), (ModelConfig, ["train", "missing.txt", "--out", "new"]),
                (SampleConfig, ["sample", RUN]), (ForecastConfig, ["forecast", "missing.csv"]),
                (ReportConfig, ["report", RUN]), (LabConfig, ["lab", "hello"])]
    out = []
    for cls, argv in commands:
        for f in dataclasses.fields(cls):
            m = f.metadata
            if not m.get("cli", True):
                continue
            is_int = f.type in ("int", "int | None")
            for end, bad, word in (("lo", -1, ">="), ("hi", 1, "<="), ("above", 0, ">")):
                if m.get(end) is None:
                    continue
                v = m[end] + bad if is_int or end == "above" else m[end] + bad * 0.5
                if is_int:
                    v = int(v)
                flag = flag_name(f.name)
                out.append((f"{argv[0]} {flag} {v}", argv + [flag, str(v)], f"{flag} must be {word} "))
    return out


RANGES = out_of_range()


@pytest.mark.parametrize("args, words", [c[1:] for c in RANGES], ids=[c[0] for c in RANGES])
def test_every_ranged_option_refuses_values_outside_its_range(cli, ws, args, words):
    """Derived from the configs, so a new option is covered the day it is added: a value just past
    either end of its range is refused in one line naming the flag, before any file is read."""
    r = cli(*args, cwd=ws, timeout=60)
    assert r.rc == 2 and "Traceback" not in r.err and r.out == "", r
    assert len(r.err_lines) == 1 and words in r.err_lines[0], r


@pytest.mark.parametrize("sample", ["", "a"])
def test_lab_sample_too_short(sample):
    """An empty or one-character sample cannot teach a next character (the labs' API)."""
    with pytest.raises(UsageError, match="at least 2 characters"):
        teach_sample(sample, LabOptions(log=lambda m: None), epochs=1)


def test_good_paths_with_spaces_and_unicode(cli, ws):
    """The same files that name problems above work when they are fine."""
    r = cli("eval", RUN, "my text ü.txt", "--json", cwd=ws)
    assert r.rc == 0 and r.err == "" and '"bpc"' in r.out.splitlines()[-1], r
    r = cli("sample", RUN, "--prime", "the", "--length", "5", "--seed", "0", cwd=ws)
    assert r.rc == 0 and r.out.startswith("the") and len(r.out) == 9, r


def test_fork_server_behaves_like_a_real_process(cli, ws):
    """The table runs in processes forked from a server that imported rnnkit once (cli_runner.py);
    one case through a fresh `python -m rnnkit` shows the two agree."""
    args = ["sample", RUN, "--prime", "the QUICK", "--length", "3"]
    forked, real = cli(*args, cwd=ws), cli(*args, cwd=ws, fresh=True)
    assert (forked.rc, forked.out, forked.err) == (real.rc, real.out, real.err) and real.rc == 2, real
