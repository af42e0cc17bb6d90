"""What the scheduler reads from a version's OpenAPI schema: secret inputs and whether the output streams."""

from __future__ import annotations

from typing import Any

REDACTED = "**********"


def _input_properties(schema: dict[str, Any]) -> dict[str, Any]:
    components = (schema.get("components") or {}).get("schemas") or {}
    properties = (components.get("Input") or {}).get("properties") or {}
    return properties if isinstance(properties, dict) else {}


def _is_secret(prop: Any) -> bool:
    if not isinstance(prop, dict):
        return False
    if prop.get("x-cog-secret") is True or prop.get("format") == "password":
        return True
    return prop.get("type") == "array" and _is_secret(prop.get("items"))


def secret_inputs(schema: dict[str, Any]) -> frozenset[str]:
    """Inputs typed `cog.Secret` (alone or in a list)."""
    return frozenset(name for name, prop in _input_properties(schema).items() if _is_secret(prop))


def streams_output(schema: dict[str, Any]) -> bool:
    """True for iterator outputs (`Iterator[...]`, `ConcatenateIterator[...]`): they stream item by item."""
    output = ((schema.get("components") or {}).get("schemas") or {}).get("Output") or {}
    return isinstance(output, dict) and output.get("x-cog-array-type") == "iterator"


def redact(input: dict[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    """``input`` with the values of secret inputs replaced by a mask (null stays null)."""
    if not secrets:
        return input

    def mask(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [mask(item) for item in value]
        return REDACTED

    return {name: mask(value) if name in secrets else value for name, value in input.items()}
