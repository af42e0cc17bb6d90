"""Checking a prediction's input against its version's `Input` schema, naming every invalid field.

Cog writes the schema as an OpenAPI document: `components.schemas.Input` lists the inputs, choices are
`allOf` references to enum schemas beside it, and optional inputs are marked `nullable`. The messages and
`invalid_fields[].type` values follow Replicate's 422 responses ("- input.steps: Must be less than or equal
to 50").
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

log = logging.getLogger(__name__)

_CACHE_SIZE = 256
_validators: OrderedDict[str, Draft202012Validator | None] = OrderedDict()


@dataclass(frozen=True)
class InvalidField:
    type: str
    field: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "field": self.field, "description": self.description}


def _input_schema(openapi_schema: dict[str, Any]) -> dict[str, Any] | None:
    schemas = (openapi_schema.get("components") or {}).get("schemas") or {}
    found = schemas.get("Input")
    return found if isinstance(found, dict) else None


def _validator(cache_key: str, openapi_schema: dict[str, Any]) -> Draft202012Validator | None:
    if cache_key in _validators:
        _validators.move_to_end(cache_key)
        return _validators[cache_key]
    validator = None
    if _input_schema(openapi_schema) is not None:
        root = {"$ref": "#/components/schemas/Input", "components": openapi_schema["components"]}
        validator = Draft202012Validator(root)
    _validators[cache_key] = validator
    if len(_validators) > _CACHE_SIZE:
        _validators.popitem(last=False)
    return validator


def validate_input(
    openapi_schema: dict[str, Any], value: dict[str, Any], cache_key: str | None = None
) -> list[InvalidField]:
    """Every problem with `value`, in input order; empty when it is valid (or the version has no Input schema).

    `cache_key` (the version id) lets the compiled validator be reused; versions are immutable.
    """
    key = cache_key or json.dumps(openapi_schema, sort_keys=True)
    schema = _input_schema(openapi_schema)
    if schema is None:
        return []
    properties = found if isinstance(found := schema.get("properties"), dict) else {}
    # `null` for an optional input means "use the default", as Cog's own server reads it.
    given = {
        name: item
        for name, item in value.items()
        if not (item is None and isinstance(properties.get(name), dict) and properties[name].get("nullable"))
    }
    problems = [
        InvalidField("additional_property_not_allowed", "input", f"Additional property {name} is not allowed")
        for name in value
        if properties and name not in properties
    ]
    try:
        validator = _validator(key, openapi_schema)
        errors = list(validator.iter_errors(given)) if validator is not None else []
        described = [problem for error in errors for problem in _describe(error)]
    except Exception:  # noqa: BLE001 - a broken schema in a pushed model must not fail the request
        log.warning("input schema of %s cannot be applied; skipping validation", cache_key, exc_info=True)
        return problems
    for problem in described:
        if problem not in problems:
            problems.append(problem)
    order = {name: index for index, name in enumerate(properties)}
    return sorted(problems, key=lambda p: order.get(p.field.removeprefix("input.").split(".")[0], -1))


def _field(error: ValidationError) -> str:
    return ".".join(["input", *(str(part) for part in error.absolute_path)])


def _describe(error: ValidationError) -> list[InvalidField]:
    kind = error.validator
    limit: Any = error.validator_value  # the keyword's value in the schema: a list, a bound, a pattern...
    field = _field(error)
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [InvalidField("required", field, f"{name} is required") for name in limit if name not in instance]
    if kind == "additionalProperties":
        return [InvalidField("additional_property_not_allowed", field, error.message)]
    kind_name, description = _message(str(kind), limit, error)
    return [InvalidField(kind_name, field, description)]


def _message(kind: str, limit: Any, error: ValidationError) -> tuple[str, str]:
    match kind:
        case "type":
            return "invalid_type", f"Invalid type. Expected: {_type_names(limit)}, given: {_json_type(error.instance)}"
        case "minimum":
            return "number_gte", f"Must be greater than or equal to {limit}"
        case "maximum":
            return "number_lte", f"Must be less than or equal to {limit}"
        case "exclusiveMinimum":
            return "number_gt", f"Must be greater than {limit}"
        case "exclusiveMaximum":
            return "number_lt", f"Must be less than {limit}"
        case "minLength":
            return "string_gte", f"String length must be greater than or equal to {limit}"
        case "maxLength":
            return "string_lte", f"String length must be less than or equal to {limit}"
        case "pattern":
            return "string_pattern", f"Does not match pattern '{limit}'"
        case "enum" if isinstance(limit, list):
            return "enum", "Must be one of the following: " + ", ".join(json.dumps(choice) for choice in limit)
        case "minItems":
            return "array_min_items", f"Array must have at least {limit} items"
        case "maxItems":
            return "array_max_items", f"Array must have at most {limit} items"
    return kind, error.message


def _type_names(expected: Any) -> str:
    return ", ".join(expected) if isinstance(expected, list) else str(expected)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def problem_detail(problems: list[InvalidField]) -> str:
    return "".join(f"- {p.field}: {p.description}\n" for p in problems)
