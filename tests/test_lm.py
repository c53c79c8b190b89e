"""Character language models through the Python API (and the real command where it matters):
training, exact resume, evaluation, Unicode and bytes, signals, the non-finite guard, sampling."""
from __future__ import annotations

import hashlib
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_runner import env_with_src
from conftest import TINY_MODEL, TINY_TRAIN, make_text
from rnnkit import (
    ModelConfig,
    SampleConfig,
    TrainConfig,
    UsageError,
    corpus,
    generate,
    load_checkpoint,
    load_model,
    loss_sums,
    train_lm,
)
from rnnkit.core.checkpoint import unprefixed
from rnnkit.core.train import Hooks, NonFiniteLoss


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def step_of(path: Path) -> int:
    return load_checkpoint(path)[1]["state"]["step"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- a tiny run ------------------------------------------------------------------------------

def test_tiny_run_writes_everything(tiny_run):
    for name in ("best.safetensors", "last.safetensors", "prev.safetensors", "metrics.jsonl", "curves.png",
                 "config.json"):
        assert (tiny_run / name).is_file(), name
    assert not list(tiny_run.glob(".*tmp*")), "temporary files left behind"
    recs = metrics(tiny_run)
    losses = [r for r in recs if "loss" in r]
    vals = [r for r in recs if "val_loss" in r]
    assert [r["step"] for r in losses] == [1, 3, 6]
    assert [r["step"] for r in vals] == [3, 6]
    assert all(math.isfinite(r["loss"]) for r in losses)
    assert all(abs(r["val_bpc"] - r["val_loss"] / math.log(2)) < 1e-9 for r in vals)
    assert step_of(tiny_run / "last.safetensors") == 6
    assert step_of(tiny_run / "prev.safetensors") == 3
    best = min(vals, key=lambda r: r["val_loss"])
    tensors, meta = load_checkpoint(tiny_run / "best.safetensors")
    assert meta["state"]["step"] == best["step"]
    assert meta["model"]["hidden"] == TINY_MODEL["hidden"] and meta["vocab"]["kind"] == "chars"


def test_training_lowers_the_loss(tmp_path, text_file):
    res = train_lm(TrainConfig(files=[str(text_file)], **(TINY_TRAIN | dict(max_steps=40, eval_every=40, lr=1e-2,
                                                                            warmup=0, sample_chars=0))),
                   ModelConfig(**TINY_MODEL), tmp_path / "run", quiet=True)
    assert res["step"] == 40 and res["stopped"] == "reached --max-steps 40"
    losses = [r["loss"] for r in metrics(tmp_path / "run") if "loss" in r]
    assert losses[-1] < losses[0] - 0.3


# ---- resume parity ---------------------------------------------------------------------------

@pytest.mark.parametrize("batching, schedule", [("streams", dict(decay_steps=9)), ("random", dict(schedule="constant"))])
def test_resume_equals_uninterrupted(tmp_path, text_file, batching, schedule):
    """n steps in one go == k steps, stop, resume to n: same per-step losses, bitwise-equal weights
    and optimizer state (CPU, fixed seed, dropout on)."""
    tcfg = dict(TINY_TRAIN, batching=batching, warmup=2, log_every=1, eval_every=4, save_every=2,
                sample_chars=0, **schedule)
    mcfg = ModelConfig(**(TINY_MODEL | dict(layers=2, dropout=0.3)))
    whole, part = tmp_path / "whole", tmp_path / "part"
    train_lm(TrainConfig(files=[str(text_file)], **(tcfg | dict(max_steps=9))), mcfg, whole, quiet=True)
    train_lm(TrainConfig(files=[str(text_file)], **(tcfg | dict(max_steps=4))), mcfg, part, quiet=True)
    assert step_of(part / "last.safetensors") == 4
    res = train_lm(None, None, part, resume=True, given={"max_steps": 9}, quiet=True)
    assert res["step"] == 9
    loss_whole = [(r["step"], r["loss"]) for r in metrics(whole) if "loss" in r]
    loss_part = [(r["step"], r["loss"]) for r in metrics(part) if "loss" in r]
    assert [s for s, _ in loss_whole] == list(range(1, 10))
    assert loss_part == loss_whole                               # exactly equal floats
    a, meta_a = load_checkpoint(whole / "last.safetensors")
    b, meta_b = load_checkpoint(part / "last.safetensors")
    assert set(a) == set(b)
    for k in a:                                                  # weights, optimizer, carried state, RNG
        assert torch.equal(a[k], b[k]), k
    assert meta_a["state"]["step"] == meta_b["state"]["step"] == 9
    assert meta_a["state"]["chars"] == meta_b["state"]["chars"]


def test_resume_keeps_fixed_options(run_copy):
    before = sha(run_copy / "last.safetensors")
    with pytest.raises(UsageError, match="hidden cannot change when resuming"):
        train_lm(None, None, run_copy, resume=True, given={"hidden": 32, "max_steps": 8}, quiet=True)
    assert sha(run_copy / "last.safetensors") == before


# ---- evaluation ------------------------------------------------------------------------------

def test_eval_json(cli, tiny_run, text_file, tmp_path):
    held = tmp_path / "held out.txt"
    held.write_text(make_text(200, seed=5))
    r = cli("eval", tiny_run, held, "--json", "--cold", "50")
    assert r.rc == 0, r
    result = json.loads(r.out.strip().splitlines()[-1])
    assert {"loss", "bpc", "accuracy", "chars"} <= set(result)
    assert result["chars"] == len(held.read_text()) - 1
    assert abs(result["bpc"] - result["loss"] / math.log(2)) < 1e-9
    assert 0.0 <= result["accuracy"] <= 1.0 and math.isfinite(result["cold_loss"])
    model, vocab, _ = load_model(tiny_run)
    ids = np.array(vocab.encode(held.read_text()))
    total, count, correct = loss_sums(model, ids)
    assert count == result["chars"] and correct / count == pytest.approx(result["accuracy"])
    assert total / count == pytest.approx(result["loss"], rel=1e-5)


def test_eval_chunking_does_not_change_the_loss(tiny_run, text_file):
    model, vocab, _ = load_model(tiny_run)
    ids = np.array(vocab.encode(text_file.read_text()[:3000]))
    whole = loss_sums(model, ids, chunk=4096)
    pieces = loss_sums(model, ids, chunk=37)
    assert pieces[1:] == whole[1:] and pieces[0] == pytest.approx(whole[0], rel=1e-5)


# ---- reading text ----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=60), st.text(min_size=0, max_size=20), st.integers(1, 9),
       st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80"]))
def test_strict_utf8_names_the_byte_offset(tmp_path_factory, before, after, chunk, bad):
    """Invalid UTF-8 anywhere (split across read chunks or not) is refused with its byte offset."""
    head = before.encode()
    data = head + bad + (b" " + after.encode() if bad in (b"\xc3", b"\xe2\x82") else after.encode())
    path = tmp_path_factory.mktemp("utf8") / "bad.txt"
    path.write_bytes(data)
    with mock.patch.object(corpus, "CHUNK", chunk):
        with pytest.raises(UsageError, match=f"invalid UTF-8 at byte offset {len(head)};.*encoding='bytes'"):
            corpus.read_text(path)
        assert corpus.read_text(path, "bytes") == data.decode("latin-1")


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=80), st.integers(1, 9))
def test_utf8_read_in_chunks_is_lossless(tmp_path_factory, text, chunk):
    path = tmp_path_factory.mktemp("utf8") / "ok.txt"
    path.write_bytes(text.encode())
    with mock.patch.object(corpus, "CHUNK", chunk):
        assert corpus.read_text(path) == text


