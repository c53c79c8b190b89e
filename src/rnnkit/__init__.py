"""rnnkit: recurrent neural networks on sequences, from the lecture's labs to char-rnn, on PyTorch."""
from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .config import ForecastConfig, ModelConfig, RnnkitError, SampleConfig, TrainConfig, UsageError
from .lm import evaluate_ids, train_lm
from .models import SequenceModel, SoftmaxOnly, summary
from .sample import generate
from .vocab import Vocab
from .windows import RandomWindows, StreamBatches, pad_sequences, shift_pairs, sliding_windows
from .forecast import ForecastResult, Forecaster, load_forecaster, run_forecast

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TrainConfig", "SampleConfig", "RnnkitError", "UsageError", "Vocab",
           "SequenceModel", "SoftmaxOnly", "summary", "train_lm", "evaluate_ids", "generate",
           "load_model", "load_checkpoint", "save_checkpoint", "StreamBatches", "RandomWindows",
           "pad_sequences", "shift_pairs", "sliding_windows",
           "ForecastConfig", "ForecastResult", "Forecaster", "run_forecast", "load_forecaster"]
