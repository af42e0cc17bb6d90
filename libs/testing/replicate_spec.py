"""Checking response bodies against Replicate's own OpenAPI document (``shared/replicate-openapi.json``).

The document says ``openapi: 3.1.0`` yet marks optional values with the 3.0 keyword ``nullable``, which a
3.1 validator ignores; ``load_spec`` rewrites ``nullable: true`` into the 3.1 spelling (``type: [T, "null"]``)
so the document means what its authors meant. Needs the test extra (``openapi-core``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SPEC_HOST = "https://api.replicate.com"


def spec_path(repo_root: Path) -> Path:
    """Where CI keeps the shared reference material: beside the clone (COGWHEEL_REPLICATE_OPENAPI overrides it)."""
    override = os.environ.get("COGWHEEL_REPLICATE_OPENAPI")
    return Path(override) if override else repo_root.parent / "shared" / "replicate-openapi.json"


def _rewrite_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_rewrite_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: _rewrite_nullable(value) for key, value in node.items()}
    if rewritten.pop("nullable", False) is True:
        kind = rewritten.get("type")
        if isinstance(kind, str):
            rewritten["type"] = [kind, "null"]
        elif "enum" in rewritten:
            rewritten["enum"] = [*rewritten["enum"], None]
    return rewritten


def load_spec(path: Path) -> dict[str, Any]:
    return _rewrite_nullable(json.loads(path.read_text()))


class SpecChecker:
    """Validates one HTTP exchange at a time against the spec; remembers what it checked."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from openapi_core import Config, OpenAPI

        # The meta-schema of OpenAPI 3.1 has no `query` operation (3.2 added it), and Replicate's document uses
        # one for model search, so the document itself is not checked, only responses against it.
        self._openapi = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))  # type: ignore[arg-type]  # None: no check
        self.checked: list[str] = []

    def check(self, method: str, url: str, status: int, body: bytes, content_type: str) -> None:
        """Raise if a successful JSON response does not match the operation's response schema."""
        from openapi_core.testing import MockRequest, MockResponse

        parts = urlsplit(url)
        request = MockRequest(SPEC_HOST, method.lower(), parts.path, args=dict(parse_qsl(parts.query)))
        response = MockResponse(body, status_code=status, content_type=content_type.split(";")[0].strip())
        self._openapi.validate_response(request, response)
        self.checked.append(f"{method.upper()} {parts.path} {status}")
