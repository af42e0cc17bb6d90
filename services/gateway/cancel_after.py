"""The `Cancel-After` request header: a duration such as `30s`, `5m`, `1h30m45s` or `90` (seconds)."""

from __future__ import annotations

import re

from services.gateway.errors import ApiError

MINIMUM_SECONDS = 5.0
# A deadline must stay a representable date; a year is far beyond any prediction's life.
MAXIMUM_SECONDS = 366 * 24 * 3600.0
_BARE = re.compile(r"^\d+(?:\.\d+)?$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_cancel_after(header: str | None) -> float | None:
    """Seconds from creation until the prediction is canceled, or None without the header.

    Raises ApiError (400) for a malformed duration and (422) for one shorter than five seconds.
    """
    if header is None:
        return None
    value = header.strip().lower()
    if len(value) > 64:
        raise ApiError(
            400, "Bad request", "Invalid Cancel-After header: too long; use a duration like 30s, 5m or 1h30m"
        )
    if _BARE.match(value):
        seconds = float(value)
    else:
        parts = _PART.findall(value)
        if not value or not parts or "".join(number + unit for number, unit in parts) != value:
            raise ApiError(
                400, "Bad request", f"Invalid Cancel-After header {header[:40]!r}: use a duration like 30s, 5m or 1h30m"
            )
        seconds = sum(float(number) * _UNIT[unit] for number, unit in parts)
    if seconds < MINIMUM_SECONDS:
        raise ApiError(422, "Invalid Cancel-After", f"Cancel-After must be at least {MINIMUM_SECONDS:g}s")
    if seconds > MAXIMUM_SECONDS:
        raise ApiError(422, "Invalid Cancel-After", "Cancel-After must be at most 366 days")
    return seconds
