"""Checking a prediction's `webhook` URL when the prediction is created.

Only the URL's shape is checked here (http or https, a host, a valid port); whether its host may be reached
is decided by the webhook dispatcher before each attempt, after resolving it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from services.gateway.errors import ApiError

MAX_URL_LENGTH = 2048


def webhook_url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook, or None when it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises on a bad one
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "must have a host"
    return None


def validate_webhook_url(url: str | None) -> None:
    """Raise Replicate's 422 when the `webhook` field of a prediction request is not a usable URL."""
    if url is None:
        return
    problem = webhook_url_problem(url)
    if problem is None:
        return
    description = f"webhook: {problem}"
    raise ApiError(
        422,
        "Input validation failed",
        f"- {description}\n",
        invalid_fields=[{"type": "invalid_webhook", "field": "webhook", "description": description}],
    )
