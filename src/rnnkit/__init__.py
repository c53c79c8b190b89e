"""rnnkit: recurrent neural networks on sequences, from the lecture's labs to char-rnn, on PyTorch.

The public API; everything here is documented in the README with an example. The code's map
(core, then the text and forecast wings, then labs and cli) is docs/architecture.md.
"""
from . import _moved
from ._version import __version__  # noqa: F401 (rnnkit.__version__)
from .core.checkpoint import (
    Checkpoint,
    CheckpointError,
    Loaded,
    find_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from .core.config import (
    EvalConfig,
    ForecastConfig,
    ModelConfig,
    ReportConfig,
    RnnkitError,
    SampleConfig,
    TrainConfig,
    UsageError,
)
from .core.models import SequenceModel, SoftmaxOnly, summary
from .core.train import LoopConfig, Trainer
from .core.update import fit, optimizer_step
from .core.vocab import Vocab
from .core.windows import RandomWindows, StreamBatches, pad_sequences, shift_pairs, sliding_windows, split_ids
from .forecast import Forecaster, ForecastResult, load_forecaster, run_forecast
from .labs import LabResult, run_lab
from .text.evaluate import EvalResult, cold_loss, evaluate_ids, evaluate_text, loss_sums
from .text.lm import TrainResult, resume_lm, train_lm
from .text.report import write_report
from .text.sample import generate

_moved.install()   # old flat paths (rnnkit.sample, rnnkit.lm, ...) keep working for one release


__all__ = [
    # configs and errors
    "ModelConfig", "TrainConfig", "SampleConfig", "EvalConfig", "ForecastConfig", "ReportConfig",
    "RnnkitError", "UsageError", "CheckpointError",
    # character language models
    "train_lm", "resume_lm", "TrainResult", "load_model", "Loaded", "generate",
    "evaluate_text", "evaluate_ids", "loss_sums", "cold_loss", "EvalResult", "write_report",
    # forecasting and labs
    "run_forecast", "load_forecaster", "ForecastResult", "Forecaster", "run_lab", "LabResult",
    # building blocks
    "Vocab", "SequenceModel", "SoftmaxOnly", "summary", "StreamBatches", "RandomWindows",
    "pad_sequences", "shift_pairs", "sliding_windows", "split_ids", "Trainer", "LoopConfig", "fit",
    "optimizer_step", "Checkpoint", "find_checkpoint", "load_checkpoint", "save_checkpoint",
]


def __getattr__(name: str):
    """`rnnkit.lm`, `rnnkit.train`, ... as attributes (old flat paths), through the finder above."""
    if name in _moved.MOVED:
        import importlib
        return importlib.import_module(f"rnnkit.{name}")
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
