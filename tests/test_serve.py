"""rnnkit serve: real HTTP against a server on a free loopback port, and its page in headless Chromium."""
import base64
import concurrent.futures
import http.client
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from cli_runner import env_with_src  # noqa: E402
from rnnkit.core.checkpoint import load_model  # noqa: E402
from rnnkit.core.config import SampleConfig  # noqa: E402
from rnnkit.text.sample import generate  # noqa: E402


class Server:
    def __init__(self, run, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", str(run), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_with_src())
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def post(self, path: str, body, timeout: float = 60) -> tuple[int, str, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()}
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server(tiny_run):
    s = Server(tiny_run, "--concurrency", "4", "--max-length", "3000", "--max-body", "4096")
    yield s
    s.stop()


def alone(run, **kw) -> str:
    model, vocab, _ = load_model(run)
    return generate(model, vocab, SampleConfig(**kw))[0]


def test_health_and_streamed_text_equal_the_library(server, tiny_run):
    h = server.get("/health")
    assert h["status"] == "ok" and h["active"] == 0 and h["limits"]["max_length"] == 3000
    code, text, headers = server.post("/generate", {"prime": "the ", "length": 200, "seed": 5, "top_p": 0.9})
    assert code == 200 and headers.get("transfer-encoding") == "chunked"
    assert text == alone(tiny_run, prime="the ", length=200, seed=5, top_p=0.9)
    code, body, _ = server.post("/generate", {"num": 3, "length": 30, "seed": 1})
    assert code == 200 and len(json.loads(body)["samples"]) == 3


def test_score_endpoint(server):
    code, body, _ = server.post("/score", {"text": "the quick fox\nthe lazy dog\n", "probs": True})
    d = json.loads(body)
    assert code == 200 and [r["line"] for r in d["rows"]] == [1, 2] and len(d["probs"]) == 26
    assert all(0 < p <= 1 for p in d["probs"]) and d["total"]["chars"] == 26


@pytest.mark.parametrize("body,status,field", [
    ({"top_p": 3}, 422, "top_p"),
    ({"length": 5000}, 422, "length"),
    ({"temperature": "hot"}, 422, "temperature"),
    ({"bogus": 1}, 422, "bogus"),
    ({"prime_file": "/etc/passwd"}, 400, "prime_file"),
    ({"num": 99}, 422, "num"),
    ({"prime": "\u2603"}, 422, "prime"),
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (b'{"prime": "' + b"a" * 5000 + b'"}', 413, None),
])
def test_bad_requests_get_a_4xx_naming_the_field(server, body, status, field):
    code, text, headers = server.post("/generate", body)
    d = json.loads(text)
    assert code == status and "error" in d and d["field"] == field, d
    code, text, _ = server.post("/score", {"text": 5})
    assert code == 422 and json.loads(text)["field"] == "text"


def test_32_concurrent_clients_get_the_text_their_seeds_give_alone(server):
    wanted = {seed: server.post("/generate", {"length": 150, "seed": seed})[1] for seed in range(32)}
    assert len(set(wanted.values())) > 1
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        got = dict(zip(range(32), pool.map(lambda s: server.post("/generate", {"length": 150, "seed": s})[1], range(32))))
    assert got == wanted


def test_a_client_that_disconnects_frees_its_slot(tiny_run):
    s = Server(tiny_run, "--concurrency", "1", "--max-length", "5000000")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("POST", "/generate", body=json.dumps({"length": 5000000, "seed": 1}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and len(r.read(200)) == 200               # it is streaming
        assert s.get("/health")["active"] == 1
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        # the only slot is free again: a new request is served (it would wait forever otherwise)
        code, text, _ = s.post("/generate", {"length": 20, "seed": 2}, timeout=60)
        assert code == 200 and len(text) == 20
        deadline = time.time() + 30
        while s.get("/health")["active"] != 0 and time.time() < deadline:
            time.sleep(0.2)
        assert s.get("/health")["active"] == 0
    finally:
        s.stop()


def test_loopback_by_default_and_other_hosts_said_in_the_log(tiny_run):
    s = Server(tiny_run)
    s.stop()
    assert "warning" not in s.proc.stderr.read()
    p = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", str(tiny_run), "--port", "0", "--host", "0.0.0.0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_with_src())
    try:
        line = p.stdout.readline()
        assert "http://0.0.0.0:" in line
    finally:
        p.terminate()
        p.wait(timeout=10)
    assert "other machines can reach" in p.stderr.read()


def test_page_streams_text_in_headless_chromium(server, tmp_path):
    from test_report import Browser, chromium
    browser = Browser(chromium(), tmp_path / "profile", open(tmp_path / "chromium.log", "wb"))
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        s = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            browser.send(f"{domain}.enable", s)
        browser.send("Emulation.setDeviceMetricsOverride", s, width=1100, height=900, deviceScaleFactor=1, mobile=False)
        browser.send("Page.navigate", s, url=server.url + "/")
        browser.wait_for("Page.loadEventFired")

        def js(expr: str):
            r = browser.send("Runtime.evaluate", s, expression=expr, returnByValue=True, awaitPromise=True)
            assert "exceptionDetails" not in r, r["exceptionDetails"]
            return r["result"].get("value")

        js("document.getElementById('prime').value = 'the '; document.getElementById('length').value = '300';"
           "document.getElementById('seed').value = '3'; document.getElementById('go').click(); 0")
        deadline, text = time.time() + 60, ""
        while time.time() < deadline:
            text = js("document.getElementById('out').textContent")
            spans = js("document.querySelectorAll('#strip span').length")
            if spans:
                break
            time.sleep(0.2)
        assert text.startswith("the ") and len(text) == 304
        assert spans == 304
        assert js("[...document.querySelectorAll('#strip span')].filter(s => s.style.backgroundColor).length") == 303
        assert js("document.getElementById('status').textContent").startswith("done")
        shot = browser.send("Page.captureScreenshot", s, format="png")["data"]
        problems = [m for m in browser.events if m.get("method") == "Runtime.exceptionThrown"
                    or (m.get("method") == "Runtime.consoleAPICalled" and m["params"]["type"] in ("error", "assert"))]
    finally:
        browser.close()
    assert problems == []
    png = base64.b64decode(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "serve.png").write_bytes(png)
