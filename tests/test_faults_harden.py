"""Issue 14, inputs that must not crash (table-driven; each table failed before its fix):
1. file names that are not valid UTF-8, for every command's inputs and outputs;
2. sizes beyond memory, refused before anything is built or written;
3. one seed rule for every command, and lab options that do not apply refused;
4. a damaged id cache (RUN_DIR/data/ids-*.npy) rebuilt and said so; a UTF-8 BOM left out
(5, edited checkpoint headers: test_faults_headers.py).
Commands run as real processes forked from a server (conftest `cli`), so an uncaught exception
is a traceback on stderr, as a user would see it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import tree_digest
from faults_helpers import TINY_FLAGS, error_line, make_text, resign, rows_csv, trained_run
from rnnkit.core.checkpoint import load_checkpoint
from rnnkit.core.config import ModelConfig, RnnkitError
from rnnkit.core.models import SequenceModel, count_params

BAD = "bad\udcff name"          # a file name whose bytes are not UTF-8 (b"bad\xff name")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory)


# ---- 1. file names that are not UTF-8 ----------------------------------------------------------

TRAIN = ["--max-steps", "2", *TINY_FLAGS]

# (id, argv with {B} for the bad name, files that must exist afterwards); exit 0, no traceback
NAMES = [
    ("train: FILE", ["train", "{B}.txt", "--out", "r1", *TRAIN], ["r1/curves.png", "r1/last.safetensors"]),
    ("train: --out", ["train", "text.txt", "--out", "{B} run", *TRAIN], ["{B} run/curves.png"]),
    ("train: default --out from FILE", ["train", "{B}.txt", *TRAIN], ["runs/{B}/curves.png"]),
    ("train: --config", ["train", "text.txt", "--config", "{B}.json", "--out", "r2", *TRAIN], ["r2/last.safetensors"]),
    ("train: --resume", ["train", "--resume", "{B} old", "--max-steps", "8"], ["{B} old/curves.png"]),
    ("sample: RUN_DIR", ["sample", "{B} old", "--length", "5", "--seed", "1"], []),
    ("sample: checkpoint file", ["sample", "{B} old/last.safetensors", "--length", "5"], []),
    ("eval: RUN_DIR and FILE", ["eval", "{B} old", "{B}.txt", "--json"], []),
    ("report: RUN_DIR", ["report", "{B} old", "--chars", "200", "--sample-chars", "20"], ["{B} old/report.html"]),
    ("report: --out", ["report", "old", "--out", "{B}.html", "--chars", "200", "--sample-chars", "20"], ["{B}.html"]),
    ("report: --text", ["report", "old", "--text", "{B}.txt", "--out", "t.html", "--chars", "200",
                        "--sample-chars", "20"], ["t.html"]),
    ("forecast: CSV", ["forecast", "{B}.csv", "--out", "fc1", "--epochs", "1", "--hidden", "4"], ["fc1/forecast.png"]),
    ("forecast: --out", ["forecast", "good.csv", "--out", "{B} fc", "--epochs", "1", "--hidden", "4"], ["{B} fc/forecast.png"]),
    ("forecast: --predict RUN_DIR and CSV", ["forecast", "--predict", "fc0", "{B}.csv"], []),
    ("lab stock: --data", ["lab", "stock", "--data", "{B}.csv", "--epochs", "2"], []),
]


@pytest.fixture(scope="module")
def names_ws(tmp_path_factory, base) -> Path:
    """The workspace every case starts from, built once (its forecast run takes seconds)."""
    w = tmp_path_factory.mktemp("names") / "w"
    w.mkdir()
    text = make_text()
    for name in (f"{BAD}.txt", "text.txt"):
        (w / name).write_text(text)
    for name in (f"{BAD}.csv", "good.csv"):
        (w / name).write_text(rows_csv())
    (w / f"{BAD}.json").write_text(json.dumps({"hidden": 8}))
    shutil.copytree(base, w / f"{BAD} old")
    shutil.copytree(base, w / "old")
    from rnnkit.core.config import ForecastConfig
    from rnnkit.forecast import run_forecast
    run_forecast(ForecastConfig(epochs=1, hidden=4, seed=0, combine="off"), str(w / "good.csv"), str(w / "fc0"), log=lambda m: None)
    return w


@pytest.fixture
def names(tmp_path, names_ws) -> Path:
    """A fresh copy of the workspace: each case writes into its own."""
    w = tmp_path / "w"
    shutil.copytree(names_ws, w)
    return w


@pytest.mark.parametrize("argv, outputs", [c[1:] for c in NAMES], ids=[c[0] for c in NAMES])
def test_names_that_are_not_utf8_work_everywhere(cli, names, argv, outputs):
    r = cli(*[a.replace("{B}", BAD) for a in argv], cwd=names, timeout=120)
    assert not r.timed_out and "Traceback" not in r.err, r
    assert r.rc in ((0, 1) if argv[:2] == ["lab", "stock"] else (0,)), r   # a lab may miss its target
    for out in outputs:
        assert (names / out.replace("{B}", BAD)).is_file(), out
    if "report" in argv[0]:
        page = next(names / o.replace("{B}", BAD) for o in outputs).read_bytes()
        page.decode("utf-8")                                      # valid UTF-8 ...
        assert b"bad\\xff name" in page or argv[1] == "old"        # ... naming the file readably


def test_refusals_name_such_files_in_one_line(cli, names):
    line = error_line(cli("train", f"{BAD} missing.txt", cwd=names))
    assert "bad" in line and "no such file" in line


# ---- 2. sizes beyond memory ----------------------------------------------------------------------

# (id, extra train flags, words of the one line); refused (exit 1) before the run directory exists
MEMORY = [
    ("--hidden 65536", ["--hidden", "65536"], "--hidden 65536: the model needs about"),
    ("--hidden 65536 on bytes", ["--hidden", "65536", "--encoding", "bytes"], "--hidden 65536"),
    ("--embed 65536 --hidden 65536 --layers 2", ["--embed", "65536", "--hidden", "65536", "--layers", "2"],
     "--hidden 65536"),
    ("--layers 64 --hidden 50000", ["--layers", "64", "--hidden", "50000"], "--hidden 50000"),
    ("resume of such a run", None, "--hidden 65536"),
]


@pytest.mark.parametrize("flags, words", [c[1:] for c in MEMORY], ids=[c[0] for c in MEMORY])
def test_sizes_beyond_memory_are_refused_first(cli, tmp_path, base, flags, words):
    (tmp_path / "t.txt").write_text(make_text())
    if flags is None:   # a run whose config asks for more than the machine has (its header re-signed)
        shutil.copytree(base, tmp_path / "big")
        for name in ("best", "prev"):
            (tmp_path / "big" / f"{name}.safetensors").unlink()
        resign(base / "last.safetensors", tmp_path / "big" / "last.safetensors",
               lambda m: m["model"].update(hidden=65536))
        r = cli("train", "--resume", "big", "--max-steps", "9", cwd=tmp_path)
    else:
        r = cli("train", "t.txt", "--out", "new", "--max-steps", "1", "--seq-len", "8", "--batch", "4",
                "--threads", "1", *flags, cwd=tmp_path)
    line = error_line(r)
    assert words in line and (" GB" in line or "weights do not match" in line), line
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("what", ["forecast", "lab", "report"])
def test_forecast_labs_and_report_share_the_rule(monkeypatch, tmp_path, base, what):
    """The same check guards the forecaster, the labs and the report's pass over its passage; here
    against a machine said to have 1 MB free (the sizes are the commands' own)."""
    import rnnkit.core.models
    monkeypatch.setattr(rnnkit.core.models, "available_memory", lambda device="cpu": 10**6)
    with pytest.raises(RnnkitError, match=r"the model needs about .* but this machine has 1 MB available"):
        if what == "forecast":
            from rnnkit.core.config import ForecastConfig
            from rnnkit.forecast import run_forecast
            (tmp_path / "p.csv").write_text(rows_csv())
            run_forecast(ForecastConfig(hidden=512, layers=2, epochs=1), str(tmp_path / "p.csv"), None,
                         log=lambda m: None)
        elif what == "lab":
            from rnnkit.labs import LabOptions, run_lab
            run_lab("longseq", LabOptions(epochs=1, log=lambda m: None))
        else:
            from rnnkit.core.config import ReportConfig
            from rnnkit.text.report import build_report
            build_report(base, ReportConfig(chars=20_000))


def test_the_estimate_counts_what_pytorch_allocates():
    from rnnkit.core.models import check_memory, memory_estimate, param_count
    for cell in ("rnn", "lstm", "gru"):
        for embed in (0, 5):
            cfg = ModelConfig(vocab_size=11, cell=cell, layers=3, hidden=13, embed=embed)
            assert param_count(cfg) == count_params(SequenceModel(cfg))
    cfg = ModelConfig(vocab_size=84)
    est = memory_estimate(cfg, 64, 100)
    assert est["total"] == 4 * est["weights"] + est["activations"] > memory_estimate(cfg, 64, 100, training=False)["total"]
    with pytest.raises(RnnkitError, match=r"--batch 1048576 x --seq-len 100000: .* of activations"):
        check_memory(cfg, 1 << 20, 100_000)
    assert check_memory(cfg, 64, 100)["total"] < 2e9      # the defaults fit


# ---- 3. one seed rule; lab options that do not apply --------------------------------------------

HUGE = str(2**64)
SEED_COMMANDS = [  # (id, argv before --seed)
    ("lab hello", ["lab", "hello"]), ("lab softmax-only", ["lab", "softmax-only"]),
    ("lab longseq", ["lab", "longseq"]), ("lab dynamic", ["lab", "dynamic"]), ("lab stock", ["lab", "stock"]),
    ("train", ["train", "t.txt", "--out", "new"]), ("sample", ["sample", "old"]),
    ("forecast", ["forecast", "good.csv", "--out", "fc"]), ("report", ["report", "old"]),
]
SEEDS = [(f"{name}: {seed}", argv + ["--seed", seed], words) for name, argv in SEED_COMMANDS
         for seed, words in (("-1", "--seed must be >= 0 (got -1)"),
                             (HUGE, f"--seed must be <= {2**63 - 1} (got {HUGE})"))]
UNUSED = [  # (id, argv, words)
    ("softmax-only --cell", ["lab", "softmax-only", "--cell", "gru"], "--cell does not apply to lab softmax-only"),
    ("softmax-only --cell lstm", ["lab", "softmax-only", "--cell", "lstm"], "--cell does not apply"),
    ("hello --stateful", ["lab", "hello", "--stateful"], "--stateful does not apply to lab hello (only to: longseq)"),
    ("stock --stateful", ["lab", "stock", "--stateful"], "--stateful does not apply to lab stock"),
    ("dynamic --no-stateful", ["lab", "dynamic", "--no-stateful"], "--stateful does not apply"),
    ("charseq --data", ["lab", "charseq", "--data", "good.csv"], "--data does not apply to lab charseq (only to: stock)"),
    ("longseq --data", ["lab", "longseq", "--data", "good.csv"], "--data does not apply to lab longseq"),
    ("hello --epochs 0", ["lab", "hello", "--epochs", "0"], "--epochs must be >= 1 (got 0)"),
]


@pytest.fixture(scope="module")
def seeds_ws(tmp_path_factory, base) -> Path:
    w = tmp_path_factory.mktemp("seeds")
    (w / "t.txt").write_text(make_text())
    (w / "good.csv").write_text(rows_csv())
    shutil.copytree(base, w / "old")
    return w


@pytest.mark.parametrize("argv, words", [c[1:] for c in SEEDS + UNUSED], ids=[c[0] for c in SEEDS + UNUSED])
def test_one_seed_rule_and_no_ignored_lab_option(cli, seeds_ws, argv, words):
    before = tree_digest(seeds_ws)
    r = cli(*argv, cwd=seeds_ws, timeout=60)
    line = error_line(r)
    assert r.rc == 2 and words in line, line
    assert r.out == "" and tree_digest(seeds_ws) == before


@pytest.mark.parametrize("argv", [["lab", "hello", "--epochs", "2"], ["sample", "old", "--length", "3"],
                                  ["train", "t.txt", "--out", "top", *TRAIN]], ids=["lab", "sample", "train"])
def test_the_largest_seed_is_accepted(cli, seeds_ws, argv):
    r = cli(*argv, "--seed", str(2**63 - 1), cwd=seeds_ws, timeout=60)
    assert r.rc in (0, 1) and "Traceback" not in r.err and "error" not in r.err, r


# ---- 4. a damaged id cache; a byte order mark ------------------------------------------------------

def _cache(run: Path) -> tuple[Path, Path]:
    npy = next((run / "data").glob("ids-*.npy"))
    return npy, npy.with_suffix(".json")


def out_of_range(npy: Path, meta: Path, rehash: bool = False) -> None:
    ids = np.load(npy).copy()
    ids[:50] = 250                                   # beyond a vocabulary of ~28
    np.save(npy, ids)
    if rehash:                                       # the digest made to match: the range check remains
        from rnnkit.text.corpus import ids_digest
        info = json.loads(meta.read_text())
        info["ids"]["sha256"] = ids_digest(np.load(npy, mmap_mode="r"))
        meta.write_text(json.dumps(info))


def flipped(npy: Path, meta: Path) -> None:
    ids = np.load(npy).copy()
    ids[100] = (int(ids[100]) + 1) % 5             # still in range: only the digest sees it
    np.save(npy, ids)


DAMAGE = [  # (id, edit(npy, meta), words of the warning)
    ("ids out of range", out_of_range, "digest mismatch"),
    ("ids out of range, digest re-made", lambda n, m: out_of_range(n, m, True), "out of range for a vocabulary"),
    ("one id changed, in range", flipped, "digest mismatch"),
    ("wrong dtype", lambda n, m: np.save(n, np.load(n).astype(np.int64)), "the vocabulary needs one row of uint8"),
    ("two-dimensional", lambda n, m: np.save(n, np.load(n)[: len(np.load(n)) // 2 * 2].reshape(2, -1)), "of shape (2,"),
    ("truncated", lambda n, m: n.write_bytes(n.read_bytes()[:-100]), "damaged or truncated"),
    ("not an npy file", lambda n, m: n.write_bytes(b"junk" * 100), "damaged or truncated"),
    ("vocabulary file missing", lambda n, m: m.unlink(), "half an id cache"),
    ("vocabulary file junk", lambda n, m: m.write_text("{not json"), "unreadable vocabulary"),
    ("vocabulary with non-byte symbols", lambda n, m: m.write_text(json.dumps({"kind": "bytes", "symbols": "€a"})),
     "unreadable vocabulary"),
    ("count edited", lambda n, m: m.write_text(json.dumps(json.loads(m.read_text()) | {"ids": {"count": 5, "sha256": "0"}})),
     "says 5"),
]


@pytest.fixture
def damaged(tmp_path, base) -> Path:
    run = shutil.copytree(base, tmp_path / "run")
    shutil.copy(base.parent / "corpus.txt", tmp_path / "corpus.txt")
    return run


@pytest.mark.parametrize("edit, words", [c[1:] for c in DAMAGE], ids=[c[0] for c in DAMAGE])
def test_a_damaged_id_cache_is_rebuilt_and_said(cli, damaged, edit, words, base):
    # the run was trained on base.parent/corpus.txt; the cache is keyed by that path
    npy, meta = _cache(damaged)
    edit(npy, meta)
    r = cli("train", "--resume", damaged, "--max-steps", "8", cwd=damaged.parent)
    assert r.rc == 0 and "Traceback" not in r.err, r
    warned = [line for line in r.err_lines if "rebuilding it from the sources" in line]
    assert len(warned) == 1 and words in warned[0], r.err
    ids, m2 = _cache(damaged)
    from rnnkit.text.corpus import read_cache
    assert read_cache(ids, m2)[2] is None                 # the cache is whole again


@pytest.mark.parametrize("edit, words", [DAMAGE[1][1:], DAMAGE[5][1:]], ids=["out of range", "truncated"])
def test_report_passes_over_a_damaged_cache(cli, damaged, edit, words):
    edit(*_cache(damaged))
    r = cli("report", damaged, "--chars", "100", "--sample-chars", "5", cwd=damaged.parent)
    line = error_line(r)
    assert r.rc == 2 and "pass a passage with --text FILE" in line, r
    assert any(words in w and "not used" in w for w in r.err_lines), r.err


BOM = "\ufeff"
BOMS = [  # (id, argv, what must hold)
    ("train", ["train", "bom.txt", "--out", "r", *TRAIN], "vocab"),
    ("eval", ["eval", "old", "bom.txt", "--json"], "chars"),
    ("--config", ["train", "plain.txt", "--config", "bom.json", "--out", "c", *TRAIN], "config"),
    ("report --text", ["report", "old", "--text", "bom.txt", "--out", "b.html", "--chars", "50",
                       "--sample-chars", "5"], "page"),
]


@pytest.mark.parametrize("argv, check", [c[1:] for c in BOMS], ids=[c[0] for c in BOMS])
def test_a_byte_order_mark_is_not_text(cli, tmp_path, base, argv, check):
    text = make_text(40)
    (tmp_path / "bom.txt").write_text(BOM + text, encoding="utf-8")
    (tmp_path / "plain.txt").write_text(text)
    (tmp_path / "bom.json").write_text(BOM + json.dumps({"hidden": 8}), encoding="utf-8")
    shutil.copytree(base, tmp_path / "old")
    r = cli(*argv, cwd=tmp_path)
    assert r.rc == 0 and "Traceback" not in r.err, r
    assert any("byte order mark" in line and "left out" in line for line in r.err_lines), r.err
    if check == "vocab":
        assert BOM not in load_checkpoint(tmp_path / "r" / "last.safetensors")[1]["vocab"]["symbols"]
    if check == "chars":   # every character but the mark, minus the first (nothing predicts it)
        assert json.loads(r.out.splitlines()[-1])["chars"] == len(text) - 1
    if check == "page":
        assert BOM not in (tmp_path / "b.html").read_text(encoding="utf-8")


def test_bytes_mode_keeps_every_byte(tmp_path):
    """--encoding bytes models the file's bytes: the mark's three bytes are data there."""
    from rnnkit.text.corpus import Source, build_vocab
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbfabc")
    vocab, total = build_vocab([Source(p, "bom.txt")], "bytes")
    assert total == 6 and "\xef" in vocab.symbols
