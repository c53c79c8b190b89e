"""Issue 14, `rnnkit report` (table-driven; each table failed before its fix):
6. a hand-edited metrics.jsonl: bad records are skipped and counted, by report and plot_curves;
7. bytes mode: the page shows decoded text and speaks of bytes;
8. --out never overwrites a checkpoint or any file rnnkit did not write (refused before any work)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import tree_digest
from faults_helpers import TINY_MODEL, TINY_TRAIN, make_text, trained_run

QUICK = ["--chars", "200", "--sample-chars", "10"]


def summary(page: str) -> str:
    return re.search(r'<table class="summary">(.*?)</table>', page, re.S).group(1)


def page_data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
                      .group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory)


# ---- 6. metrics.jsonl with junk and wrong types --------------------------------------------------

JUNK = [  # (id, the line appended to metrics.jsonl)
    ("a list", "[1, 2]"), ("a string", '"text"'), ("a number", "42"), ("null", "null"),
    ("not JSON", "not json at all"), ("a torn line", '{"step": 7, "chars"'),
    ("step a string", '{"step": "x", "chars": 5, "loss": 1.0}'),
    ("chars a string", '{"step": 7, "chars": "many", "loss": 2.0}'),
    ("loss a bool", '{"step": 7, "chars": 3, "loss": true}'),
    ("val_loss a string", '{"step": 7, "chars": 3, "val_loss": "low", "val_bpc": 1.0}'),
    ("val_bpc a list", '{"step": 7, "chars": 3, "val_loss": 1.0, "val_bpc": [1]}'),
    ("sample a number", '{"step": 7, "chars": 3, "val_loss": 1.0, "val_bpc": 1.4, "sample": 5}'),
    ("chars beyond 2**63", '{"step": 7, "chars": 100000000000000000000000000000, "loss": 1.0}'),
    ("negative step", '{"step": -5, "chars": 3, "loss": 1.0}'),
    ("loss without chars", '{"step": 7, "loss": 1.0}'),
    ("time an object", '{"step": 7, "chars": 3, "loss": 1.0, "time": {}}'),
]


@pytest.fixture
def run(tmp_path, base) -> Path:
    return shutil.copytree(base, tmp_path / "run")


@pytest.mark.parametrize("line", [c[1] for c in JUNK], ids=[c[0] for c in JUNK])
def test_report_skips_and_counts_bad_metrics(cli, run, line):
    with open(run / "metrics.jsonl", "a") as f:
        f.write(line + "\n" + '{"step": 99, "chars": 50, "loss": 1.5}' + "\n")  # a good one after it
    r = cli("report", run, *QUICK, cwd=run.parent)
    assert r.rc == 0 and "Traceback" not in r.err, r
    assert [w for w in r.err_lines if "warning" in w] == [
        f"rnnkit: warning: {run / 'metrics.jsonl'}: skipped 1 record(s) that are not metrics rnnkit "
        "wrote (junk, a torn line or fields of the wrong type)"], r.err
    assert (run / "report.html").exists()


def test_plot_curves_skips_and_counts_too(tmp_path, base):
    from rnnkit.core.plots import plot_curves
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text((base / "metrics.jsonl").read_text() + "\n".join(line for _, line in JUNK) + "\n")
    said = []
    assert plot_curves(metrics, tmp_path / "curves.png", warn=said.append) == len(JUNK)
    assert (tmp_path / "curves.png").stat().st_size > 0 and f"skipped {len(JUNK)} record(s)" in said[0]


# ---- 7. bytes mode -------------------------------------------------------------------------------

UTF8 = "héllo wörld, 株式 and ü\n"


@pytest.fixture(scope="module")
def bytes_page(tmp_path_factory) -> str:
    from rnnkit import ModelConfig, TrainConfig, train_lm
    from rnnkit.core.config import ReportConfig
    from rnnkit.text.report import build_report
    root = tmp_path_factory.mktemp("bytes")
    (root / "t.txt").write_text((UTF8 + make_text(10)) * 6)
    (root / "passage.txt").write_text(UTF8 * 3)
    train_lm(TrainConfig(files=[str(root / "t.txt")], encoding="bytes", **TINY_TRAIN), ModelConfig(**TINY_MODEL),
             root / "run", quiet=True)
    return build_report(root / "run", ReportConfig(text=str(root / "passage.txt"), chars=200, sample_chars=10))


BYTES = [  # (id, what the page must show, what it must not)
    ("decoded passage", lambda d, p: "".join(d["chars"]) == UTF8 * 3),
    ("one label per byte", lambda d, p: len(d["chars"]) == len((UTF8 * 3).encode()) and "" in d["chars"]),
    ("no Latin-1 mojibake", lambda d, p: "Ã" not in "".join(d["chars"]) and "Ã©" not in p),
    ("the unit is the byte", lambda d, p: d["unit"] == "byte"),
    ("top 5 as bytes", lambda d, p: all(len(c) == 1 and ord(c) < 128 or re.fullmatch(r"0x[0-9A-F]{2}", c)
                                        for row in d["top"] for c, _ in row)),
    ("curves in bits per byte", lambda d, p: "bits per byte" in p and "bytes seen" in p and "bits per character" not in p),
    ("summary speaks of bytes", lambda d, p: "bytes/s" in summary(p) and "bits/byte" in summary(p)
     and "vocabulary</th><td>" in summary(p) and "char" not in summary(p)),
    ("passage source in bytes", lambda d, p: "first 78 bytes" in p or re.search(r"first [\d,]+ bytes", p)),
]


@pytest.mark.parametrize("check", [c[1] for c in BYTES], ids=[c[0] for c in BYTES])
def test_bytes_report_shows_text_and_speaks_of_bytes(bytes_page, check):
    assert check(page_data(bytes_page), bytes_page)


def test_invalid_utf8_bytes_show_as_escapes():
    from rnnkit.text.report import display_symbols
    text = b"a\xc3\xa9\xff\xe6\xa0".decode("latin-1")   # 'é' whole, a stray byte, a cut-off character
    assert display_symbols(text, "bytes") == ["a", "é", "", "\\xff", "\\xe6", "\\xa0"]


# ---- 8. report --out -------------------------------------------------------------------------------

OUT = [  # (id, --out, setup(workspace), exit status, words of the one line)
    ("a checkpoint", "run/last.safetensors", None, 2, "exists and is a checkpoint; it is never overwritten"),
    ("the best checkpoint", "run/best.safetensors", None, 2, "is a checkpoint"),
    ("a user's HTML", "notes.html", lambda w: (w / "notes.html").write_text("<html>mine</html>"), 2,
     "exists and is a file rnnkit did not write"),
    ("the run's config", "run/config.json", None, 2, "a file rnnkit did not write"),
    ("metrics.jsonl", "run/metrics.jsonl", None, 2, "a file rnnkit did not write"),
    ("an empty file", "empty.html", lambda w: (w / "empty.html").write_bytes(b""), 2, "a file rnnkit did not write"),
    ("a directory", "run", None, 2, "is a directory; give a file name such as run/report.html"),
    ("a symlink to a report", "link.html", lambda w: (w / "link.html").symlink_to("old.html"), 2, "is a symbolic link"),
    ("a dangling symlink", "dangle.html", lambda w: (w / "dangle.html").symlink_to("nowhere/x"), 2, "is a symbolic link"),
    ("under a file", "notes.html/r.html", lambda w: (w / "notes.html").write_text("mine"), 2, "notes.html is a file"),
    ("default out is a user file", None, lambda w: (w / "run" / "report.html").write_text("mine"), 2,
     "run/report.html: exists and is a file rnnkit did not write"),
]


@pytest.fixture
def ws(tmp_path, base) -> Path:
    shutil.copytree(base, tmp_path / "run")
    return tmp_path


@pytest.mark.parametrize("out, setup, code, words", [c[1:] for c in OUT], ids=[c[0] for c in OUT])
def test_report_out_never_clobbers(cli, ws, out, setup, code, words):
    if setup:
        setup(ws)
    before = tree_digest(ws)
    r = cli("report", "run", *(["--out", out] if out else []), *QUICK, cwd=ws)
    assert not r.timed_out and "Traceback" not in r.err and r.rc == code, r
    assert len(r.err_lines) == 1 and words in r.err_lines[0] and r.out == "", r
    assert tree_digest(ws) == before


def test_report_out_replaces_its_own_report(cli, ws):
    assert cli("report", "run", "--out", "old.html", *QUICK, cwd=ws).rc == 0
    first = (ws / "old.html").read_bytes()
    r = cli("report", "run", "--out", "old.html", *QUICK, "--seed", "5", cwd=ws)
    assert r.rc == 0 and r.err == "", r
    assert (ws / "old.html").read_bytes() != first      # an earlier report is rnnkit's own: replaced
