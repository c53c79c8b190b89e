"""Typed configs, one dataclass per component, shared by the CLI and the Python API.

Each field is an `opt(default, help, range)`; fields.py turns them into validation, JSON round
trips and CLI options, and holds the errors rnnkit raises (re-exported here).
"""
from __future__ import annotations

from dataclasses import dataclass

from .fields import Config, RnnkitError, Spelling, UsageError, flag_name, opt, param, setting, shown  # noqa: F401

CELLS = ("rnn", "lstm", "gru")   # the recurrent cells every model offers (models.CELLS maps them)


@dataclass
class ModelConfig(Config):
    """A recurrent sequence model: input -> recurrent stack -> per-step linear head."""

    vocab_size: int = opt(0, "number of symbols (0 until set from the data)", lo=0, cli=False)
    cell: str = opt("lstm", "recurrent cell", choices=CELLS)
    layers: int = opt(2, "stacked recurrent layers", lo=1, hi=64)
    hidden: int = opt(320, "hidden units per layer", lo=1, hi=65536)
    embed: int = opt(64, "embedding size; 0 feeds one-hot vectors as in the lecture", lo=0, hi=65536)
    dropout: float = opt(0.2, "dropout between layers and before the head", lo=0.0, hi=0.95)
    # AWD-LSTM regularisers (regularize.py), off at 0; training only. On by default (README: "The
    # recommended CPU recipe"); records that predate them load with them off (from_record)
    weight_drop: float = opt(0.1, "DropConnect on the hidden-to-hidden weights, one mask per batch",
                             lo=0.0, hi=0.95)
    embed_dropout: float = opt(0.0, "drop whole characters from the input, one mask per batch",
                               lo=0.0, hi=0.95)
    locked_dropout: float = opt(0.1, "locked (variational) dropout between layers and before the head, "
                                "one mask per sequence; adds to --dropout", lo=0.0, hi=0.95)
    init: str = opt("auto", "weight initialisation: torch (PyTorch's), scaled (layer 0's input weights by "
                    "their fan-in, LSTM forget-gate bias 1, so deep or wide stacks pass the input on), "
                    "auto: scaled from 3 layers or hidden > 512", choices=("auto", "torch", "scaled"))

    @classmethod
    def from_record(cls, d: dict, where: str = "model config") -> "ModelConfig":
        """A saved model config (a checkpoint's): the regularisers it predates were off when it
        was trained, whatever the defaults are now, so a resumed run trains as it did."""
        if isinstance(d, dict):
            d = REGULARISERS_OFF | {"init": "torch"} | d
        return cls.from_dict(d, where=where)


REGULARISERS = ("weight_drop", "embed_dropout", "locked_dropout")   # fields rnnkit 0.1 did not have
REGULARISERS_OFF = {k: 0.0 for k in REGULARISERS}   # the plain layer (the lecture's, rnnkit 0.1's)


