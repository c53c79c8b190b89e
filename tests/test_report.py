"""The HTML run report (report.py), end to end: a tiny run is trained, reported, and the page is
opened in real headless Chromium, driven over the DevTools protocol on a pipe (no network port).

Chromium is required, not optional: without it the test fails and says how to install it.
"""
import base64
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time

import pytest

from rnnkit.cli import main
from rnnkit.core.config import ModelConfig, ReportConfig, TrainConfig, UsageError
from rnnkit.text.lm import train_lm
from rnnkit.text.report import build_report, write_report

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = ("install it with `sudo apt-get update && sudo apt-get install -y chromium` (Debian; Ubuntu: "
           "chromium-browser) or point RNNKIT_CHROMIUM at a Chrome/Chromium binary")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe")


def chromium() -> str:
    exe = os.environ.get("RNNKIT_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not exe:
        pytest.fail(f"Chromium not found: the report test needs a real browser; {INSTALL}")
    return exe


# exec argv[3:] with the pipe ends argv[1], argv[2] moved to fds 3 and 4 (first out of the way,
# above 9, so that neither move overwrites the other)
AT_FDS_3_4 = """import fcntl, os, sys
ends = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]
for fd in sys.argv[1:3]:
    os.close(int(fd))
for want, fd in zip((3, 4), ends):
    os.dup2(fd, want)
    os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""


class Browser:
    """A minimal DevTools-protocol client over --remote-debugging-pipe: chromium reads commands on
    fd 3 and writes replies and events on fd 4, each message JSON ended by a NUL byte."""

    def __init__(self, exe: str, profile, log, timeout: float = 60.0):
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-c", AT_FDS_3_4, str(to_r), str(from_w), exe, *FLAGS,
                                      f"--user-data-dir={profile}", "about:blank"],
                                     pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(to_r)
        os.close(from_w)
        self.timeout, self.buf, self.events, self.n = timeout, b"", [], 0

    def read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            ready, _, _ = select.select([self.from_r], [], [], max(0.0, deadline - time.time()))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.from_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()})")
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + self.timeout
        while True:
            m = self.read(deadline)
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def wait_for(self, method: str) -> dict:
        deadline = time.time() + self.timeout
        while True:
            for m in self.events:
                if m.get("method") == method:
                    return m
            self.events.append(self.read(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny character LSTM trained for a few steps on text with quotes and brackets."""
    root = tmp_path_factory.mktemp("report")
    lines = ['He said "hello there" (twice) to her.', "She said \"good bye\" [once].", "THEY LEFT; all was quiet."]
    (root / "text.txt").write_text("\n".join(lines * 60) + "\n")
    tcfg = TrainConfig(files=[str(root / "text.txt")], max_steps=24, batch=4, seq_len=32, eval_every=8,
                       save_every=8, log_every=4, sample_chars=60, device="cpu", threads=1, warmup=2)
    train_lm(tcfg, ModelConfig(cell="lstm", layers=2, hidden=24, embed=8), root / "run", quiet=True)
    return root / "run"


def data_of(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_page_content_is_complete_and_self_contained(run_dir):
    page = build_report(run_dir, ReportConfig(chars=300, sample_chars=50, units=3))
    for needle in ("<svg id=\"curves\"", 'class="train"', 'class="val"', "parameters", "chars/s",
                   "temperature 0.5", "temperature 1.0", "Saved during training", "validation split"):
        assert needle in page, needle
    assert len(re.findall(r"<h3>step \d+", page)) == 3        # the samples saved at steps 8, 16, 24
    # nothing is fetched: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|url\(|@import""", page)
    d = data_of(page)
    assert len(d["chars"]) == 300 and d["p"][0] is None and 0 < d["p"][1] <= 1
    top = d["top"][10]
    assert len(top) == 5 and [q for _, q in top] == sorted((q for _, q in top), reverse=True)
    assert d["options"] and all(abs(d["options"][0]["r"]) >= abs(o["r"]) for o in d["options"])
    assert {o["feature"] for o in d["options"]} >= {"inside quotes", "inside brackets", "uppercase"}
    assert all(len(u["q"]) == 300 and max(map(abs, u["q"])) == 100 for u in d["units"])


@pytest.fixture(scope="module")
def chromium_exe():
    return chromium()  # before the tiny run is trained: a missing browser fails at once


def test_page_in_headless_chromium(chromium_exe, run_dir, tmp_path):
    out = write_report(run_dir, ReportConfig(out=str(tmp_path / "report.html"), chars=400, sample_chars=50))
    browser = Browser(chromium_exe, tmp_path / "profile", open(tmp_path / "chromium.log", "wb"))
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        s = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            browser.send(f"{domain}.enable", s)
        browser.send("Emulation.setDeviceMetricsOverride", s, width=1200, height=1400, deviceScaleFactor=1, mobile=False)
        browser.send("Page.navigate", s, url=out.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")

        def js(expr: str):
            r = browser.send("Runtime.evaluate", s, expression=expr, returnByValue=True)
            assert "exceptionDetails" not in r, r["exceptionDetails"]
            return r["result"].get("value")

        assert js("document.body.dataset.ready") == "1"              # the script ran to its end
        assert js("document.querySelectorAll('#heat-prob span').length") == 400
        assert js("[...document.querySelectorAll('#heat-prob span')].filter(s => s.style.backgroundColor).length") == 400
        assert js("document.querySelectorAll('#curves polyline.train').length") == 1
        assert js("document.querySelector('#curves polyline.train').points.length") >= 4
        assert js("document.querySelectorAll('#curves circle.val').length") == 3
        # choosing another unit repaints the unit heatmap
        colours = "[...document.querySelectorAll('#heat-unit span')].map(s => s.style.backgroundColor).join()"
        before = js(colours)
        assert js("document.getElementById('unit-select').options.length") >= 2
        js("const sel = document.getElementById('unit-select'); sel.value = String(sel.options.length - 1);"
           "sel.dispatchEvent(new Event('change')); 0")
        assert js(colours) != before
        # a real mouse hover over a character shows its five likeliest successors
        box = js("(() => { const r = document.querySelectorAll('#heat-prob span')[12].getBoundingClientRect();"
                 " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        browser.send("Input.dispatchMouseEvent", s, type="mouseMoved", x=box[0], y=box[1])
        assert js("document.getElementById('tip').hidden") is False
        assert js("document.querySelectorAll('#tip table.top5 tr').length") == 5
        shot = browser.send("Page.captureScreenshot", s, format="png")["data"]
        problems = [m for m in browser.events if m.get("method") == "Runtime.exceptionThrown"
                    or (m.get("method") == "Runtime.consoleAPICalled" and m["params"]["type"] in ("error", "assert"))
                    or (m.get("method") == "Log.entryAdded" and m["params"]["entry"]["level"] == "error")]
        fetched = [m["params"]["request"]["url"] for m in browser.events if m.get("method") == "Network.requestWillBeSent"]
    finally:
        browser.close()
    assert problems == [], f"console errors or exceptions (Chromium's log: {tmp_path / 'chromium.log'})"
    assert fetched == [out.resolve().as_uri()]                         # the page itself and nothing else
    png = base64.b64decode(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    (tmp_path / "report.png").write_bytes(png)
    print(f"screenshot: {tmp_path / 'report.png'}")


def test_cli_report_and_its_errors(run_dir, tmp_path, capsys):
    text = tmp_path / "passage.txt"
    text.write_text('She said "hello" (twice) ~ to her.\n')
    out = tmp_path / "sub" / "r.html"
    assert main(["report", str(run_dir), "--text", str(text), "--out", str(out), "--chars", "200",
                 "--sample-chars", "20"]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.out and "'~'" in captured.err and "outside the vocabulary" in captured.err
    d = data_of(out.read_text())
    assert "".join(d["chars"]) == 'She said "hello" (twice)  to her.\n'
    for argv, message in ((["report", str(tmp_path / "nope")], "no such run directory"),
                          (["report", str(run_dir), "--text", str(tmp_path / "missing.txt")], "no such file"),
                          (["report", str(run_dir), "--chars", "1"], "--chars must be >= 2"),
                          (["report", str(run_dir), "--out", str(tmp_path)], "is a directory")):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_a_run_without_its_corpus_needs_text(run_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "best.safetensors", bare)
    with pytest.raises(UsageError, match="--text FILE"):
        build_report(bare, ReportConfig(sample_chars=10))
