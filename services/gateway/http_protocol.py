"""uvicorn's HTTP/1.1 protocol (httptools, a C parser) with a deadline and a size limit for a request's line
and headers.

uvicorn closes idle keep-alive connections but gives a client forever to finish sending its headers, so a
few thousand connections trickling a header byte at a time (slow loris) hold the gateway's sockets. Here a
connection whose request line and headers are not complete `header_timeout` seconds after it opened (or
after its first byte following the previous response) is closed. httptools itself buffers a header of any
length, so the bytes a request's line and headers may take are bounded here too (`max_header_bytes`, 400 and
close beyond). Body reads are bounded separately (`services/gateway/limits.py`).

httptools rather than h11: parsing is most of what an HTTP request costs a Python server, and the gateway
answers every poll of every client. A request line and headers over the limit are refused either way: parsed
(counted in the parser's callbacks) or still incomplete (counted as the bytes arrive).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        # Bytes received since the current request began without its headers being complete.
        self._header_bytes = 0
        # Bytes of the current request's line and headers that the parser has handed over.
        self._parsed_header_bytes = 0
        self._headers_complete = False
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._between_requests() and self._header_timer is None:
            self._arm_header_timer()
        super().data_received(data)
        if self.parser is None or self.transport.is_closing():
            return
        if not self._headers_complete:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self.send_400_response("Request line and headers too large.")
                return
        if not self._between_requests():
            self._cancel_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_complete = False
        self._header_bytes = 0
        self._parsed_header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._headers_complete = True
        super().on_headers_complete()

    def _count_header_bytes(self, size: int) -> None:
        # Raised inside the parser's callback, this ends the parse: uvicorn answers 400 and closes.
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > self.max_header_bytes:
            raise ValueError("request line and headers too large")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


def with_header_timeout(seconds: float, max_header_bytes: int = 64 * 1024) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's `http=` option, with its header deadline and size limit set."""
    attributes: dict[str, Any] = {"header_timeout": seconds, "max_header_bytes": max_header_bytes}
    return type("GatewayHttpProtocol", (HeaderDeadlineProtocol,), attributes)
