"""HTTP plumbing shared by the service's routes: JSON errors, the body-size guard, parsing.

Why a pure-ASGI body guard: BentoML has no request-size limit, and both Starlette's form parser
and BentoML's API layer read a whole body before anyone can look at it. The guard runs in front
of every route: a declared ``Content-Length`` above the limit is answered 413 without reading a
byte, and a streamed (chunked) body is counted as it arrives and refused the moment it passes
the limit. Bodies within the limit are buffered once and replayed to the route.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import JSONResponse

from vsearch.errors import BadInput, NoSuchCandidate, TooLarge
from vsearch.search.filters import SearchFilter

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class HttpError(Exception):
    """A refusal with its HTTP status; the message is the JSON ``error``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


# HTTP status per refusal type, most specific first; any other BadInput of an upload is a 400.
# A candidate index the photo turned out not to have is a bad field value, like a bad box.
_STATUS_OF: tuple[tuple[type[BadInput], int], ...] = ((TooLarge, 413), (NoSuchCandidate, 422))
_BAD_REQUEST = 400


def status_of(exc: BadInput) -> int:
    """HTTP status of a refused upload: 413 for too many bytes or pixels, 422 for a candidate
    the photo does not have, else 400."""
    return next((status for kind, status in _STATUS_OF if isinstance(exc, kind)), _BAD_REQUEST)


async def reply_json(send: Send, status: int, message: str) -> None:
    """A JSON ``{"error": message}`` answer straight on the ASGI channel (closes the
    connection: the request body may be left unread)."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: refuse request bodies above ``limit_for(path)`` bytes with a JSON 413."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit_for: Callable[[str], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await reply_json(send, 400, f"bad Content-Length header {declared!r}")
                return
            if size > limit:
                await reply_json(
                    send, 413, f"request body of {size} bytes exceeds the limit of {limit} bytes"
                )
                return
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            part = message.get("body", b"")
            total += len(part)
            if total > limit:
                await reply_json(send, 413, f"request body exceeds the limit of {limit} bytes")
                return
            chunks.append(part)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        await self.app(scope, replay, send)


class CleanPath:
    """ASGI middleware: a JSON 400 for a request path with control characters (``%0A``...).

    Why: Starlette's route patterns stop at a line break, so such a path matched no route at
    all and got the server's plain-text 404; no id, photo name or route contains one.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and any(ord(c) < 32 or ord(c) == 127 for c in path):
            await reply_json(send, 400, f"the request path {path!r} has control characters")
            return
        await self.app(scope, receive, send)


class JsonApiGate:
    """ASGI middleware in front of BentoML's JSON APIs: 415 for a POST to ``json_paths`` whose
    body is not ``application/json``; 503 with ``message()`` on ``ready_paths`` while
    ``ready()`` is false.

    Why: BentoML also parses form bodies and turns a malformed one into a 500; and a batchable
    API answers per photo, so with nothing loaded it would say 200 with an error in every slot
    (a load balancer needs the 503).
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        json_paths: frozenset[str],
        ready_paths: frozenset[str],
        ready: Callable[[], bool],
        message: Callable[[], str],
    ):
        self.app = app
        self.json_paths = json_paths
        self.ready_paths = ready_paths
        self.ready = ready
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/")
        if scope["type"] == "http" and scope.get("method") == "POST":
            ctype = dict(scope.get("headers") or []).get(b"content-type", b"application/json")
            if path in self.json_paths and not _is_json(ctype):
                got = ctype.decode("latin-1")
                await reply_json(send, 415, f"POST {path} takes application/json, got {got!r}")
                return
            if path in self.ready_paths and not self.ready():
                await reply_json(send, 503, self.message())
                return
        await self.app(scope, receive, send)


def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";")[0].strip().lower() == b"application/json"


# -- parsing of form fields (each raises HttpError 422 naming the field) ------------------------


def parse_k(raw: Any, default: int) -> int:
    """``k`` from a form field or JSON value (range is checked by the pipeline)."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise HttpError(422, f"k must be an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        raise HttpError(422, f"k must be an integer, got {raw!r}") from None


def parse_candidate(raw: Any) -> int | None:
    """``candidate``: an index into a response's ``candidates`` (range checked by the pipeline)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise HttpError(422, f"candidate must be an integer, got {raw!r}")
    try:
        return int(raw) if isinstance(raw, int) else int(raw.strip())
    except ValueError:
        raise HttpError(422, f"candidate must be an integer, got {raw!r}") from None


def parse_box(raw: Any) -> list[float] | None:
    """A box as ``"x0,y0,x1,y1"`` or a JSON list of 4 numbers (normalised; checked later)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value: Any = raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.split(",")
        except json.JSONDecodeError:
            raise HttpError(422, f"box must be 'x0,y0,x1,y1' or a JSON list, got {raw!r}") from None
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise HttpError(422, f"box must have 4 numbers x0,y0,x1,y1 in [0, 1], got {raw!r}")
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        raise HttpError(
            422, f"box must have 4 numbers x0,y0,x1,y1 in [0, 1], got {raw!r}"
        ) from None
    if not all(math.isfinite(v) for v in box):
        raise HttpError(422, f"box must be finite numbers, got {raw!r}")
    return box


def parse_float(raw: Any, name: str, lo: float, hi: float, default: float | None = None) -> float:
    """A number field within ``[lo, hi]`` (``default`` when absent; else required)."""
    if raw is None or raw == "":
        if default is None:
            raise HttpError(422, f"{name} is required")
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise HttpError(422, f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise HttpError(422, f"{name} must be in [{lo}, {hi}], got {raw!r}")
    return value


def parse_text(raw: Any, name: str, max_len: int, required: bool = True) -> str | None:
    """A short single-line text field (no control characters)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise HttpError(422, f"{name} is required")
        return None
    if not isinstance(raw, str):
        raise HttpError(422, f"{name} must be text")
    text = raw.strip()
    if len(text) > max_len or any(ord(c) < 32 for c in text):
        raise HttpError(422, f"{name} must be at most {max_len} printable characters")
    return text


def parse_categories(values: list[Any], max_len: int) -> str | list[str] | None:
    """``category`` given once (a chosen category), several times (search those instead of
    routing) or not at all (``None``)."""
    names = [parse_text(v, "category", max_len, required=False) for v in values]
    kept = [n for n in names if n]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else list(dict.fromkeys(kept))


def parse_filter(
    price_min: Any, price_max: Any, sellers: list[Any], in_stock: Any, max_len: int
) -> SearchFilter | None:
    """The search filter of a form or JSON body (HttpError 422 naming a bad field)."""
    names = [parse_text(v, "seller", max_len, required=False) for v in sellers]
    try:
        return SearchFilter.parse(price_min, price_max, [n for n in names if n], in_stock)
    except BadInput as exc:
        raise HttpError(422, str(exc)) from None


# -- security headers on every answer -----------------------------------------------------------

# The web page (static/index.html + app.js + style.css) loads only its own script and style,
# shows photos from this origin and the user's own photo as a blob: URL, and fetches only this
# origin; no inline script, no eval, no frames.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """ASGI middleware: the headers of :data:`SECURITY_HEADERS` on every HTTP answer (page,
    photos, JSON, BentoML's own endpoints), unless a route set them itself.

    Why on every answer and not only the page: a JSON error or a photo opened directly in a
    browser is a document too (no MIME sniffing into HTML, no framing, no referrer leak).
    """

    def __init__(self, app: Callable[..., Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                have = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
