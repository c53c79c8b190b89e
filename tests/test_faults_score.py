"""Issue 26, `rnnkit score` gaps (each case failed before its fix): a file with Windows line ends
gets a hint instead of only rejecting every line, and --unknown skip scores lines without the
characters outside the vocabulary (as `rnnkit eval --unknown skip` does)."""
import json

import pytest

TEXT = "the quick fox\nthe lazy dog\nover the sea\n"
CASES = [("crlf", TEXT.replace("\n", "\r\n"), 3), ("a snowman per line", TEXT.replace("\n", "\u2603\n"), 3),
         ("one odd line", TEXT.replace("fox", "f\u00f6x"), 1)]


@pytest.mark.parametrize("text,odd", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unknown_skip_scores_the_lines_without_the_odd_characters(cli, tiny_run, tmp_path, text, odd):
    f, clean = tmp_path / "t.txt", tmp_path / "clean.txt"
    f.write_text(text, newline="")
    clean.write_text("".join(c for c in text if c in TEXT), newline="")
    r = cli("score", str(tiny_run), str(f), "--unknown", "skip", "--json")
    assert r.rc == 0, r.err
    total = json.loads(r.out.splitlines()[-1])["total"]
    ref = json.loads(cli("score", str(tiny_run), str(clean), "--json").out.splitlines()[-1])["total"]
    assert total["unknown_skipped"] == odd and total["skipped"] == 0
    assert total["chars"] == ref["chars"] and total["bpc"] == pytest.approx(ref["bpc"], rel=1e-6)


def test_windows_line_ends_get_a_hint(cli, tiny_run, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(TEXT.replace("\n", "\r\n"), newline="")
    r = cli("score", str(tiny_run), str(f))
    assert r.rc == 2 and "Windows line ends" in r.err and "--unknown skip" in r.err and "Traceback" not in r.err
