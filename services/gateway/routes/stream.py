"""`GET /v1/predictions/{id}/stream`: a prediction's output and logs as Server-Sent Events.

Events come from the JetStream stream `stream.prediction.<id>` (written by the runner), replayed from the
start or from the event after `Last-Event-ID`; event ids are JetStream sequence numbers. Event names are
Replicate's: `output` (one item), `logs`, `error` (`{"detail": ...}`), `done` (`{}` or `{"reason": ...}`).
Keep-alives are comment lines. Like Replicate's stream URLs it needs no API token (the JavaScript client
sends none), but it carries its own: `?token=` from `urls.stream`, which only the prediction's readers are
given (its id alone is public in every output URL). A request with an API token that may see the prediction
is served without it.

A prediction that ended without its runner closing the stream (canceled before it ran, or its runner lost)
still ends with `done`, read from the prediction itself.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, DeliverPolicy
from sse_starlette import EventSourceResponse

from libs.blobs import BlobNotFound, absolutize_outputs, restore_spilled_fields
from libs.bus.subjects import PREDICTION_STREAMS, STREAM_SPILL_BUCKET, prediction_stream
from libs.predictions import TERMINAL_STATUSES, PredictionStatus
from libs.rpc import RpcNotFound
from services.gateway.access import can_access
from services.gateway.auth import current_account
from services.gateway.errors import not_found

router = APIRouter(prefix="/v1")

KEEP_ALIVE_SECONDS = 10
POLL_SECONDS = 1.0
# Empty polls after the prediction ended before `done` is taken from the prediction itself.
ENDED_POLLS = 2


async def _view(request: Request, prediction_id: str) -> dict[str, Any] | None:
    deps = request.app.state.deps
    view = await deps.projection.get(prediction_id)
    if view is not None:
        return view
    try:
        return await deps.scheduler.get_prediction(prediction_id)
    except RpcNotFound:
        return None


def _last_event_id(request: Request) -> int:
    value = (request.headers.get("last-event-id") or "").strip()
    return int(value) if value.isdigit() else 0


def _encode(event: str, data: Any, origin: str) -> str:
    if event == "output":
        data = absolutize_outputs(data, origin)
        return data if isinstance(data, str) else json.dumps(data)
    if event == "logs":
        return str(data)
    return json.dumps(data)


def _ending(view: dict[str, Any]) -> list[tuple[str, Any]]:
    status = view["status"]
    if status == PredictionStatus.FAILED:
        return [("error", {"detail": view.get("error") or "Prediction failed"}), ("done", {"reason": "error"})]
    if status == PredictionStatus.CANCELED:
        return [("done", {"reason": "canceled"})]
    return [("done", {})]


async def _may_read(request: Request, view: dict[str, Any], token: str | None) -> bool:
    expected = view.get("stream_token")
    if not expected:
        return True  # created before stream URLs carried tokens
    if token and hmac.compare_digest(token.encode(), str(expected).encode()):
        return True
    if request.headers.get("authorization"):
        account = await current_account(request)
        return can_access(account, str(view.get("account") or ""))
    return False


@router.get("/predictions/{prediction_id}/stream")
async def stream_prediction(
    prediction_id: str, request: Request, token: str | None = Query(None, max_length=200)
) -> EventSourceResponse:
    view = await _view(request, prediction_id)
    # A wrong token is answered like a missing prediction: nothing is revealed about it.
    if view is None or not view.get("stream") or not await _may_read(request, view, token):
        raise not_found()
    deps = request.app.state.deps
    origin = deps.settings.origin
    after = _last_event_id(request)

    async def events() -> AsyncIterator[dict[str, Any]]:
        yield {"comment": "hi"}
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
        )
        subscription = await deps.bus.js.subscribe(
            prediction_stream(prediction_id), stream=PREDICTION_STREAMS.name, ordered_consumer=True,
            config=config,
        )
        last_id, seen_any, ended_polls = after, False, 0
        try:
            while True:
                try:
                    msg = await subscription.next_msg(timeout=POLL_SECONDS)
                except (TimeoutError, NatsTimeoutError):
                    current = await _view(request, prediction_id)
                    if current is None or current["status"] not in TERMINAL_STATUSES:
                        continue
                    ended_polls += 1
                    if ended_polls < ENDED_POLLS:
                        continue
                    if not seen_any and not after and current["status"] == PredictionStatus.SUCCEEDED:
                        # The stream is gone (expired): replay the output from the prediction.
                        for item in current.get("output") or []:
                            yield {"event": "output", "id": str(last_id), "data": _encode("output", item, origin)}
                    for name, data in _ending(current):
                        yield {"event": name, "id": str(last_id), "data": _encode(name, data, origin)}
                    return
                ended_polls = 0
                seen_any = True
                last_id = msg.metadata.sequence.stream
                try:
                    body = await restore_spilled_fields(deps.bus.js, json.loads(msg.data), bucket=STREAM_SPILL_BUCKET)
                    name, data = body["event"], body.get("data")
                except (ValueError, KeyError, TypeError, BlobNotFound):
                    continue
                yield {"event": name, "id": str(last_id), "data": _encode(name, data, origin)}
                if name == "done":
                    return
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    return EventSourceResponse(
        events(), ping=KEEP_ALIVE_SECONDS, sep="\n", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
