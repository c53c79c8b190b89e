"""rnnkit export --onnx: the step and the sequence forward, checked against onnxruntime."""
import json

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from rnnkit import ModelConfig, TrainConfig, train_lm  # noqa: E402
from rnnkit.text.export import check_onnx  # noqa: E402


@pytest.fixture(scope="module", params=["lstm", "gru"])
def run(request, tmp_path_factory, text_file):
    out = tmp_path_factory.mktemp(f"export-{request.param}") / "run"
    train_lm(TrainConfig(files=[str(text_file)], seq_len=16, batch=4, max_steps=4, eval_every=4, save_every=4,
                         log_every=4, sample_chars=0, device="cpu", seed=1),
             ModelConfig(cell=request.param, layers=2, hidden=24, embed=8, dropout=0.0), out, quiet=True)
    return out


def test_onnx_matches_pytorch_within_1e_4_over_200_steps(cli, run, tmp_path):
    f = tmp_path / "model.onnx"
    r = cli("export", str(run), "--onnx", str(f))
    assert r.rc == 0, r.err
    assert f.exists() and (tmp_path / "model.seq.onnx").exists() and (tmp_path / "model.vocab.json").exists()
    d = check_onnx(str(run), str(f), steps=200, batch=3)
    print(f"ONNX max abs difference: step {d['step_max_abs']:.2e}, sequence {d['seq_max_abs']:.2e}")
    assert d["step_max_abs"] < 1e-4 and d["seq_max_abs"] < 1e-4
    # dynamic batch: another batch size runs too
    sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    meta = json.loads((tmp_path / "model.vocab.json").read_text())
    state = {n: np.zeros((meta["layers"], 7, meta["hidden"]), np.float32) for n in meta["state"]}
    logits = sess.run(None, {"ids": np.zeros(7, np.int64), **state})[0]
    assert logits.shape == (7, len(meta["symbols"]))


def test_existing_files_are_refused_unless_forced(cli, run, tmp_path):
    f = tmp_path / "m.onnx"
    f.write_text("mine")
    r = cli("export", str(run), "--onnx", str(f))
    assert r.rc == 2 and "exists; pass --force" in r.err and f.read_text() == "mine"
    assert not (tmp_path / "m.seq.onnx").exists()
    r = cli("export", str(run), "--onnx", str(f), "--force")    # --force replaces earlier exports only
    assert r.rc == 2 and "not written by rnnkit export" in r.err and f.read_text() == "mine"
    f.unlink()
    assert cli("export", str(run), "--onnx", str(f)).rc == 0
    r = cli("export", str(run), "--onnx", str(f), "--force")
    assert r.rc == 0 and f.read_bytes()[:4] != b"mine"
    r = cli("export", str(run))
    assert r.rc == 2 and "--onnx FILE" in r.err
