"""Request limits applied before any route runs: path sanity, JSON body size and shape, and body read timeouts.

An ASGI middleware rather than route code, so that every route is covered and a body is refused while it
streams in (a 300 MB body is cut at the limit, never buffered whole). A JSON body is read (bounded), checked
for what the rest of the platform cannot store or carry, and then handed to the route unchanged:

- larger than `max_json_body_bytes` → 413;
- not valid JSON, or nested deeper than `MAX_JSON_DEPTH` → 400 / 422;
- NaN, Infinity or a number too large for a double, a NUL character or a lone surrogate in any string →
  422 (PostgreSQL's jsonb and protobuf refuse them, which used to surface as 5xx);
- a prediction's `input` larger than `max_input_bytes` → 413 (it travels in NATS messages, whose payloads
  are bounded).

Uploads that stream (`POST /v1/files`, model pushes) keep their own byte limits; every body, theirs too,
must keep arriving: a read that waits longer than `body_read_timeout` seconds is answered with 408.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from services.gateway.errors import PROBLEM_JSON

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_DEPTH = 64
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "QUERY", "DELETE"})
# Routes whose bodies are streamed to disk or the object store under their own limits.
_STREAMED_UPLOADS = re.compile(r"^/v1/files/?$|^/v1/models/[^/]+/[^/]+/versions/?$")
_PREDICTION_CREATION = re.compile(r"^/v1/(?:predictions|(?:models|deployments)/[^/]+/[^/]+/predictions)/?$")


@dataclass(frozen=True)
class RequestLimits:
    max_json_body_bytes: int = 1024 * 1024
    max_input_bytes: int = 512 * 1024
    body_read_timeout: float = 30.0


class RequestRefused(Exception):
    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, limits: RequestLimits | None = None) -> None:
        self.app = app
        self.limits = limits or RequestLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            _check_path(scope)
            if scope["method"] in _BODY_METHODS and not _STREAMED_UPLOADS.match(scope["path"]):
                receive = await self._checked_json_body(scope, receive)
        except RequestRefused as refused:
            await _answer(send, refused)
            return
        guard = _StalledBodyGuard(receive, send, self.limits.body_read_timeout)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if not guard.answered:
                raise
            # The route failed on the body cut short; the client already has its 408.

    async def _checked_json_body(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.limits.max_json_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if declared.isdigit():
                raise _too_large(limit)
            raise RequestRefused(400, "Bad request", "Invalid Content-Length header")
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.limits.body_read_timeout)
            except TimeoutError:
                raise RequestRefused(
                    408, "Request timeout",
                    f"The request body did not arrive within {self.limits.body_read_timeout:g} seconds",
                ) from None
            if message["type"] == "http.disconnect":
                raise RequestRefused(400, "Bad request", "The client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if body.strip() and (content_type in ("", "application/json") or content_type.endswith("+json")):
            # Without a Content-Type a body that is not JSON is left to the route (which may take plain text).
            parsed = _parse_json(body, declared=content_type != "")
            if _PREDICTION_CREATION.match(scope["path"]) and isinstance(parsed, dict) and "input" in parsed:
                input_size = len(body) if len(body) <= self.limits.max_input_bytes else _encoded_size(parsed["input"])
                if input_size > self.limits.max_input_bytes:
                    raise RequestRefused(
                        413, "Payload too large",
                        f"The prediction's input is {input_size} bytes; at most {self.limits.max_input_bytes} bytes "
                        "are accepted. Upload large files with POST /v1/files and pass their URLs instead.",
                    )
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


class _StalledBodyGuard:
    """Answers 408 when a streamed body stops arriving, and ends the body for the route reading it."""

    def __init__(self, receive: Receive, send: Send, timeout: float) -> None:
        self._receive, self._send, self._timeout = receive, send, timeout
        self.started = self.answered = self.body_done = False

    async def receive(self) -> Message:
        if self.body_done:
            # Waiting for a disconnect (a streamed response listens for it) is not a stalled body.
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), self._timeout)
            if message["type"] != "http.request" or not message.get("more_body", False):
                self.body_done = True
            return message
        except TimeoutError:
            if not self.started and not self.answered:
                self.answered = True
                await _answer(self._send, RequestRefused(
                    408, "Request timeout", f"The request body stopped arriving for {self._timeout:g} seconds"))
            return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _too_large(limit: int) -> RequestRefused:
    return RequestRefused(413, "Payload too large", f"The request body is larger than the limit of {limit} bytes")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _check_path(scope: Scope) -> None:
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    decoded = unquote_to_bytes(raw.split(b"?", 1)[0])
    if b"\x00" in decoded or "\x00" in scope.get("path", ""):
        raise RequestRefused(400, "Bad request", "The request path contains a NUL character")
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRefused(400, "Bad request", "The request path is not valid UTF-8") from None
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        raise RequestRefused(400, "Bad request", "The query string contains a NUL character")


def _reject_constant(name: str) -> Any:
    raise RequestRefused(422, "Input validation failed", f"{name} is not a valid JSON number")


def _parse_json(body: bytes, *, declared: bool = True) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        if not declared:
            return None
        raise RequestRefused(400, "Bad request", "Request body is not valid UTF-8") from None
    if _nesting_depth(text) > MAX_JSON_DEPTH:
        raise RequestRefused(422, "Input validation failed", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestRefused(422, "Input validation failed", "JSON nested too deeply") from None
    except ValueError:
        if not declared:
            return None
        raise RequestRefused(400, "Bad request", "Request body is not valid JSON") from None
    _check_values(value)
    return value


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside strings; cheap, and bounds the parser's recursion before it starts."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _check_values(value: Any) -> None:
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                _check_string(key, where or "body")
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str):
            _check_string(item, where or "body")
        elif isinstance(item, float) and not math.isfinite(item):
            raise RequestRefused(
                422, "Input validation failed", f"{where or 'body'}: number out of range",
                invalid_fields=[{"type": "number_out_of_range", "field": where, "description": "number out of range"}],
            )


def _check_string(text: str, where: str) -> None:
    if "\x00" in text:
        raise RequestRefused(
            422, "Input validation failed", f"{where}: strings may not contain the NUL character (\\u0000)",
            invalid_fields=[{"type": "invalid_string", "field": where, "description": "contains \\u0000"}],
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestRefused(
            422, "Input validation failed", f"{where}: strings may not contain unpaired surrogates",
            invalid_fields=[{"type": "invalid_string", "field": where, "description": "unpaired surrogate"}],
        ) from None


def _encoded_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


async def _answer(send: Send, refused: RequestRefused) -> None:
    body = json.dumps(
        {"title": refused.title, "detail": refused.detail, "status": refused.status, **refused.extra}
    ).encode()
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    if refused.status in (408, 413) or refused.status == 400:
        # The rest of the body is not read: the connection cannot be reused.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
