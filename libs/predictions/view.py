"""Rendering a prediction's view as Replicate's JSON (the view is folded by `libs.predictions.fold`).

The gateway's read model and the webhook dispatcher both need the body of `GET /v1/predictions/{id}`;
keeping the fold and the rendering here means a webhook can never disagree with the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs.blobs import absolutize_outputs, has_spilled, restore_spilled_fields
from libs.events import Envelope


def _timestamp(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.isoformat()
    text = str(value)
    return text.replace("+00:00", "Z")


def _seconds_between(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    parse = datetime.fromisoformat
    begin = start if isinstance(start, datetime) else parse(str(start).replace("Z", "+00:00"))
    finish = end if isinstance(end, datetime) else parse(str(end).replace("Z", "+00:00"))
    return max((finish - begin).total_seconds(), 0.0)


def render_prediction(view: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The JSON body of `GET /v1/predictions/{id}` for this view."""
    base = public_url.rstrip("/")
    prediction_id = view["id"]
    metrics: dict[str, float] = {}
    if view.get("predict_time") is not None:
        metrics["predict_time"] = float(view["predict_time"])
    total_time = _seconds_between(view.get("created_at"), view.get("completed_at"))
    if total_time is not None:
        metrics["total_time"] = total_time
    # Beyond Replicate's metrics: how long the prediction waited to start, and how much of that was an
    # instance booting for it (a cold boot).
    queue_time = _seconds_between(view.get("created_at"), view.get("started_at"))
    if queue_time is not None:
        metrics["queue_time"] = queue_time
    if view.get("boot_time") is not None:
        metrics["boot_time"] = float(view["boot_time"])
    body: dict[str, Any] = {
        "id": prediction_id,
        "model": view["model"],
        "version": view["version"],
        "input": view.get("input") or {},
        "output": absolutize_outputs(view.get("output"), base),
        "logs": view.get("logs") or "",
        "error": view.get("error"),
        "status": view["status"],
        "source": view.get("source") or "api",
        "data_removed": bool(view.get("data_removed")),
        "created_at": _timestamp(view.get("created_at")),
        "urls": {
            "get": f"{base}/v1/predictions/{prediction_id}",
            "cancel": f"{base}/v1/predictions/{prediction_id}/cancel",
            "web": f"{base}/p/{prediction_id}",
        },
        "metrics": metrics,
    }
    # Replicate's schema types these as strings, never null: they are absent until they happen.
    for key in ("started_at", "completed_at"):
        if view.get(key) is not None:
            body[key] = _timestamp(view[key])
    if view.get("stream"):
        # Only iterator models stream; clients test for the key, so it is absent (never null) otherwise.
        # The token keeps the stream private to whoever was given this URL (the prediction's id is public in
        # its output URLs); older predictions have none.
        token = view.get("stream_token")
        query = f"?token={token}" if token else ""
        body["urls"]["stream"] = f"{base}/v1/predictions/{prediction_id}/stream{query}"
    if view.get("deployment"):
        # Only predictions created through a deployment have one (`owner/name`).
        body["deployment"] = view["deployment"]
    if view.get("deadline"):
        body["deadline"] = _timestamp(view["deadline"])
    if view.get("webhook"):
        body["webhook"] = view["webhook"]
        body["webhook_events_filter"] = view.get("webhook_events_filter") or [
            "start",
            "output",
            "logs",
            "completed",
        ]
    return body


async def restore_event(js: Any, event: Envelope) -> Envelope:
    """``event`` with the fields it stored by reference (``libs.blobs.spill``) put back, ready to fold."""
    if not has_spilled(event.data):
        return event
    return event.model_copy(update={"data": await restore_spilled_fields(js, event.data)})
