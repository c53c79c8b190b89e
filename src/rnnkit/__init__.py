"""rnnkit: recurrent neural networks on sequences, from the lecture's labs to char-rnn, on PyTorch.

The public API; everything here is documented in the README with an example.
"""
from .checkpoint import Checkpoint, CheckpointError, Loaded, find_checkpoint, load_checkpoint, load_model, save_checkpoint
from .config import (EvalConfig, ForecastConfig, ModelConfig, ReportConfig, RnnkitError, SampleConfig, TrainConfig,
                     UsageError)
from .evaluate import EvalResult, cold_loss, evaluate_ids, evaluate_text, loss_sums
from .forecast import ForecastResult, Forecaster, load_forecaster, run_forecast
from .labs import LabResult, run_lab
from .lm import TrainResult, resume_lm, train_lm
from .models import SequenceModel, SoftmaxOnly, summary
from .report import write_report
from .sample import generate
from .train import LoopConfig, Trainer, fit, optimizer_step
from .vocab import Vocab
from .windows import RandomWindows, StreamBatches, pad_sequences, shift_pairs, sliding_windows, split_ids

__version__ = "0.1.0"
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