@dataclass
class TrainConfig(Config):
    """Training a character language model (rnnkit train)."""

    files: list[str] = opt([], "text files to train on (none: the built-in corpus)", cli=False)
    corpus: str = opt("shakespeare", "built-in corpus used when no FILE is given")
    encoding: str = opt("utf-8", "read text as strict UTF-8 characters or raw bytes",
                        choices=("utf-8", "bytes"))
    preset: str = opt("auto", "recipe for the options not given: cpu (the defaults shown here), gpu (a recipe "
                      "for one GPU, see docs/gpu.md), auto: gpu when training runs on CUDA, else cpu",
                      choices=("auto", "cpu", "gpu"))
    seq_len: int = opt(100, "characters per training window (truncated BPTT length)", lo=1, hi=100000)
    batch: int = opt(64, "windows per step (global batch across all processes)", lo=1, hi=1 << 20)
    batching: str = opt("streams", "streams: char-rnn parallel streams with carried state; "
                        "random: independent random windows", choices=("streams", "random"))
    lr: float = opt(5e-3, "AdamW learning rate (peak, after warm-up)", above=0.0, hi=10.0)
    schedule: str = opt("cosine", "learning-rate schedule", choices=("cosine", "constant"))
    decay_steps: int | None = opt(None, "cosine schedule length in steps (default: --max-steps, "
                                  "or what --max-time allows)", lo=1)
    warmup: int = opt(50, "linear warm-up steps", lo=0)
    min_lr_ratio: float = opt(0.05, "final lr as a fraction of --lr under the cosine schedule", lo=0.0, hi=1.0)
    weight_decay: float = opt(0.3, "AdamW decoupled weight decay on the weight matrices "
                              "(biases are not decayed)", lo=0.0)
    clip: float = opt(1.0, "gradient-norm clipping (0: off)", lo=0.0)
    max_steps: int | None = opt(None, "stop after this many steps", lo=1)
    max_time: float | None = opt(None, "stop after this many seconds of training (the clock counts "
                                 "training steps only, not periodic evaluation, samples or checkpoint "
                                 "writes)", above=0.0)
    val_fraction: float = opt(0.1, "last fraction of the text held out for validation", lo=0.0, hi=0.5)
    eval_every: int = opt(200, "evaluate on validation every N steps", lo=1)
    eval_chars: int = opt(50_000, "validation characters used by periodic evaluations (0: all)", lo=0)
    save_every: int = opt(200, "write the `last` checkpoint every N steps", lo=1)
    patience: int = opt(0, "stop after N evaluations without a better val loss (0: off)", lo=0)
    log_every: int = opt(20, "print a log line every N steps", lo=1)
    seed: int = opt(1337, "random seed", lo=0, hi=2**63 - 1)
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    threads: int = opt(0, "CPU threads (0: PyTorch's default)", lo=0, hi=1024)
    precision: str = opt("auto", "training forward in fp32 or bf16 autocast (weights, optimizer and "
                         "loss stay fp32); auto: bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16 or "
                         "AMX), fp32 elsewhere",
                         choices=("auto", "fp32", "bf16"))
    bf16: bool | None = opt(None, "old spelling: --bf16 is --precision auto, --no-bf16 is --precision fp32")
    sample_chars: int = opt(200, "characters sampled into metrics at each evaluation (0: none)", lo=0)

    def __post_init__(self):
        """The old `bf16` bool (checkpoints, config files, scripts) becomes `precision`."""
        if self.bf16 is None:
            return
        alias = "auto" if self.bf16 else "fp32"
        if self.precision not in ("auto", alias) and not (self.bf16 and self.precision == "bf16"):
            raise UsageError(f"{flag_name('bf16') if self.bf16 else '--no-bf16'} contradicts "
                             f"--precision {self.precision}; give only --precision")
        self.precision = self.precision if self.precision != "auto" else alias
        self.bf16 = None

    def to_dict(self) -> dict:
        return {k: v for k, v in super().to_dict().items() if k != "bf16"}


