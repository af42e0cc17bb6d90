"""Prediction input checked against a Cog version schema: every kind of violation is named."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.validation import problem_detail, validate_input

SCHEMA: dict[str, Any] = {
    "openapi": "3.0.2",
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "properties": {
                    "prompt": {"type": "string", "minLength": 2, "maxLength": 5, "x-order": 0},
                    "image": {"type": "string", "format": "uri", "x-order": 1},
                    "steps": {"type": "integer", "minimum": 1, "maximum": 50, "x-order": 2},
                    "scale": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10, "x-order": 3},
                    "code": {"type": "string", "pattern": "^[a-z]+$", "x-order": 4},
                    "mode": {"allOf": [{"$ref": "#/components/schemas/mode"}], "x-order": 5},
                    "size": {"allOf": [{"$ref": "#/components/schemas/size"}], "x-order": 6},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-order": 7},
                    "seed": {"type": "integer", "nullable": True, "x-order": 8},
                    "fast": {"type": "boolean", "x-order": 9},
                },
                "required": ["prompt", "image"],
            },
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "size": {"type": "integer", "enum": [256, 512]},
        }
    },
}
VALID = {"prompt": "hi", "image": "https://example.com/a.png"}


def _problems(value: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.type, p.field) for p in validate_input(SCHEMA, value)]


def test_a_valid_input_has_no_problems() -> None:
    full = {**VALID, "steps": 50, "scale": 9.5, "code": "abc", "mode": "slow", "size": 512, "tags": ["a"],
            "seed": None, "fast": True}
    assert validate_input(SCHEMA, full) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"steps": "four"}, ("invalid_type", "input.steps")),
        ({"steps": 1.5}, ("invalid_type", "input.steps")),
        ({"fast": "yes"}, ("invalid_type", "input.fast")),
        ({"tags": ["a", 2]}, ("invalid_type", "input.tags.1")),
        ({"seed": "x"}, ("invalid_type", "input.seed")),
        ({"fast": None}, ("invalid_type", "input.fast")),
        ({"steps": 0}, ("number_gte", "input.steps")),
        ({"steps": 51}, ("number_lte", "input.steps")),
        ({"scale": 0}, ("number_gt", "input.scale")),
        ({"scale": 10}, ("number_lt", "input.scale")),
        ({"prompt": "a"}, ("string_gte", "input.prompt")),
        ({"prompt": "abcdef"}, ("string_lte", "input.prompt")),
        ({"code": "ABC"}, ("string_pattern", "input.code")),
        ({"mode": "medium"}, ("enum", "input.mode")),
        ({"size": 300}, ("enum", "input.size")),
        ({"colour": "red"}, ("additional_property_not_allowed", "input")),
    ],
)
def test_each_kind_of_violation_is_named(change: dict[str, Any], expected: tuple[str, str]) -> None:
    assert _problems({**VALID, **change}) == [expected]


def test_missing_required_inputs_are_each_named() -> None:
    problems = validate_input(SCHEMA, {})
    assert [(p.type, p.field, p.description) for p in problems] == [
        ("required", "input", "prompt is required"),
        ("required", "input", "image is required"),
    ]


def test_every_invalid_field_is_reported_at_once_in_replicates_wording() -> None:
    problems = validate_input(SCHEMA, {"prompt": "a", "steps": 99, "mode": "x", "extra": 1})
    assert {p.field for p in problems} == {"input", "input.prompt", "input.steps", "input.mode"}
    detail = problem_detail(problems)
    assert "- input: image is required\n" in detail
    assert "- input.steps: Must be less than or equal to 50\n" in detail
    assert '- input.mode: Must be one of the following: "fast", "slow"\n' in detail
    assert "- input: Additional property extra is not allowed\n" in detail


def test_a_version_without_an_input_schema_accepts_anything() -> None:
    assert validate_input({}, {"anything": 1}) == []
    assert validate_input({"components": {"schemas": {}}}, {"anything": 1}) == []


def test_a_broken_schema_does_not_fail_the_request() -> None:
    broken = {"components": {"schemas": {"Input": {"properties": {"a": {"$ref": "#/nowhere"}}}}}}
    assert validate_input(broken, {"a": 1}, cache_key="broken") == []
