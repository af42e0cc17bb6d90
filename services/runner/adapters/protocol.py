"""Messages between the runner and its model worker process, one JSON object per line."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

# The terminal statuses of `libs.predictions.PredictionStatus`, spelled out here because this module is also
# imported inside the model's own environment, which has none of the services' packages.
PredictionStatus = Literal["succeeded", "failed", "canceled"]

# Marks a file in an output value: {FILE_KEY: "/absolute/path"}.
FILE_KEY = "$cogwheel_file"


@dataclass(frozen=True)
class Setup:
    """Parent → child: load the predictor (weights as cog passes them: a plain string or None).

    ``concurrency`` is cog.yaml's ``concurrency.max``; above 1 it needs an async predictor, as in Cog.
    """

    weights: str | None = None
    concurrency: int = 1


@dataclass(frozen=True)
class Ready:
    """Child → parent: setup() finished.

    ``file_inputs`` names the inputs typed ``Path``/``File`` (alone or in a list): the parent resolves their
    URLs to local files. ``slots`` is how many predictions the worker runs at once (``concurrency.max`` for an
    async predictor, else 1).
    """

    setup_time: float = 0.0
    file_inputs: list[str] = field(default_factory=list)
    slots: int = 1


@dataclass(frozen=True)
class SetupFailed:
    """Child → parent: importing or setting up the predictor raised; the child exits next."""

    error: str


@dataclass(frozen=True)
class PredictRequest:
    """Parent → child: run one prediction."""

    id: str
    input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Log:
    """Child → parent: text written by user code; ``id`` is None during setup."""

    id: str | None
    text: str


@dataclass(frozen=True)
class Output:
    """Child → parent: a JSON-ready output; ``item`` marks one element of an iterator output.

    Files in ``value`` (at any depth) are ``{FILE_KEY: "/absolute/path"}``; the parent uploads them.
    """

    id: str
    value: Any
    item: bool = False


@dataclass(frozen=True)
class Done:
    """Child → parent: the prediction ended; ``predict_time`` covers only the user's predict()."""

    id: str
    status: PredictionStatus
    error: str | None = None
    predict_time: float = 0.0


@dataclass(frozen=True)
class Stats:
    """Child → parent: resource use, sent after setup and after each prediction (GPU only with torch + CUDA)."""

    gpu_memory_allocated: int | None = None
    gpu_memory_reserved: int | None = None
    gpu_max_memory_allocated: int | None = None
    gpu_device: str | None = None


@dataclass(frozen=True)
class Cancel:
    """Parent → child: stop the prediction ``id`` if it is still running."""

    id: str


@dataclass(frozen=True)
class Shutdown:
    """Parent → child: exit after the current prediction."""


Message = Setup | Ready | SetupFailed | PredictRequest | Log | Output | Done | Stats | Cancel | Shutdown

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (Setup, Ready, SetupFailed, PredictRequest, Log, Output, Done, Stats, Cancel, Shutdown)
}


STDERR_MARKER = b"\x00cogwheel-done "


def stderr_marker(prediction_id: str) -> bytes:
    """Written to the worker's fd 2 right before Done: what came before it on fd 1/2 belongs to the prediction."""
    return STDERR_MARKER + prediction_id.encode() + b"\n"


class ProtocolError(ValueError):
    """A line that is not a known message."""


def encode(message: Message) -> bytes:
    """One newline-terminated JSON line; ``value`` fields must already be JSON-ready."""
    # Fields are flat and JSON-ready: a shallow copy avoids asdict()'s deep copy of large outputs.
    body = {"type": type(message).__name__, **{f.name: getattr(message, f.name) for f in dataclasses.fields(message)}}
    try:
        # Outputs such as embeddings are tens of thousands of floats; orjson encodes them ~10x faster.
        return orjson.dumps(body) + b"\n"
    except (orjson.JSONEncodeError, TypeError):
        # What orjson refuses (integers beyond 64 bits, non-string keys) the standard encoder still writes.
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _loads(line: bytes | str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)  # NaN and Infinity, which only the standard decoder reads


def decode(line: bytes | str) -> Message:
    """Parse one line produced by :func:`encode`."""
    try:
        body = _loads(line)
        cls = _TYPES[body.pop("type")]
        message: Message = cls(**body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"bad worker message {line[:200]!r}: {exc}") from None
    return message