@dataclass
class SampleConfig(Config):
    """Generating text from a trained model (rnnkit sample, POST /generate)."""

    prime: str = opt("", "text to start from (also printed)")
    length: int = opt(500, "characters to generate per sample (0: print the prime only)", lo=0, hi=100_000_000)
    temperature: float = opt(1.0, "softmax temperature; 0 means greedy", lo=0.0, hi=100.0)
    top_k: int | None = opt(None, "sample only from the K most likely characters", lo=1)
    greedy: bool = opt(False, "always take the most likely character")
    num: int = opt(1, "number of samples (generated as one batch); with --beam, the best beams returned",
                   lo=1, hi=4096)
    seed: int | None = opt(None, "random seed (same seed, same text)", lo=0, hi=2**63 - 1)
    unknown: str = opt("error", "prime characters outside the vocabulary: error or skip",
                       choices=("error", "skip"))
    device: str = opt("cpu", "cpu, auto, cuda or cuda:N")
    threads: int = opt(1, "CPU threads (0: PyTorch's default); one-character steps are fastest on one",
                       lo=0, hi=1024)
    # issue 16: decoding and precision
    top_p: float | None = opt(None, "nucleus sampling: draw from the smallest set of likeliest "
                              "characters whose probability sums to at least P", above=0.0, hi=1.0)
    stop: list[str] = opt([], "end a sample after this text (printed); repeat for several")
    prime_file: str | None = opt(None, "read the prime from this file (UTF-8, or bytes for a bytes model)")
    max_lines: int | None = opt(None, "end a sample after N generated newlines", lo=1)
    beam: int | None = opt(None, "beam search over N beams for the most probable continuation "
                           "(length-normalised; ignores temperature, top-k and top-p)", lo=1, hi=1024)
    precision: str = opt("auto", "fp32: exact; bf16 or int8: faster large models, probabilities within "
                         "~1e-2; auto: fp32, or bf16 for batches of 8+ at hidden 256+ where the CPU "
                         "has native bf16", choices=("auto", "fp32", "bf16", "int8"))
    # issue 24: generation at GPU speed
    graphs: str = opt("auto", "CUDA graphs: draw K characters per captured, replayed graph (the same "
                      "text as off); auto: on for CUDA, off on a CPU; on, on a CPU: K-step chunks, "
                      "eagerly", choices=("auto", "on", "off"))

    def validate(self) -> "SampleConfig":
        super().validate()
        if self.beam is not None and self.num > self.beam:
            raise UsageError(f"{param('num')} {self.num} is more than {param('beam')} {self.beam}: "
                             "at most that many beams can be returned")
        if not all(self.stop):
            raise UsageError(f"{param('stop')} must not be empty text")
        return self


@dataclass
class EvalConfig(Config):
    """Scoring a trained model on a text (rnnkit eval): static by default, or dynamic evaluation
    (dynamic.py; Krause et al. 2018)."""

    cold: int = opt(0, "also report the loss from a zero state every N characters (0: off)", lo=0)
    unknown: str = opt("error", "characters outside the vocabulary: error, or skip them",
                       choices=("error", "skip"))
    device: str = opt("cpu", "cpu, auto, cuda or cuda:N")
    chunk: int = opt(1024, "characters per forward call (the state is carried across)", lo=1, hi=1 << 20,
                     cli=False)
    dynamic: bool = opt(False, "dynamic evaluation: score each segment, then take one RMS-normalised "
                        "gradient step on it (the checkpoint is never changed)")
    dynamic_lr: float = opt(1e-4, "step size of the dynamic-evaluation update", lo=0.0, hi=1.0)
    dynamic_decay: float = opt(0.001, "pull toward the trained weights per segment (scaled per weight "
                                "by its RMS gradient)", lo=0.0, hi=1.0)
    segment: int = opt(50, "characters scored between two dynamic-evaluation updates", lo=1, hi=1_000_000)


DynamicConfig = EvalConfig   # dynamic.py's name for the settings it reads


