"""Run directories that cannot be clobbered and resumes that cannot drift (issue 14).

Each table row is one instance of a class of fault; every row failed before rundir.py existed.
"""
from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest

from conftest import make_text, tree_digest

TINY = ["--cell", "lstm", "--layers", "1", "--hidden", "8", "--embed", "4", "--dropout", "0",
        "--seq-len", "8", "--batch", "4", "--eval-every", "3", "--save-every", "3", "--log-every", "1",
        "--sample-chars", "0", "--device", "cpu", "--seed", "3", "--threads", "1", "--warmup", "0"]


def strict_json(line: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(line, parse_constant=refuse)


@pytest.fixture
def ws(tmp_path) -> Path:
    (tmp_path / "text.txt").write_text(make_text(300))
    return tmp_path


@pytest.fixture
def run(cli, ws) -> Path:
    r = cli("train", "text.txt", "--out", "run", "--max-steps", "6", *TINY, cwd=ws)
    assert r.rc == 0, r
    return ws / "run"


# ---- never destroy what is not yours ----------------------------------------------------------

FOREIGN = [  # (file in an existing --out directory, its content)
    ("config.json", '{"mine": true}'),
    ("metrics.jsonl", '{"my": "log"}\n'),
    ("curves.png", "not a picture"),
    (".notes.tmp-123", "a file that looks like a temporary"),
    (".notes.tmp-1-rnnkit-no", "close to rnnkit's own temporaries"),
    ("thesis.tex", "chapter one"),
]


@pytest.mark.parametrize("name, content", FOREIGN)
def test_train_refuses_a_directory_that_is_not_a_run(cli, ws, name, content):
    out = ws / "mine"
    out.mkdir()
    (out / name).write_text(content)
    (out / "other.txt").write_text("keep me")
    before = tree_digest(ws)
    r = cli("train", "text.txt", "--out", "mine", "--max-steps", "3", *TINY, cwd=ws)
    assert r.rc == 2 and len(r.err_lines) == 1 and "not an rnnkit run" in r.err and "choose a new or empty --out" in r.err, r
    assert tree_digest(ws) == before


def test_train_into_an_empty_directory_is_fine(cli, ws):
    (ws / "empty").mkdir()
    r = cli("train", "text.txt", "--out", "empty", "--max-steps", "3", *TINY, cwd=ws)
    assert r.rc == 0 and (ws / "empty" / "last.safetensors").exists(), r


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "curves.png", "data"])
def test_resume_never_writes_through_a_symlink(cli, ws, run, name):
    outside = ws / "outside"
    outside.mkdir()
    target = outside / name
    src = run / name
    if src.is_dir():
        shutil.copytree(src, target)
        shutil.rmtree(src)
    else:
        target.write_bytes(src.read_bytes())
        src.unlink()
    src.symlink_to(target)
    before = tree_digest(outside)
    r = cli("train", "--resume", "run", "--max-steps", "9", cwd=ws)
    assert r.rc == 2 and len(r.err_lines) == 1 and "symlink" in r.err, r
    assert tree_digest(outside) == before


def test_a_second_writer_is_refused_while_the_first_holds_the_run(cli, ws, run):
    before = tree_digest(run)
    with open(run / ".rnnkit-lock", "a") as f:          # what a running `rnnkit train` holds
        fcntl.flock(f, fcntl.LOCK_EX)
        for args in (["train", "--resume", "run", "--max-steps", "9"],
                     ["train", "text.txt", "--out", "run", "--max-steps", "3", *TINY]):
            r = cli(*args, cwd=ws)
            assert r.rc in (1, 2) and len(r.err_lines) == 1, r
            assert "another rnnkit process is writing" in r.err or "already holds a run" in r.err, r
    assert tree_digest(run) == before
    r = cli("train", "--resume", "run", "--max-steps", "9", cwd=ws)   # released: the lock dies with its holder
    assert r.rc == 0, r


