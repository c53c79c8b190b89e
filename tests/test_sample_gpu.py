"""Sampling on CUDA (marked `gpu`; skipped without a GPU): the replayed CUDA graph gives the eager
step's text for the same seed, and the fused-cell step keeps the forward pass's probabilities."""

import warnings

import pytest
import torch

from rnnkit.core.config import ModelConfig, SampleConfig
from rnnkit.core.models import SequenceModel
from rnnkit.core.vocab import Vocab
from rnnkit.text.sample import FastStep, generate
from rnnkit.text.step import fused_cell_ok

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

VOCAB = Vocab.from_text("abcdefghijklmnopqrstuvwxyz .,;:!?'\nABCDEFGHIJKLMNOPQRSTUVWXYZ")


@pytest.fixture(autouse=True)
def exact_fp32():
    """cuDNN's RNN may use TF32 by default: the forward pass the probabilities are held to is fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def model(cell, hidden=128, layers=2):
    torch.manual_seed(0)
    m = SequenceModel(ModelConfig(vocab_size=len(VOCAB), cell=cell, layers=layers, hidden=hidden, embed=32))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3.0)
    return m.to("cuda").eval()


def texts(m, graphs, **kw):
    cfg = SampleConfig(prime="The ", seed=11, device="cuda", graphs=graphs, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)     # a capture that fell back fails the test
        return generate(m, VOCAB, cfg)


@pytest.mark.parametrize("num", [1, 32])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_graph_text_equals_eager_text(cell, num):
    m = model(cell)
    for kw in (dict(), dict(top_k=8), dict(top_p=0.9), dict(greedy=True), dict(stop=["e "])):
        eager = texts(m, "off", length=300, num=num, **kw)
        assert texts(m, "on", length=300, num=num, **kw) == eager, kw
        assert texts(m, "auto", length=300, num=num, **kw) == eager, kw


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_cell_step_probabilities_equal_the_forward_pass(cell):
    m = model(cell)
    assert fused_cell_ok(cell, m.head.weight)
    ids = torch.randint(0, len(VOCAB), (3, 40), generator=torch.Generator().manual_seed(1)).cuda()
    with torch.inference_mode():
        ref = torch.softmax(m(ids)[0], -1)
        _, state = m(ids[:, :1])
        fast = FastStep(m, 3)
        assert fast.fused
        fast.load_state(state)
        for t in range(1, ids.shape[1]):
            p = torch.softmax(fast.step(ids[:, t]), -1)
            assert torch.allclose(p, ref[:, t], atol=1e-5, rtol=0), f"step {t}"


def test_graph_greedy_text_equals_the_plain_forward():
    m = model("lstm")
    cfg = SampleConfig(prime="The ", greedy=True, length=100, device="cuda", graphs="on")
    assert generate(m, VOCAB, cfg) == generate(m, VOCAB, cfg, fast=False)
