"""A local HTTP server for a trained character model (FastAPI + uvicorn: pip install 'rnnkit[serve]').

    rnnkit serve runs/shakespeare                 # http://127.0.0.1:8000/
    curl -N localhost:8000/generate -d '{"prime": "ROMEO:", "length": 300, "seed": 1}'

Endpoints:
  POST /generate  SampleConfig fields as JSON; num 1 streams the text (prime first) as it is drawn,
                  num > 1 or beam answers {"samples": [...]} when done
  POST /score     {"text": ..., "segment": N?, "probs": bool?} -> {"rows", "total", "probs"?}
  GET  /health    {"status": "ok", "active", "waiting", "limits", "model"}
  GET  /          a page: prompt, temperature, top-k, top-p, length; the text as it streams, then a
                  strip coloured by each character's probability

Limits (ServeConfig): request body `max_body` bytes, `max_length` characters, `max_num` samples;
`concurrency` requests computed at once, `queue` more waiting, beyond that 503. Bad requests get a
4xx JSON `{"error": ..., "field": ...}`. A client that disconnects mid-stream stops its
generation and frees its slot. The server listens on loopback unless --host says otherwise.
"""

import asyncio
import dataclasses
import ipaddress
import json
import re
import socket
import sys
import threading
from importlib import resources

import torch

from .config import RnnkitError, SampleConfig, ServeConfig, Spelling, UsageError

NOT_FROM_CLIENTS = ("prime_file", "device", "threads")   # server-side settings a request cannot set


class Cancelled(Exception):
    """The client went away: generation stops at the next character."""


class HTTPError(Exception):
    def __init__(self, status: int, error: str, field: str | None = None):
        super().__init__(error)
        self.status, self.error, self.field = status, error, field


FIELDS = set(SampleConfig.__dataclass_fields__)


def field_of(message: str) -> str | None:
    """The first SampleConfig field a UsageError names (`top_p must be ...`, `--top-p ...`)."""
    for word in re.findall(r"(?:--)?([a-z][a-z0-9_-]*)", message):
        if word.replace("-", "_") in FIELDS:
            return word.replace("-", "_")
    return None


def sample_config(body: dict, cfg: ServeConfig) -> SampleConfig:
    """A request's SampleConfig, checked against the server's limits."""
    for k in NOT_FROM_CLIENTS:
        if k in body:
            raise HTTPError(400, f"{k} is a server setting and cannot be sent", k)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise HTTPError(422, f"unknown key(s) {', '.join(unknown)}; allowed: "
                        f"{', '.join(sorted(FIELDS - set(NOT_FROM_CLIENTS)))}", unknown[0])
    try:
        s = SampleConfig.from_dict(body, where="request")
    except UsageError as e:
        raise HTTPError(422, str(e), field_of(str(e))) from None
    if s.length > cfg.max_length:
        raise HTTPError(422, f"length {s.length} is over this server's limit of {cfg.max_length}", "length")
    for name in ("num", "beam"):
        if (getattr(s, name) or 0) > cfg.max_num:
            raise HTTPError(422, f"{name} {getattr(s, name)} is over this server's limit of {cfg.max_num}", name)
    return dataclasses.replace(s, precision=s.precision if "precision" in body else cfg.precision,
                               threads=cfg.threads)


class Slots:
    """At most `concurrency` computations at once and `queue` waiting; the rest are refused."""

    def __init__(self, concurrency: int, queue: int):
        self.sem = asyncio.Semaphore(concurrency)
        self.limit, self.waiting, self.active = queue, 0, 0

    async def acquire(self) -> None:
        if self.sem.locked() and self.waiting >= self.limit:
            raise HTTPError(503, f"server busy: {self.active} running and {self.waiting} waiting; try again")
        self.waiting += 1
        try:
            await self.sem.acquire()
        finally:
            self.waiting -= 1
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        self.sem.release()


def page() -> str:
    return resources.files("rnnkit").joinpath("serve_page.html").read_text(encoding="utf-8")


async def read_json(request, max_body: int) -> dict:
    """The request's JSON object, refused (413) as soon as it grows past `max_body` bytes."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > max_body:
        raise HTTPError(413, f"request body over {max_body} bytes")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > max_body:
            raise HTTPError(413, f"request body over {max_body} bytes")
    try:
        body = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"body is not valid JSON ({e})")
    if not isinstance(body, dict):
        raise HTTPError(400, "body must be a JSON object")
    return body


def score_request(body: dict) -> tuple[str, int | None, bool]:
    """(text, segment, probs) of a /score body, each checked."""
    unknown = sorted(set(body) - {"text", "segment", "probs"})
    if unknown:
        raise HTTPError(422, f"unknown key(s) {', '.join(unknown)}; allowed: probs, segment, text", unknown[0])
    text, segment, probs = body.get("text"), body.get("segment"), body.get("probs", False)
    if not isinstance(text, str):
        raise HTTPError(422, "text must be a string", "text")
    if segment is not None and (not isinstance(segment, int) or isinstance(segment, bool) or segment < 1):
        raise HTTPError(422, "segment must be a whole number >= 1", "segment")
    if not isinstance(probs, bool):
        raise HTTPError(422, "probs must be true or false", "probs")
    return text, segment, probs


class LiveText:
    """Text drawn in a worker thread, handed to the event loop piece by piece.

    The thread calls `on_text` per piece and `done(err)` at its end; `chunks()` yields what has
    piled up at once, ends with an error line if the thread failed, and on any end (also a client
    that went away) sets `stop`, so the thread's next `on_text` raises Cancelled, and calls `release`."""

    def __init__(self, release):
        self.loop, self.pieces, self.stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        self.release = release

    def on_text(self, i: int, piece: str) -> None:
        if self.stop.is_set():
            raise Cancelled()
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, piece)

    def done(self, err) -> None:
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, err if err is not None else StopIteration)

    def _joined(self, item):
        while not self.pieces.empty() and isinstance(item, str):
            nxt = self.pieces.get_nowait()
            if not isinstance(nxt, str):
                self.pieces.put_nowait(nxt)
                break
            item += nxt
        return item

    async def chunks(self):
        try:
            while True:
                item = self._joined(await self.pieces.get())
                if item is StopIteration:
                    return
                if isinstance(item, Exception):
                    yield f"\n[error: {item}]"
                    return
                yield item
        finally:
            self.stop.set()
            self.release()