@dataclass
class ForecastConfig(Config):
    """Forecasting one column of a numeric series from windows of all features (rnnkit forecast)."""

    target: str | None = opt(None, "column to forecast; none: the column named close, else the last")
    features: str | None = opt(None, "comma-separated input columns; none: every numeric column")
    columns: str | None = opt(None, "comma-separated names for the columns of a file without a header")
    date_column: str | None = opt(None, "column of dates; none: a column named date, time, datetime, "
                                      "timestamp or day, else the first whose first cell is an ISO date")
    date_format: str | None = opt(None, "strptime format of the dates, e.g. %%d/%%m/%%Y; none: ISO dates")
    reverse: bool = opt(False, "the file lists the newest row first and has no dates (as the lecture's)")
    fill: str | None = opt(None, "missing values: ffill, interpolate or drop; none: refuse them",
                           choices=("ffill", "interpolate", "drop"))
    id_column: str | None = opt(None, "long format: the column naming the series; one model for all")
    series: str = opt("goog", "built-in series when no CSV is given: goog, co2, sunspots (the last "
                      "two need the classic extra)", choices=("goog", "co2", "sunspots"))
    window: int | None = opt(None, "past steps the model sees; none: one season, at least 7 "
                             "(20 for yearly data)", lo=1, hi=100_000)
    season: int | None = opt(None, "season length in steps; none: from the dates (1: no season)", lo=1, hi=100_000)
    horizon: int = opt(1, "forecast every step 1..H after the window's last step (direct multi-output); "
                       "the headline errors are step H's", lo=1, hi=100_000)
    test_fraction: float = opt(0.3, "last fraction of the rows held out for testing", above=0.0, hi=0.9)
    target_mode: str = opt("change", "change: predict the target's change since the window's last "
                           "value; level: predict the value itself (the lecture)", choices=("change", "level"))
    anchor: str = opt("auto", "with --target-mode change, what a forecast's change is measured from: last "
                      "(the last value), season (the same point one season back), auto (the one with the "
                      "smaller error over steps 1..H on the training part)", choices=("auto", "last", "season"))
    inputs: str = opt("diff", "diff: each step's change, scaled by the training part's typical change "
                      "(scale-free); level: the values min-max scaled on the training part (the lecture)",
                      choices=("diff", "level"))
    calendar: bool = opt(False, "add the calendar (day of week, time of year) of the forecast "
                         "date as inputs known in advance (needs dates)")
    cell: str = opt("lstm", "recurrent cell", choices=CELLS)
    layers: int = opt(1, "stacked recurrent layers", lo=1, hi=16)
    hidden: int = opt(32, "hidden units per layer", lo=1, hi=4096)
    dropout: float = opt(0.0, "dropout between layers", lo=0.0, hi=0.95)
    ensemble: int = opt(3, "models trained from different seeds; the forecast is their mean", lo=1, hi=64)
    epochs: int = opt(100, "passes over the training windows, at most (see --patience)", lo=1, hi=1_000_000)
    patience: int = opt(30, "stop a model when its error on the training part's tail has not improved for "
                        "this many epochs, keeping its best epoch (0: train every epoch)", lo=0, hi=1_000_000)
    val_fraction: float = opt(0.2, "last fraction of the training windows used to pick the best epoch "
                              "and calibrate the intervals (0: keep the last epoch, no intervals)", lo=0.0, hi=0.5)
    batch: int = opt(32, "windows per Adam step (0: all at once, as in the lecture)", lo=0)
    lr: float = opt(3e-3, "Adam learning rate", above=0.0, hi=10.0)
    seed: int = opt(0, "random seed (weights and shuffling); member k of the ensemble uses seed + k",
                    lo=0, hi=2**63 - 1)
    threads: int = opt(1, "CPU threads (0: PyTorch's default; one is fastest for models this small)",
                       lo=0, hi=1024)
    level: list[float] = opt([80.0], "prediction-interval level in percent, repeatable "
                             "(--level 80 --level 95); split-conformal on the training part's tail")
    classic: str = opt("auto", "classical yardsticks (statsmodels ETS and ARIMA): auto (when "
                       "installed) or off", choices=("auto", "off"))
    combine: str = opt("auto", "auto: the forecast combines the network with ETS, ARIMA and Theta, "
                       "weighted by their errors on the training part's tail (needs the classic extra; one "
                       "series); off: the network alone", choices=("auto", "off"))
    backtest: int = opt(0, "rolling-origin evaluation over K expanding folds (0: one split)", lo=0, hi=100)
    step: int | None = opt(None, "rows between backtest folds; none: the test part cut into K", lo=1)
    refit: bool = opt(False, "retrain on every backtest fold (otherwise one model, trained before the first)")
    future: bool = opt(True, "after the evaluation, refit on every row (the epochs it chose) and forecast "
                       "the H steps after the last row; --no-future skips the refit")

    def validate(self) -> "ForecastConfig":
        super().validate()
        for v in self.level:
            if not 0 < v < 100:
                raise UsageError(f"{param('level')} must be between 0 and 100 percent (got {v:g})")
        if self.inputs == "diff" and self.target_mode == "level":
            raise UsageError(f"{setting('inputs', 'diff')} is scale-free and cannot forecast a level; use "
                             f"{setting('target_mode', 'change')}, or {setting('inputs', 'level')}")
        if self.inputs == "diff" and self.window == 1:
            raise UsageError(f"{setting('inputs', 'diff')} needs {param('window')} >= 2 (one change needs two values)")
        return self


