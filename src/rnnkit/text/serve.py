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

Limits (ServeConfig): request body `max_body` bytes, `max_length` characters (prompt and
continuation together), `max_num` samples, MAX_STOPS stop strings of at most MAX_STOP_CHARS;
`concurrency` requests computed at once, `queue` more waiting, beyond that 503. Bad requests (and
unknown paths or methods) get a 4xx JSON `{"error": ..., "field": ...}`, always ASCII: a lone
surrogate in a key or a text is escaped, never a 500. A client that disconnects stops its
generation (streamed or not) within a step and frees its slot. The server listens on loopback
unless --host says otherwise.
"""

import asyncio
import ipaddress
import json
import socket
import sys
import threading
from importlib import resources

import torch

from ..core.config import RnnkitError, ServeConfig, Spelling, UsageError
from .serve_input import HTTPError, field_of, read_json, sample_config, score_request

POLL_S = 0.2   # how often a computation that does not stream asks whether its client left


class Cancelled(Exception):
    """The client went away: generation stops at the next character."""


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
    return resources.files("rnnkit.text").joinpath("serve_page.html").read_text(encoding="utf-8")


class LiveText:
    """Text drawn in a worker thread, handed to the event loop piece by piece.

    The thread calls `on_text` per piece and `done(err)` at its end; `chunks()` yields what has
    piled up at once, ends with an error line if the thread failed, and on any end (also a client
    that went away) sets `stop`, so the thread's next `on_text` raises Cancelled, and calls `release`."""

    def __init__(self, release):
        self.loop, self.pieces, self.stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        self.release = release

    def check(self) -> None:
        if self.stop.is_set():
            raise Cancelled()

    def on_text(self, i: int, piece: str) -> None:
        self.check()
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
                    yield f"\n[error: {item}]".encode("utf-8", "backslashreplace")
                    return
                yield item.encode("utf-8", "replace")   # a lone surrogate cannot reach the encoder
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


def ascii_json():
    """A JSONResponse whose body is ASCII JSON: a lone surrogate (in a key, an error, an unknown
    character) is written as \\udXXX, where the UTF-8 encoder would raise (a 500: issue 26)."""
    from fastapi.responses import JSONResponse

    class AsciiJSON(JSONResponse):
        def render(self, content) -> bytes:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
    return AsciiJSON


async def until_done_or_gone(request, fn):
    """fn(check) in a worker thread; if the client disconnects meanwhile, check() raises Cancelled
    at the next step and the thread ends before this returns and the slot is freed."""
    stop = threading.Event()

    def check():
        if stop.is_set():
            raise Cancelled()
    task = asyncio.ensure_future(asyncio.to_thread(torch.inference_mode()(fn), check))
    while not (await asyncio.wait({task}, timeout=POLL_S))[0]:
        if await request.is_disconnected():
            stop.set()
    try:
        return task.result()
    except Cancelled:
        raise HTTPError(499, "the client went away") from None


def add_error_handlers(app, JSON) -> None:
    """Every error is `{"error", "field"}`: rnnkit's own and Starlette's 404 / 405 alike."""
    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPError)
    async def http_error(request, e: HTTPError):
        return JSON({"error": e.error, "field": e.field}, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def starlette_error(request, e: HTTPException):
        allowed = f"; allowed: {e.headers['Allow']}" if e.headers and "Allow" in e.headers else ""
        return JSON({"error": f"{request.method} {request.url.path}: {str(e.detail).lower()}{allowed}", "field": None},
                    status_code=e.status_code, headers=e.headers)


def score_reply(res, probs: bool) -> dict:
    if res.total["chars"] == 0:      # as `rnnkit score`, which exits 2
        raise HTTPError(422, "text needs at least 2 characters in the model's vocabulary to score", "text")
    return {"rows": res.rows, "total": res.total, **({"probs": res.probs} if probs else {})}


def make_app(model, vocab, meta: dict, cfg: ServeConfig):
    """The FastAPI app serving `model` (shared read-only by the worker threads)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, StreamingResponse

    from .sample import generate, prime_symbols
    from .score import score_text

    JSON = ascii_json()
    app = FastAPI(title="rnnkit", docs_url=None, redoc_url=None, openapi_url=None, default_response_class=JSON)
    slots = Slots(cfg.concurrency, cfg.queue)
    info = {"cell": model.config.cell, "layers": model.config.layers, "hidden": model.config.hidden,
            "vocab": len(vocab), "encoding": vocab.kind}
    limits = {k: getattr(cfg, k) for k in ("max_length", "max_num", "max_body", "concurrency", "queue")}
    add_error_handlers(app, JSON)

    async def in_slot(request, fn):
        await slots.acquire()
        try:
            return await until_done_or_gone(request, fn)
        finally:
            slots.release()

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health():
        return {"status": "ok", "active": slots.active, "waiting": slots.waiting, "limits": limits, "model": info}

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def index():
        return page()

    @app.post("/generate")
    async def generate_route(request: Request):
        s = sample_config(await read_json(request, cfg.max_body), cfg)
        try:   # check the prime before any work (and before a stream starts): an error is still a 4xx
            vocab.encode(prime_symbols(vocab, s.prime), unknown=s.unknown)
        except UsageError as e:
            raise HTTPError(422, str(e), "prime")
        if s.num > 1 or s.beam:
            try:
                return {"samples": await in_slot(request, lambda check: generate(model, vocab, s, check=check))}
            except RnnkitError as e:
                raise HTTPError(422, str(e), field_of(str(e)))
        await slots.acquire()
        out = LiveText(slots.release)
        run_in_thread(lambda: generate(model, vocab, s, on_text=out.on_text, check=out.check), out.done)
        return StreamingResponse(out.chunks(), media_type="text/plain; charset=utf-8",
                                 headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @app.post("/score")
    async def score_route(request: Request):
        text, segment, probs = score_request(await read_json(request, cfg.max_body))
        symbols = prime_symbols(vocab, text)
        scored = await in_slot(request, lambda check: score_text(model, vocab, symbols, segment, probs=probs))
        return score_reply(scored, probs)

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
    from ..core.checkpoint import load_model
    from ..core.distributed import pick_device
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
