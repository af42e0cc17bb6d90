"""The playground's form, derived from a version's OpenAPI schema (Cog's `components.schemas.Input`).

Fields come in `x-order`; each gets the control its type calls for. What the browser sends back is coerced
by the page script, and the gateway's own input validation decides what is valid, as for API clients.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Strings named like these are usually long: a textarea suits them better than a one-line box.
_LONG_TEXT_HINTS = ("prompt", "text", "description", "message", "content", "caption", "instruction", "system")


@dataclass(frozen=True)
class FormField:
    name: str
    # text, textarea, number, range (a slider with a number box), checkbox, select, file, secret, list, json
    kind: str
    value_type: str  # string, integer, number, boolean, array, object
    required: bool
    description: str = ""
    default: Any = None
    has_default: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] = field(default_factory=list)
    item_type: str = "string"
    # A list of files, or a file: the page uploads them through the Files API first.
    files: bool = False

    @property
    def step(self) -> str:
        return "1" if self.value_type == "integer" else "any"

    @property
    def default_text(self) -> str:
        """The default as the control shows it."""
        if not self.has_default or self.default is None:
            return ""
        if self.kind == "list" and isinstance(self.default, list):
            return "\n".join(str(item) for item in self.default)
        if isinstance(self.default, (dict, list)):
            return json.dumps(self.default)
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)

    @property
    def bounds_text(self) -> str:
        """`min 1 max 50`, numbers written as the schema means them (no `16.0` for an integer)."""
        parts = [f"{label} {_plain(value)}" for label, value in (("min", self.minimum), ("max", self.maximum))
                 if value is not None]
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """What the page script needs to turn the control's value into JSON."""
        return {"name": self.name, "kind": self.kind, "type": self.value_type, "item_type": self.item_type,
                "required": self.required, "files": self.files}


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Merge `allOf` / `$ref` (how Cog writes choices) into one flat property schema."""
    merged = {key: value for key, value in schema.items() if key not in ("allOf", "$ref")}
    parts = list(schema.get("allOf") or [])
    if "$ref" in schema:
        parts.append({"$ref": schema["$ref"]})
    for part in parts:
        if not isinstance(part, dict):
            continue
        ref = part.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            target = components.get(ref.rsplit("/", 1)[-1])
            if isinstance(target, dict):
                # The referenced schema's own title and description ("An enumeration.") describe the enum
                # type, not this input.
                resolved = {k: v for k, v in _resolve(target, components).items() if k not in ("title", "description")}
                merged = {**resolved, **merged}
        else:
            merged = {**_resolve(part, components), **merged}
    return merged


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _kind(name: str, prop: dict[str, Any]) -> tuple[str, str, str, bool]:
    """(kind, value type, item type, files) for one property."""
    value_type = str(prop.get("type") or ("string" if "enum" in prop else "object"))
    if prop.get("x-cog-secret") or prop.get("format") == "password":
        return "secret", "string", "string", False
    if "enum" in prop:
        return "select", value_type, "string", False
    if value_type == "string" and prop.get("format") == "uri":
        return "file", "string", "string", True
    if value_type == "boolean":
        return "checkbox", "boolean", "string", False
    if value_type in ("integer", "number"):
        bounded = _number(prop.get("minimum")) is not None and _number(prop.get("maximum")) is not None
        return ("range" if bounded else "number"), value_type, "string", False
    if value_type == "array":
        items = found if isinstance(found := prop.get("items"), dict) else {}
        item_type = str(items.get("type") or "string")
        files = item_type == "string" and items.get("format") == "uri"
        return "list", "array", item_type, files
    if value_type == "string":
        long_text = prop.get("maxLength") is None and any(hint in name.lower() for hint in _LONG_TEXT_HINTS)
        return ("textarea" if long_text else "text"), "string", "string", False
    return "json", value_type, "string", False


def form_fields(openapi_schema: dict[str, Any] | None) -> list[FormField]:
    """The playground's fields in `x-order` (then name order for inputs without one)."""
    components = ((openapi_schema or {}).get("components") or {}).get("schemas") or {}
    schema = components.get("Input")
    if not isinstance(schema, dict):
        return []
    properties = found if isinstance(found := schema.get("properties"), dict) else {}
    required = set(schema.get("required") or [])
    ordered = sorted(
        properties.items(),
        key=lambda item: (item[1].get("x-order", 1_000_000) if isinstance(item[1], dict) else 1_000_000, item[0]),
    )
    fields = []
    for name, raw in ordered:
        if not isinstance(raw, dict):
            continue
        prop = _resolve(raw, components)
        kind, value_type, item_type, files = _kind(name, prop)
        fields.append(
            FormField(
                name=name,
                kind=kind,
                value_type=value_type,
                required=name in required,
                description=str(prop.get("description") or ""),
                default=prop.get("default"),
                has_default="default" in prop,
                minimum=_number(prop.get("minimum")),
                maximum=_number(prop.get("maximum")),
                choices=list(prop.get("enum") or []),
                item_type=item_type,
                files=files,
            )
        )
    return fields


def output_kind(openapi_schema: dict[str, Any] | None) -> str:
    """How the page shows the output: `stream` (text growing as it arrives), `iterator`, or `value`."""
    components = ((openapi_schema or {}).get("components") or {}).get("schemas") or {}
    output = found if isinstance(found := components.get("Output"), dict) else {}
    if output.get("type") == "array" and output.get("x-cog-array-type") == "iterator":
        return "stream" if output.get("x-cog-array-display") == "concatenate" else "iterator"
    return "value"
