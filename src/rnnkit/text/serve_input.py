"""What a client may send to `rnnkit serve`: the JSON body, the SampleConfig fields of /generate
and the server's limits on them, the fields of /score. Each refusal is an HTTPError that names
the field (serve.py turns it into a 4xx `{"error", "field"}`)."""

import dataclasses
import json
import re

from ..core.config import SampleConfig, ServeConfig, UsageError

NOT_FROM_CLIENTS = ("prime_file", "device", "threads")   # server-side settings a request cannot set
MAX_STOPS, MAX_STOP_CHARS = 16, 256   # each stop string is checked at every character of every sample


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
    if len(s.prime) + s.length > cfg.max_length:
        raise HTTPError(422, f"prime ({len(s.prime):,} characters) and length {s.length:,} are over this server's "
                        f"limit of {cfg.max_length:,} characters together; shorten the prime or lower length", "prime")
    if len(s.stop) > MAX_STOPS or any(len(t) > MAX_STOP_CHARS for t in s.stop):
        raise HTTPError(422, f"stop takes at most {MAX_STOPS} strings of at most {MAX_STOP_CHARS} characters "
                        f"(got {len(s.stop)}, the longest {max(map(len, s.stop))})", "stop")
    for name in ("num", "beam"):
        if (getattr(s, name) or 0) > cfg.max_num:
            raise HTTPError(422, f"{name} {getattr(s, name)} is over this server's limit of {cfg.max_num}", name)
    return dataclasses.replace(s, precision=s.precision if "precision" in body else cfg.precision,
                               threads=cfg.threads)


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
    if not data.strip():
        raise HTTPError(400, 'the body is empty; send a JSON object, e.g. {"prime": "ROMEO:"}')
    try:
        body = json.loads(data)
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
