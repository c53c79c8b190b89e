"""Shared fixtures: a small text, a tiny trained run (made once per session), and `cli` to run
`python -m rnnkit` as a separate process (see cli_runner.py).

Where a GPU is: the default suite holds CPU promises (bitwise resume, exact sums), so it hides CUDA
from itself and every process it starts, and rnnkit's `auto` device is the CPU. The GPU's own tests
carry the `gpu` marker and run in a session of their own, `RNNKIT_TEST_GPU=1 pytest -m gpu`
(benchmarks/gpu_suite.sh); elsewhere they are skipped."""
from __future__ import annotations

import hashlib
import os

GPU_SESSION = os.environ.get("RNNKIT_TEST_GPU") == "1"
if not GPU_SESSION:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""   # before torch starts CUDA: read once, at its first use
import random
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runner import ForkServer, Result, spawn  # noqa: E402

# Tiny models run fastest on one thread, and the test machine is shared.
torch.set_num_threads(1)

WORDS = ("the quick brown fox jumps over a lazy dog while seven wise owls watch from an old oak "
         "tree and sing about rivers mountains and the long quiet sea").split()

# The tiny model every CLI test loads: seconds to train, enough to exercise every code path.
TINY_MODEL = dict(cell="lstm", layers=1, hidden=16, embed=8, dropout=0.0)
TINY_TRAIN = dict(seq_len=16, batch=4, max_steps=6, eval_every=3, save_every=3, log_every=3,
                  sample_chars=20, device="cpu", seed=3)


def make_text(n_words: int = 1500, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines, line = [], []
    for _ in range(n_words):
        line.append(rng.choice(WORDS))
        if len(line) == 12:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("text") / "corpus.txt"
    p.write_text(make_text())
    return p


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, text_file) -> Path:
    """A trained run directory (best, last, prev). Read-only for tests: copy it to change it."""
    from rnnkit import ModelConfig, TrainConfig, train_lm
    out = tmp_path_factory.mktemp("tiny") / "run"
    train_lm(TrainConfig(files=[str(text_file)], **TINY_TRAIN), ModelConfig(**TINY_MODEL), out, quiet=True)
    assert (out / "last.safetensors").exists() and (out / "best.safetensors").exists()
    return out


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory):
    server = ForkServer(tmp_path_factory.mktemp("cli-io"))
    yield server
    server.close()


@pytest.fixture
def cli(fork_server, tmp_path):
    """cli(*args, cwd=tmp_path, stdin=None, timeout=120, fresh=False) -> Result of `python -m rnnkit`;
    fresh=True starts a new interpreter instead of forking the server."""
    use_spawn = os.environ.get("RNNKIT_TEST_SPAWN") == "1" or not hasattr(os, "fork")

    def run(*args, cwd=None, stdin=None, timeout=120, fresh=False, env=None) -> Result:
        cwd = cwd or tmp_path
        if fresh or use_spawn:
            return spawn(list(args), cwd, stdin, timeout, env)
        return fork_server.run(list(args), cwd, stdin, timeout, env)

    return run


def tree_digest(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Path -> kind and content hash of everything under `root` (without `skip`), for 'nothing changed'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        if skip is not None and (d == skip or skip in d.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = d / name
            if skip is not None and p == skip:
                continue
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only in a GPU session with CUDA present; the others only outside one."""
    gpu_here = GPU_SESSION and torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not gpu_here:
            why = ("no CUDA GPU here" if GPU_SESSION else
                   "GPU tests run on their own: RNNKIT_TEST_GPU=1 pytest -m gpu (benchmarks/gpu_suite.sh)")
            item.add_marker(pytest.mark.skip(reason=why))
        elif "gpu" not in item.keywords and GPU_SESSION:
            item.add_marker(pytest.mark.skip(reason="a GPU session runs the gpu tests only"))