def run_in_thread(fn, on_done) -> None:
    """fn() under inference_mode in a daemon thread; on_done(None or the exception) at its end."""
    def work():
        try:
            with torch.inference_mode():
                fn()
        except Cancelled:
            pass
        except Exception as e:   # reported to the client as the stream's end
            on_done(e)
            return
        on_done(None)
    threading.Thread(target=work, daemon=True).start()


def make_app(model, vocab, meta: dict, cfg: ServeConfig):
    """The FastAPI app serving `model` (shared read-only by the worker threads)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

    from .sample import generate, prime_symbols
    from .score import score_text

    app = FastAPI(title="rnnkit", docs_url=None, redoc_url=None, openapi_url=None)
    slots = Slots(cfg.concurrency, cfg.queue)
    info = {"cell": model.config.cell, "layers": model.config.layers, "hidden": model.config.hidden,
            "vocab": len(vocab), "encoding": vocab.kind}
    limits = {k: getattr(cfg, k) for k in ("max_length", "max_num", "max_body", "concurrency", "queue")}

    async def in_slot(fn):
        await slots.acquire()
        try:
            return await asyncio.to_thread(fn)
        finally:
            slots.release()

    @app.exception_handler(HTTPError)
    async def http_error(request, e: HTTPError):
        return JSONResponse({"error": e.error, "field": e.field}, status_code=e.status)

    @app.get("/health")
    async def health():
        return {"status": "ok", "active": slots.active, "waiting": slots.waiting, "limits": limits, "model": info}

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page()

    @app.post("/generate")
    async def generate_route(request: Request):
        s = sample_config(await read_json(request, cfg.max_body), cfg)
        if s.num > 1 or s.beam:
            try:
                return {"samples": await in_slot(lambda: generate(model, vocab, s))}
            except RnnkitError as e:
                raise HTTPError(422, str(e), field_of(str(e)))
        try:   # check the prime before the stream starts: an error is still a 4xx
            vocab.encode(prime_symbols(vocab, s.prime), unknown=s.unknown)
        except UsageError as e:
            raise HTTPError(422, str(e), "prime")
        await slots.acquire()
        out = LiveText(slots.release)
        run_in_thread(lambda: generate(model, vocab, s, on_text=out.on_text), out.done)
        return StreamingResponse(out.chunks(), media_type="text/plain; charset=utf-8",
                                 headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @app.post("/score")
    async def score_route(request: Request):
        text, segment, probs = score_request(await read_json(request, cfg.max_body))
        symbols = prime_symbols(vocab, text)
        res = await in_slot(lambda: score_text(model, vocab, symbols, segment, probs=probs))
        out = {"rows": res.rows, "total": res.total}
        if probs:
            out["probs"] = res.probs
        return out

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(run_dir: str, cfg: ServeConfig) -> None:
    """Load the run and serve it until interrupted. Prints the address once listening."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise RnnkitError("rnnkit serve needs FastAPI and uvicorn: pip install 'rnnkit[serve]'") from None
    from .checkpoint import load_model
    from .distributed import pick_device
    from .step import check_precision
    device = pick_device(cfg.device)
    if cfg.precision not in ("auto", "fp32"):
        check_precision(cfg.precision, device)
    model, vocab, meta = load_model(run_dir, device, warn=lambda m: print(f"rnnkit: warning: {m}", file=sys.stderr))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
        sock.listen(2048)   # listening before the address is printed: clients may connect at once
    except OSError as e:
        raise RnnkitError(f"cannot listen on {cfg.host}:{cfg.port} ({e.strerror or e}); pick another --port")
    port = sock.getsockname()[1]
    shown = f"[{cfg.host}]" if family == socket.AF_INET6 else cfg.host
    if not is_loopback(cfg.host):
        print(f"rnnkit: warning: listening on {cfg.host}, which other machines can reach; the server "
              "has no authentication", file=sys.stderr, flush=True)
    print(f"rnnkit: serving {run_dir} on http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    app = make_app(model, vocab, meta, cfg)
    Spelling.flags = False   # requests are JSON: errors name fields (top_p), not flags (--top-p)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
