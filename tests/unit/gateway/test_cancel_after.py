"""The Cancel-After header."""

import pytest

from services.gateway.cancel_after import parse_cancel_after
from services.gateway.errors import ApiError


@pytest.mark.parametrize(("header", "seconds"), [
    (None, None), ("30s", 30), ("5m", 300), ("1h30m45s", 5445), ("90", 90), (" 2M ", 120), ("7.5s", 7.5),
])
def test_durations(header: str | None, seconds: float | None) -> None:
    assert parse_cancel_after(header) == seconds


@pytest.mark.parametrize(("header", "status"), [("soon", 400), ("5x", 400), ("", 400), ("m5", 400), ("4s", 422)])
def test_refused(header: str, status: int) -> None:
    with pytest.raises(ApiError) as info:
        parse_cancel_after(header)
    assert info.value.status == status
