"""Model readmes as HTML: CommonMark with raw HTML disabled and only http(s)/mailto/relative links."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

_SAFE_SCHEMES = ("http:", "https:", "mailto:", "#", "/")


def _validate_link(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(_SAFE_SCHEMES) or ":" not in lowered.split("/", 1)[0]


_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_renderer.validateLink = _validate_link  # type: ignore[method-assign]  # markdown-it's documented per-instance hook


def render_markdown(text: str) -> Markup:
    """HTML for `text`; any HTML inside it is shown as text, never interpreted."""
    return Markup(_renderer.render(text))
