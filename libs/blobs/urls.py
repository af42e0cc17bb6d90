"""Output file references: host-free in events, absolute URLs on the way out."""

from __future__ import annotations

from typing import Any

OUTPUT_REF_PREFIX = "cogwheel-output:"


def output_ref(key: str) -> str:
    """What a runner writes into a prediction's output for a file stored under ``key`` in the outputs bucket."""
    return OUTPUT_REF_PREFIX + key


def output_url(key: str, origin: str) -> str:
    return f"{origin.rstrip('/')}/v1/outputs/{key}"


def absolutize_outputs(value: Any, origin: str) -> Any:
    """``value`` with every output reference (at any depth of lists and dicts) replaced by its URL."""
    if isinstance(value, str):
        return output_url(value[len(OUTPUT_REF_PREFIX):], origin) if value.startswith(OUTPUT_REF_PREFIX) else value
    if isinstance(value, list):
        return [absolutize_outputs(item, origin) for item in value]
    if isinstance(value, dict):
        return {key: absolutize_outputs(item, origin) for key, item in value.items()}
    return value
