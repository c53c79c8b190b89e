"""--precision auto|fp32|bf16: what auto picks, the old bf16 alias, fp32 weights under bf16."""
import pytest
import torch

from rnnkit.core import precision
from rnnkit.core.config import ModelConfig, TrainConfig, UsageError
from rnnkit.core.models import SequenceModel
from rnnkit.core.train import cross_entropy

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_explicit_choices_are_kept():
    assert precision.resolve("fp32", CUDA) == "fp32"
    assert precision.resolve("bf16", CPU) == "bf16"


@pytest.mark.parametrize("native, want", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_asks_the_capability(monkeypatch, native, want):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    assert precision.resolve("auto", CPU) == want
    assert precision.resolve("auto", CUDA) == "bf16"


def test_old_bf16_alias():
    assert TrainConfig.from_dict({"bf16": True}).precision == "auto"     # old default: bf16 on CUDA
    assert TrainConfig.from_dict({"bf16": False}).precision == "fp32"
    assert TrainConfig.from_dict({"bf16": True, "precision": "bf16"}).precision == "bf16"
    assert "bf16" not in TrainConfig(bf16=False).to_dict()
    with pytest.raises(UsageError, match="--precision"):
        TrainConfig(bf16=False, precision="bf16")


@pytest.mark.skipif(not precision.cpu_bf16_runs(), reason="this CPU's oneDNN has no bf16 LSTM")
def test_bf16_forward_keeps_fp32_weights_and_loss():
    torch.manual_seed(0)
    m = SequenceModel(ModelConfig(vocab_size=7, hidden=16, embed=8))
    x = torch.randint(0, 7, (2, 9))
    with precision.autocast("bf16", CPU):
        logits, _ = m(x)
    loss = cross_entropy(logits, x)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in m.parameters())
    with precision.autocast("fp32", CPU):
        assert m(x)[0].dtype == torch.float32


def test_bf16_where_the_cpu_cannot_run_it_is_one_line(monkeypatch):
    monkeypatch.setattr(precision, "_RUNS", {"cpu": False})
    with pytest.raises(UsageError, match="--precision bf16: this CPU"):
        precision.check("bf16", CPU)
    precision.check("fp32", CPU)


@pytest.mark.skipif(precision.cpu_bf16_runs(), reason="this CPU runs bf16")
def test_train_refuses_bf16_here_before_writing(cli, text_file, tmp_path):
    res = cli("train", str(text_file), "--out", str(tmp_path / "r"), "--device", "cpu", "--precision", "bf16",
              "--max-steps", "1")
    assert res.rc == 2 and len(res.err_lines) == 1 and "--precision bf16" in res.err, res
    assert not (tmp_path / "r").exists()