def test_a_new_run_after_a_killed_start_keeps_one_log(cli, ws):
    out = ws / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "chars": 32, "loss": 9.0, "lr": 0.002, "chars_per_s": 1.0, "time": 0.1}\n')
    (out / ".rnnkit-lock").write_text("")
    r = cli("train", "text.txt", "--out", "run", "--max-steps", "3", *TINY, cwd=ws)
    assert r.rc == 0, r
    steps = [strict_json(l).get("step") for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1 and 9.0 not in [strict_json(l).get("loss") for l in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("args", [
    ["train", "short.txt", "--out", "new", *TINY],                       # too short for one batch
    ["train", "text.txt", "--out", "new", *TINY, "--val-fraction", "0", "--patience", "2"],
])
def test_a_failed_new_run_leaves_no_half_made_directory(cli, ws, args):
    (ws / "short.txt").write_text("abc")
    r = cli(*args, cwd=ws)
    assert r.rc == 2 and len(r.err_lines) == 1, r
    assert not (ws / "new").exists()


# ---- resume continues the same run, from anywhere ----------------------------------------------

def last_step(run: Path) -> int:
    from rnnkit.core.checkpoint import load_checkpoint
    return load_checkpoint(run / "last.safetensors")[1]["state"]["step"]


@pytest.mark.parametrize("change", ["edited", "truncated", "replaced", "deleted"])
def test_resume_after_the_text_changed_continues_from_its_own_copy(cli, ws, run, change):
    text = ws / "text.txt"
    if change == "edited":
        text.write_text(text.read_text().replace("the", "THE"))
    elif change == "truncated":
        text.write_text(text.read_text()[:100])
    elif change == "replaced":
        text.write_text("zzz completely different text\n" * 200)
    else:
        text.unlink()
    r = cli("train", "--resume", "run", "--max-steps", "9", cwd=ws)
    assert r.rc == 0 and "continuing from the run's own encoded copy" in r.err, r
    assert last_step(run) == 9


def test_resume_with_its_copy_damaged_and_the_text_changed_is_refused(cli, ws, run):
    for p in (run / "data").glob("ids-*.npy"):
        p.write_bytes(p.read_bytes()[:-8] + b"\xff" * 8)
    (ws / "text.txt").write_text("other text " * 100)
    before = {p.name: p.read_bytes() for p in run.glob("*.safetensors")}
    r = cli("train", "--resume", "run", "--max-steps", "9", cwd=ws)
    assert r.rc == 2 and len(r.err_lines) == 1 and "cannot continue" in r.err, r
    assert {p.name: p.read_bytes() for p in run.glob("*.safetensors")} == before


@pytest.mark.parametrize("where", ["other cwd", "moved", "copied"])
def test_resume_from_anywhere(cli, ws, run, where):
    elsewhere = ws / "elsewhere"
    elsewhere.mkdir()
    if where == "other cwd":
        target, cwd = str(run), elsewhere
    else:
        dst = elsewhere / "run2"
        (shutil.move if where == "moved" else shutil.copytree)(str(run), str(dst))
        target, cwd = "run2", elsewhere
    r = cli("train", "--resume", target, "--max-steps", "9", cwd=cwd)
    assert r.rc == 0, r
    assert last_step(Path(cwd) / target) == 9


@pytest.mark.parametrize("flag", [["--out", "elsewhere"], ["--config", "c.json"]])
def test_resume_refuses_out_and_config(cli, ws, run, flag):
    (ws / "c.json").write_text("{}")
    r = cli("train", "--resume", "run", "--max-steps", "9", *flag, cwd=ws)
    assert r.rc == 2 and len(r.err_lines) == 1 and f"{flag[0]} cannot be used with --resume" in r.err, r
    assert not (ws / "elsewhere").exists()


def test_extending_a_finished_run_says_what_the_schedule_does(cli, ws):
    r = cli("train", "text.txt", "--out", "run", "--max-steps", "6", *TINY, "--schedule", "cosine", cwd=ws)
    assert r.rc == 0, r
    r = cli("train", "--resume", "run", "--max-steps", "12", cwd=ws)
    assert r.rc == 0 and "the cosine schedule ends at step 6" in r.out and "--decay-steps 12" in r.out, r
    r = cli("train", "--resume", "run", "--max-steps", "15", "--decay-steps", "15", cwd=ws)
    assert r.rc == 0 and "cosine schedule ends" not in r.out, r
    lrs = [strict_json(l)["lr"] for l in (ws / "run" / "metrics.jsonl").read_text().splitlines() if "lr" in l]
    assert lrs[-1] < lrs[-3]                       # decaying again over the stretched cosine


def test_warmup_longer_than_the_run_is_said(cli, ws):
    r = cli("train", "text.txt", "--out", "run", "--max-steps", "4", *TINY[:-2], "--warmup", "10", cwd=ws)
    assert r.rc == 0 and "warm-up (10 steps) is as long as the run" in r.out, r


# ---- every number written can be read back -----------------------------------------------------

@pytest.mark.parametrize("val_fraction", ["0.002", "0.005", "0.01"])  # 2, 7 and 14 characters
def test_a_short_validation_split_is_evaluated_correctly(cli, ws, val_fraction):
    r = cli("train", "text.txt", "--out", "run", "--max-steps", "6", *TINY, "--val-fraction", val_fraction,
            "--patience", "5", cwd=ws)
    assert r.rc == 0, r
    recs = [strict_json(l) for l in (ws / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [x["val_loss"] for x in recs if "val_loss" in x]
    assert vals and all(isinstance(v, float) for v in vals)
    assert (ws / "run" / "best.safetensors").exists()


# ---- also expected -----------------------------------------------------------------------------

def test_corpus_beside_a_file_is_refused(cli, ws):
    r = cli("train", "text.txt", "--corpus", "python-stdlib", "--out", "run", *TINY, cwd=ws)
    assert r.rc == 2 and "--corpus" in r.err and not (ws / "run").exists(), r


def test_a_runs_config_json_is_accepted_back(cli, ws, run):
    r = cli("train", "--config", "run/config.json", "--out", "again", "--max-steps", "3", cwd=ws)
    assert r.rc == 0, r
    again = json.loads((ws / "again" / "config.json").read_text())
    first = json.loads((run / "config.json").read_text())
    assert again["model"] == first["model"]
    assert {k: v for k, v in again["train"].items() if k != "max_steps"} == \
        {k: v for k, v in first["train"].items() if k != "max_steps"}


def test_eval_unknown_skip_and_error(cli, ws, run):
    (ws / "odd.txt").write_text("the quick QQQ brown fox\n" * 20)
    r = cli("eval", "run", "odd.txt", "--json", cwd=ws)
    assert r.rc == 2 and "'Q'" in r.err and "--unknown skip" in r.err, r
    r = cli("eval", "run", "odd.txt", "--json", "--unknown", "skip", cwd=ws)
    assert r.rc == 0, r
    res = strict_json(r.out.splitlines()[-1])
    assert res["skipped"] == 60 and res["chars"] == len("the quick  brown fox\n" * 20) - 1
