"""Issue 26, `rnnkit export` (table-driven; each case failed before its fix):
2. --force never reaches a checkpoint or any file rnnkit did not write as an export: the run stays
   byte for byte what it was, and still samples;
3. an --onnx path that names a directory is refused in one line (it was a traceback);
and a forecast run is named as one, with the command that uses it."""
from __future__ import annotations

import shutil

import pytest

from conftest import tree_digest

pytest.importorskip("onnx")

RUN_FILES = ["best.safetensors", "last.safetensors", "prev.safetensors", "config.json", "metrics.jsonl",
             "curves.png"]


@pytest.fixture
def run(tiny_run, tmp_path):
    return shutil.copytree(tiny_run, tmp_path / "run")


@pytest.mark.parametrize("name", RUN_FILES)
def test_force_never_overwrites_a_file_of_the_run(cli, run, name):
    before = tree_digest(run)
    r = cli("export", str(run), "--onnx", str(run / name), "--force")
    assert r.rc == 2 and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert "checkpoint" in r.err or "not written by rnnkit export" in r.err, r.err
    assert tree_digest(run) == before
    assert cli("sample", str(run), "--length", "5", "--seed", "1").rc == 0


OTHER = [  # (id, file name, content): files that exist outside the run and are not exports
    ("a checkpoint copied elsewhere", "best.safetensors", None),
    ("a checkpoint renamed .onnx", "model.onnx", None),
    ("someone's text as .onnx", "model.onnx", b"mine"),
    ("someone's JSON as .vocab.json", "model.vocab.json", b'{"symbols": "abc"}'),
    ("someone's .seq.onnx", "model.seq.onnx", b"\x08\x07notonnx"),
]


@pytest.mark.parametrize("name,content", [c[1:] for c in OTHER], ids=[c[0] for c in OTHER])
def test_force_replaces_only_earlier_exports(cli, run, tmp_path, name, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(content if content is not None else (run / "best.safetensors").read_bytes())
    before = tree_digest(out)
    target = out / ("best.safetensors" if name.endswith(".safetensors") else "model.onnx")
    r = cli("export", str(run), "--onnx", str(target), "--force")
    assert r.rc == 2 and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert tree_digest(out) == before


def test_force_replaces_an_earlier_export(cli, run, tmp_path):
    f = tmp_path / "m.onnx"
    assert cli("export", str(run), "--onnx", str(f)).rc == 0
    first = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("m.*")}
    assert len(first) == 3
    r = cli("export", str(run), "--onnx", str(f), "--force")
    assert r.rc == 0, r.err
    assert all(p.stat().st_mtime_ns >= first[p.name] for p in tmp_path.glob("m.*"))


DIRS = [".", "/", "..", "{tmp}", "{tmp}/", "{tmp}/new/", "{run}"]


@pytest.mark.parametrize("onnx", DIRS)
def test_onnx_naming_a_directory_is_refused_in_one_line(cli, run, tmp_path, onnx):
    before = tree_digest(run)
    r = cli("export", str(run), "--onnx", onnx.format(tmp=tmp_path, run=run))
    assert r.rc == 2 and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert "names a directory" in r.err or "no such directory" in r.err, r.err
    assert tree_digest(run) == before


@pytest.mark.parametrize("command", [["export", "--onnx", "x.onnx"], ["score", "-"], ["serve"], ["sample"]])
def test_a_forecast_run_is_named_as_one(cli, tmp_path, command):
    fc = tmp_path / "fc"
    fc.mkdir()
    (fc / "forecast.safetensors").write_bytes(b"")     # what the message is about: the file's name
    r = cli(command[0], str(fc), *command[1:])
    assert r.rc == 2 and "a forecast run" in r.err and f"rnnkit forecast --predict {fc} CSV" in r.err, r.err
