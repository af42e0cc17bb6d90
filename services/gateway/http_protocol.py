"""uvicorn's HTTP/1.1 protocol with a deadline for a request's line and headers.

uvicorn closes idle keep-alive connections but gives a client forever to finish sending its headers, so a
few thousand connections trickling a header byte at a time (slow loris) hold the gateway's sockets. Here a
connection whose request line and headers are not complete `header_timeout` seconds after it opened (or
after its first byte following the previous response) is closed. Body reads are bounded separately
(`services/gateway/limits.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._between_requests() and self._header_timer is None:
            self._arm_header_timer()
        super().data_received(data)
        if not self._between_requests():
            self._cancel_header_timer()

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


def with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's `http=` option, with its header deadline set."""
    attributes: dict[str, Any] = {"header_timeout": seconds}
    return type("GatewayHttpProtocol", (HeaderDeadlineProtocol,), attributes)
