"""What a running prediction streams to Server-Sent Events clients, on JetStream `stream.prediction.<id>`.

Each message is one SSE event: ``{"event": "output" | "logs" | "error" | "done", "data": ...}``. Output
items go out one by one (the file references in them already uploaded); log text is coalesced into chunks.
``Nats-Msg-Id`` is ``<prediction id>:<n>``, so a re-publish after a reconnect is dropped by JetStream.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from libs.blobs import spill_large_fields
from libs.bus.subjects import STREAM_SPILL_BUCKET, prediction_stream
from libs.predictions import PredictionStatus

log = logging.getLogger(__name__)

LOG_CHUNK_BYTES = 16 * 1024


class Publisher(Protocol):
    async def publish(self, subject: str, data: bytes, *, msg_id: str, headers: dict[str, str] | None = None) -> None:
        ...


class PredictionStream:
    """Publishes one prediction's SSE events in order; logs beyond ``max_log_bytes`` are left out."""

    def __init__(self, bus: Publisher, prediction_id: str, *, max_log_bytes: int) -> None:
        self._bus, self._id = bus, prediction_id
        self._subject = prediction_stream(prediction_id)
        self._seq = 0
        self._pending_logs: list[str] = []
        self._pending_size = 0
        self._log_budget = max_log_bytes
        self._logs_cut = False
        self.failed = False

    async def output(self, item: Any) -> None:
        await self.flush_logs()
        await self._send("output", item)

    async def logs(self, text: str) -> None:
        if self._logs_cut:
            return
        size = len(text.encode())
        if size > self._log_budget:
            self._logs_cut = True
            self._pending_logs.append(
                "... [further logs are not streamed; the prediction's logs keep the latest] ...\n"
            )
        else:
            self._log_budget -= size
            self._pending_logs.append(text)
            self._pending_size += size
        if self._pending_size >= LOG_CHUNK_BYTES or self._logs_cut:
            await self.flush_logs()

    async def flush_logs(self) -> None:
        if not self._pending_logs:
            return
        text = "".join(self._pending_logs)
        self._pending_logs, self._pending_size = [], 0
        await self._send("logs", text.removesuffix("\n"))

    async def close(self, status: str, error: str | None) -> None:
        """The last events: ``error`` (for a failure), then ``done`` with Replicate's reason."""
        await self.flush_logs()
        if status == PredictionStatus.FAILED:
            await self._send("error", {"detail": error or "Prediction failed"})
            await self._send("done", {"reason": "error"})
        elif status == PredictionStatus.CANCELED:
            await self._send("done", {"reason": "canceled"})
        else:
            await self._send("done", {})

    async def _send(self, event: str, data: Any) -> None:
        self._seq += 1
        message = {"event": event, "data": data}
        try:
            js = getattr(self._bus, "js", None)
            if js is not None:
                # An item too large for one NATS message is read back by the gateway (libs.blobs.spill).
                message = await spill_large_fields(js, message, key=f"{self._id}/stream-{self._seq}", fields=("data",),
                                                   bucket=STREAM_SPILL_BUCKET)
            body = json.dumps(message, separators=(",", ":")).encode()
            await self._bus.publish(self._subject, body, msg_id=f"{self._id}:{self._seq}")
        except Exception:  # noqa: BLE001 - the stream is a convenience; the prediction itself must go on
            if not self.failed:
                log.warning("streaming of %s failed; the prediction continues", self._id, exc_info=True)
            self.failed = True