def test_unicode_text_trains_and_samples(tmp_path):
    f = tmp_path / "ünïcode ☃.txt"
    f.write_text(("Grüße aus Köln ☃ — 東京 🙂 " * 60) + "\n")
    out = tmp_path / "rün ☃"
    train_lm(TrainConfig(files=[str(f)], **TINY_TRAIN), ModelConfig(**TINY_MODEL), out, quiet=True)
    model, vocab, _ = load_model(out)
    assert "🙂" in vocab.symbols and "東" in vocab.symbols
    text = generate(model, vocab, SampleConfig(prime="Grüße", length=30, seed=0))[0]
    assert text.startswith("Grüße") and len(text) == 35


def test_bytes_encoding_trains_on_binary(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(UsageError, match="invalid UTF-8"):
        train_lm(TrainConfig(files=[str(f)], **TINY_TRAIN), ModelConfig(**TINY_MODEL), tmp_path / "a", quiet=True)
    res = train_lm(TrainConfig(files=[str(f)], encoding="bytes", **TINY_TRAIN), ModelConfig(**TINY_MODEL),
                   tmp_path / "b", quiet=True)
    assert res["step"] == TINY_TRAIN["max_steps"]
    model, vocab, meta = load_model(tmp_path / "b")
    assert vocab.kind == "bytes" and len(vocab) > 200 and meta["train"]["encoding"] == "bytes"
    assert all(len(s) == 1 and ord(s) < 256 for s in vocab.symbols)
    assert isinstance(generate(model, vocab, SampleConfig(length=50, seed=1))[0], str)


# ---- signals (a real `python -m rnnkit train` process) -----------------------------------------

@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_resume_continues(tmp_path, text_file, cli, signum, code):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "rnnkit", "train", str(text_file), "--out", str(out), "--hidden", "16",
            "--layers", "1", "--embed", "8", "--seq-len", "16", "--batch", "4", "--max-steps", "1000000",
            "--log-every", "1", "--save-every", "100000", "--eval-every", "100000", "--sample-chars", "0",
            "--device", "cpu", "--threads", "1"]
    log = open(tmp_path / "stdout.txt", "w")   # a file, not a pipe: a full pipe would block the child
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.PIPE, env=env_with_src(), text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and p.poll() is None:
            m = out / "metrics.jsonl"
            if m.exists() and m.read_text().count('"loss"') >= 3:
                break
            time.sleep(0.1)
        assert p.poll() is None, p.communicate()
        p.send_signal(signum)
        _, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
    assert p.returncode == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
    k = step_of(out / "last.safetensors")
    assert k >= 3
    assert f"stopped by {name} at step {k}; checkpoint saved" in lines[0]
    assert not list(out.glob(".*tmp*"))
    r = cli("train", "--resume", out, "--max-steps", k + 2)
    assert r.rc == 0, r
    assert f"at step {k}" in r.out
    assert step_of(out / "last.safetensors") == k + 2
    steps = [rec["step"] for rec in metrics(out) if "loss" in rec]
    assert steps[-2:] == [k + 1, k + 2]