@dataclass
class ReportConfig(Config):
    """Building the HTML report of a run (rnnkit report)."""

    text: str | None = opt(None, "text file for the coloured passage (default: the start of the validation split)")
    out: str | None = opt(None, "output HTML file (default: RUN_DIR/report.html)")
    chars: int = opt(1500, "characters of the coloured passage", lo=2, hi=20_000)
    units: int = opt(6, "units listed per feature in the unit selector", lo=1, hi=64)
    sample_chars: int = opt(300, "characters per sample at each temperature", lo=1, hi=20_000)
    seed: int = opt(0, "random seed of the samples", lo=0, hi=2**63 - 1)
    device: str = opt("cpu", "cpu, auto, cuda or cuda:N")
    threads: int = opt(1, "CPU threads while building (0: PyTorch's default); sampling one character "
                       "at a time from a small model is fastest on one", lo=0, hi=1024)


# ---- names that are safe to show (issue 14) ----

SEED_HI = 2**63 - 1   # every --seed: 0 <= seed < 2**63, the range torch and numpy both accept


@dataclass
class LabConfig(Config):
    """Running one of the lecture's labs (rnnkit lab NAME). Each lab has its own budget and sizes;
    options that a lab does not use are refused (labs.APPLIES), not ignored."""

    seed: int = opt(0, "random seed", lo=0, hi=SEED_HI)
    cell: str = opt("lstm", "recurrent cell (not softmax-only, which has none)", choices=CELLS)
    epochs: int | None = opt(None, "training epochs (default: the lab's budget)", lo=1, hi=1_000_000)
    stateful: bool = opt(False, "longseq: carry the state across windows")
    data: str | None = opt(None, "stock: a CSV file instead of the built-in series")


# issue 16: scoring, serving and exporting a character model
@dataclass
class ScoreConfig(Config):
    """Bits per character of each line or segment of a text (rnnkit score, POST /score)."""

    segment: int | None = opt(None, "score pieces of N characters instead of lines", lo=1, hi=1 << 30)
    unknown: str = opt("error", "characters outside the vocabulary: error (report and leave out their "
                       "line), or skip them (the line is scored without them)", choices=("error", "skip"))
    json: bool = opt(False, "print JSON lines {\"line\": n, \"chars\": c, \"bpc\": b}, then the total")
    device: str = opt("cpu", "cpu, auto, cuda or cuda:N")
    threads: int = opt(1, "CPU threads (0: PyTorch's default)", lo=0, hi=1024)


@dataclass
class ServeConfig(Config):
    """A local HTTP server for a trained model (rnnkit serve)."""

    host: str = opt("127.0.0.1", "address to listen on; anything but loopback is reachable from other machines")
    port: int = opt(8000, "TCP port (0: any free port, printed at start)", lo=0, hi=65535)
    max_length: int = opt(20_000, "most characters one /generate request may ask for", lo=1, hi=10_000_000)
    max_num: int = opt(16, "most samples (or beams) one request may ask for", lo=1, hi=4096)
    max_body: int = opt(1 << 20, "largest request body in bytes", lo=1024, hi=1 << 30)
    concurrency: int = opt(4, "requests computed at once; others wait in the queue", lo=1, hi=1024)
    queue: int = opt(64, "requests that may wait for a slot; beyond it the server answers 503", lo=0, hi=100_000)
    precision: str = opt("auto", "sampling precision (see rnnkit sample --help)",
                         choices=("auto", "fp32", "bf16", "int8"))
    device: str = opt("cpu", "cpu, auto, cuda or cuda:N")
    threads: int = opt(1, "CPU threads per request computation (0: PyTorch's default)", lo=0, hi=1024)


@dataclass
class ExportConfig(Config):
    """Exporting a character model to ONNX (rnnkit export)."""

    onnx: str | None = opt(None, "the .onnx file to write (the step and the sequence forward in one model "
                           "file each: FILE and FILE with .seq before the suffix)")
    force: bool = opt(False, "overwrite existing files")
    opset: int = opt(17, "ONNX opset version", lo=14, hi=23)
