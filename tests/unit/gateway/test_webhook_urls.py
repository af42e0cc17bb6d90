"""Which `webhook` URLs a prediction request may carry."""

import pytest

from services.gateway.errors import ApiError
from services.gateway.webhook_urls import validate_webhook_url, webhook_url_problem


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://127.0.0.1:8080/hook?customId=123",
        "https://[2001:db8::1]:8443/x",
        "http://localhost/hook",
    ],
)
def test_usable_urls(url: str) -> None:
    assert webhook_url_problem(url) is None
    validate_webhook_url(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/hook", "http or https"),
        ("example.com/hook", "http or https"),
        ("not a url", "whitespace"),
        ("http://", "must have a host"),
        ("https:///path", "must have a host"),
        ("https://[::1/hook", "not a valid URL"),
        ("http://host:99999/", "not a valid URL"),
        ("http://host/\x00", "control"),
        ("https://example.com/" + "a" * 3000, "at most"),
    ],
)
def test_unusable_urls_are_a_422(url: str, problem: str) -> None:
    assert problem in (webhook_url_problem(url) or "")
    with pytest.raises(ApiError) as raised:
        validate_webhook_url(url)
    assert raised.value.status == 422
    assert raised.value.extra["invalid_fields"][0]["field"] == "webhook"


def test_no_webhook_is_fine() -> None:
    validate_webhook_url(None)
