"""Issue 26, rnnkit serve (real HTTP on a free loopback port; each case failed before its fix):
1. a lone surrogate in a key or a text gets a 4xx (or 200) ASCII JSON answer, never a 500;
4. a computation that does not stream (beam, num > 1) is abandoned when its client leaves;
8. the prompt counts in the server's length limit;
and the gaps: HEAD, 404 / 405 as {"error", "field"}, an empty body, /score with nothing to score,
the number and length of stop strings."""
import http.client
import json
import socket
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from test_serve import Server  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_run):
    s = Server(tiny_run, "--max-length", "3000", "--max-body", "20000")
    yield s
    s.stop()
    assert "Traceback" not in s.proc.stderr.read()


def request(server, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body is not None else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


CASES = [  # (id, method, path, raw body, status, field or "-" for a 200 text)
    ("surrogate key /generate", "POST", "/generate", b'{"\\ud800": 1}', 422, "\ud800"),
    ("surrogate key /score", "POST", "/score", b'{"\\udfff": 1}', 422, "\udfff"),
    ("surrogate text /score", "POST", "/score", b'{"text": "the fox\\n\\ud800\\nthe dog\\n"}', 200, None),
    ("surrogate prime", "POST", "/generate", b'{"prime": "a\\ud800"}', 422, "prime"),
    ("surrogate prime, num 2", "POST", "/generate", b'{"prime": "a\\ud800", "num": 2}', 422, "prime"),
    ("surrogate prime skipped", "POST", "/generate", b'{"prime": "the \\ud800", "unknown": "skip", "length": 5}',
     200, "-"),
    ("surrogate stop", "POST", "/generate", b'{"stop": ["\\ud800"], "length": 5, "seed": 1}', 200, "-"),
    ("surrogate value", "POST", "/generate", b'{"temperature": "\\ud800"}', 422, "temperature"),
    ("empty body /generate", "POST", "/generate", b"", 400, None),
    ("blank body /score", "POST", "/score", b"  \n", 400, None),
    ("score one character", "POST", "/score", b'{"text": "a"}', 422, "text"),
    ("score only unknowns", "POST", "/score", b'{"text": "\\u2603\\u2603\\u2603"}', 422, "text"),
    ("17 stop strings", "POST", "/generate", json.dumps({"stop": [f"s{i}" for i in range(17)]}).encode(), 422, "stop"),
    ("a 300-character stop", "POST", "/generate", json.dumps({"stop": ["x" * 300]}).encode(), 422, "stop"),
    ("prime + length over the limit", "POST", "/generate",
     json.dumps({"prime": "the " * 500, "length": 1500}).encode(), 422, "prime"),
    ("prime + length over the limit, beam", "POST", "/generate",
     json.dumps({"prime": "the " * 500, "length": 1500, "beam": 2}).encode(), 422, "prime"),
    ("unknown path", "GET", "/nope", None, 404, None),
    ("GET /generate", "GET", "/generate", None, 405, None),
    ("DELETE /health", "DELETE", "/health", None, 405, None),
    ("HEAD /", "HEAD", "/", None, 200, "-"),
    ("HEAD /health", "HEAD", "/health", None, 200, "-"),
]


@pytest.mark.parametrize("method,path,body,status,field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_requests_get_json_errors_or_answers_never_a_500(server, method, path, body, status, field):
    code, data = request(server, method, path, body)
    assert code == status, data
    if field == "-":
        return
    assert data.isascii()
    d = json.loads(data)
    if status >= 400:
        assert set(d) == {"error", "field"} and d["field"] == field and d["error"], d
    else:
        assert d["rows"][1]["unknown"] == ["\ud800"] and d["total"]["chars"] > 0


def test_the_server_still_answers_after_the_surrogates(server):
    assert server.get("/health")["status"] == "ok"


@pytest.mark.parametrize("body", [{"beam": 4, "length": 2_000_000, "stop": ["zzzz"]},
                                  {"beam": 4, "length": 2_000_000}, {"num": 4, "length": 2_000_000}],
                         ids=["beam with stop", "beam", "num 4"])
def test_an_abandoned_request_is_cancelled_within_a_second(tiny_run, body):
    s = Server(tiny_run, "--concurrency", "1", "--max-length", "5000000")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("POST", "/generate", body=json.dumps(body), headers={"Content-Type": "application/json"})
        deadline = time.time() + 30
        while s.get("/health")["active"] != 1 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        left = time.time()
        while s.get("/health")["active"] != 0 and time.time() < left + 10:
            time.sleep(0.05)
        took = time.time() - left
        print(f"slot freed {took:.2f} s after the client left")
        assert took < 1.5
    finally:
        s.stop()