# ---- the non-finite guard ----------------------------------------------------------------------

def test_non_finite_loss_stops_and_keeps_the_checkpoint(tmp_path, text_file):
    out = tmp_path / "run"
    seen = {}

    def inject(step: int, loss: torch.Tensor) -> torch.Tensor:
        if step == 4:   # the 5th step; `last` was saved after step 4
            seen["last"] = sha(out / "last.safetensors")
            seen["prev"] = sha(out / "prev.safetensors")
            return loss * float("nan")
        return loss

    cfg = TrainConfig(files=[str(text_file)], **(TINY_TRAIN | dict(max_steps=10, save_every=2, eval_every=100)))
    with pytest.raises(NonFiniteLoss) as e:
        train_lm(cfg, ModelConfig(**TINY_MODEL), out, quiet=True, hooks=Hooks(inject=inject))
    assert e.value.exit_code == 1
    assert "non-finite loss at step 5" in str(e.value) and "\n" not in str(e.value)
    assert sha(out / "last.safetensors") == seen["last"] and sha(out / "prev.safetensors") == seen["prev"]
    assert step_of(out / "last.safetensors") == 4
    assert not list(out.glob(".*tmp*"))
    res = train_lm(None, None, out, resume=True, given={"max_steps": 6}, quiet=True)
    assert res["step"] == 6


# ---- checkpoints and devices -------------------------------------------------------------------

def test_cpu_checkpoint_loads_on_cpu(tiny_run):
    tensors, meta = load_checkpoint(tiny_run / "last.safetensors")
    assert all(t.device.type == "cpu" for t in tensors.values())
    model, vocab, _ = load_model(tiny_run / "last.safetensors", device=torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, unprefixed("model", tensors)[k])
    assert len(vocab) == meta["model"]["vocab_size"] == model.config.vocab_size


# ---- sampling ----------------------------------------------------------------------------------

def test_same_seed_same_text(tiny_run):
    model, vocab, _ = load_model(tiny_run)
    cfg = SampleConfig(prime="the ", length=60, seed=7, num=2)
    a, b = generate(model, vocab, cfg), generate(model, vocab, cfg)
    assert a == b and all(t.startswith("the ") and len(t) == 64 for t in a)
    c = generate(model, vocab, SampleConfig(prime="the ", length=60, seed=8))
    assert c[0] != a[0]
    greedy = generate(model, vocab, SampleConfig(prime="the ", length=30, greedy=True, seed=1))
    assert generate(model, vocab, SampleConfig(prime="the ", length=30, temperature=0, seed=2)) == greedy
    assert generate(model, vocab, SampleConfig(prime="the ", length=30, top_k=1, seed=3)) == greedy


def test_cli_sample_same_seed_same_text(cli, tiny_run):
    a = cli("sample", tiny_run, "--prime", "the fox", "--length", "40", "--seed", "5")
    b = cli("sample", tiny_run, "--prime", "the fox", "--length", "40", "--seed", "5")
    assert a.rc == 0 and a.err == "", a
    assert a.out == b.out
    assert a.out.startswith("the fox") and len(a.out) == len("the fox") + 40 + 1 and a.out.endswith("\n")


def test_unknown_prime_characters(cli, tiny_run):
    r = cli("sample", tiny_run, "--prime", "the QX fox é", "--length", "10")
    assert r.rc == 2 and r.out == "", r
    assert len(r.err_lines) == 1 and all(repr(c) in r.err for c in "QXé") and "--unknown skip" in r.err
    r = cli("sample", tiny_run, "--prime", "the QX fox é", "--length", "10", "--unknown", "skip", "--seed", "1")
    assert r.rc == 0, r
    assert r.out.startswith("the  fox ") and len(r.out) == len("the  fox ") + 10 + 1
    model, vocab, _ = load_model(tiny_run)
    with pytest.raises(UsageError, match="'Q', 'X', 'é'"):
        generate(model, vocab, SampleConfig(prime="the QX fox é", length=5))
