"""rnnkit score: per-line bits per character with the state carried; the total is eval's."""
import json

import pytest

from rnnkit import ModelConfig, TrainConfig, train_lm
from rnnkit.core.checkpoint import load_model
from rnnkit.text.score import score_text, split_units, worst

FOREIGN = ("Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.\n"
           "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.\n"
           "Jeder wackere Bayer vertilgt bequem zwo Pfund Kalbshaxen.\n")


@pytest.fixture(scope="module")
def verse_run(tmp_path_factory):
    """A small model trained briefly on Shakespeare-like verse (the shared tiny run is too weak)."""
    from conftest import make_text
    d = tmp_path_factory.mktemp("verse")
    f = d / "verse.txt"
    f.write_text(make_text(4000, seed=1))
    out = d / "run"
    train_lm(TrainConfig(files=[str(f)], seq_len=32, batch=16, max_steps=150, eval_every=150, save_every=150,
                         log_every=150, sample_chars=0, device="cpu", seed=0, lr=5e-3),
             ModelConfig(cell="lstm", layers=1, hidden=48, embed=16, dropout=0.0), out, quiet=True)
    return out, f


def test_lines_and_segments_split_as_documented():
    assert split_units("ab\ncd\n\ne", None) == ["ab\n", "cd\n", "\n", "e"]
    assert split_units("abcdefg", 3) == ["abc", "def", "g"]


def test_a_planted_foreign_paragraph_scores_worst(verse_run, tmp_path):
    run, f = verse_run
    model, vocab, _ = load_model(run)
    lines = f.read_text().splitlines(keepends=True)[:60]
    text = "".join(lines[:30]) + FOREIGN + "".join(lines[30:])
    res = score_text(model, vocab, text)
    foreign = {31, 32, 33}
    assert all(res.rows[n - 1].get("unknown") for n in foreign)            # ö, ü, ß: not in the vocabulary
    # with the unknown characters spelled out, the paragraph is in-vocabulary and scores worst
    ascii_foreign = FOREIGN.replace("ö", "o").replace("ü", "u").replace("ä", "a").replace("ß", "ss").replace("Ü", "U")
    ascii_foreign = "".join(c if c in vocab.index else " " for c in ascii_foreign)
    res = score_text(model, vocab, "".join(lines[:30]) + ascii_foreign + "".join(lines[30:]))
    top3 = {r["line"] for r in worst(res, 3)}
    assert top3 == foreign, worst(res, 5)


def test_total_equals_eval_and_unknown_lines_are_reported(cli, verse_run, tmp_path):
    run, f = verse_run
    part = tmp_path / "part.txt"
    part.write_text("".join(f.read_text().splitlines(keepends=True)[:40]))
    ev = json.loads(cli("eval", str(run), str(part), "--json").out.splitlines()[-1])
    r = cli("score", str(run), str(part), "--json")
    assert r.rc == 0, r.err
    rows = [json.loads(l) for l in r.out.splitlines()]
    total = rows[-1]["total"]
    assert total["chars"] == ev["chars"] and abs(total["bpc"] - ev["bpc"]) < 1e-6
    assert [x["line"] for x in rows[:-1]] == list(range(1, 41))
    assert sum(x["chars"] for x in rows[:-1]) == ev["chars"]
    assert all(set(x) == {"line", "chars", "bpc"} for x in rows[:-1])
    bad = tmp_path / "bad.txt"
    bad.write_text("the quick fox\nnaïve ☃ line\nthe lazy dog\n")
    r = cli("score", str(run), str(bad))
    assert r.rc == 0 and "line 2: characters not in the vocabulary" in r.out and "1 line(s)" in r.out


def test_segments_and_standard_input(cli, verse_run, tmp_path):
    run, f = verse_run
    piece = tmp_path / "piece.txt"
    piece.write_text(f.read_text()[:1000])
    r = cli("score", str(run), "-", "--segment", "300", "--json", stdin=str(piece))
    assert r.rc == 0, r.err
    rows = [json.loads(l) for l in r.out.splitlines()]
    assert [x["segment"] for x in rows[:-1]] == [1, 2, 3, 4] and [x["chars"] for x in rows[:-1]] == [299, 300, 300, 100]


def test_bad_input_is_one_line(cli, verse_run, tmp_path):
    run, _ = verse_run
    b = tmp_path / "b.txt"
    b.write_bytes(b"abc\xff\n")
    r = cli("score", str(run), str(b))
    assert r.rc == 2 and "not valid UTF-8 at byte 3" in r.err and "Traceback" not in r.err
    r = cli("score", str(run), str(tmp_path / "missing.txt"))
    assert r.rc == 2 and "no such file" in r.err
