"""OpenAPI generation through cog's own inspector, in a child process."""

import json
import sys
from pathlib import Path

import pytest

from libs.modelpkg import ModelPackageError, generate_openapi_schema

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "predictors"
SAMPLE_SCHEMA = Path("/work/shared/reference/cog-sample-schema.json")


async def test_hello_world_schema() -> None:
    result = await generate_openapi_schema(ROOT / "examples" / "hello-world", "predict.py:Predictor")
    schemas = result.openapi_schema["components"]["schemas"]
    assert result.cog_version == "0.23.1"
    assert result.openapi_schema["openapi"] == "3.0.2"
    assert schemas["Input"] == {
        "title": "Input",
        "type": "object",
        "properties": {
            "text": {"title": "Text", "type": "string", "description": "Text to greet", "x-order": 0},
        },
        "required": ["text"],
    }
    assert schemas["Output"] == {"title": "Output", "type": "string"}
    assert "/predictions" in result.openapi_schema["paths"]


async def test_sample_matches_cog_generator_output() -> None:
    result = await generate_openapi_schema(FIXTURES / "sample", "predict.py:Predictor")
    schemas = result.openapi_schema["components"]["schemas"]
    assert schemas["Input"]["required"] == ["prompt", "image", "images"]
    assert schemas["Input"]["properties"]["api_key"]["x-cog-secret"] is True
    assert schemas["mode"]["enum"] == ["fast", "slow"]
    assert schemas["Output"]["x-cog-array-display"] == "concatenate"
    if SAMPLE_SCHEMA.exists():
        assert result.openapi_schema == json.loads(SAMPLE_SCHEMA.read_text())


async def test_iterator_output() -> None:
    result = await generate_openapi_schema(FIXTURES / "stream", "predict.py:Predictor")
    output = result.openapi_schema["components"]["schemas"]["Output"]
    assert output == {"title": "Output", "type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator"}


async def test_user_code_never_loads_in_caller() -> None:
    await generate_openapi_schema(FIXTURES / "chatty", "predict.py:Predictor")
    assert "predict" not in sys.modules


async def test_import_failure_is_refused_with_its_cause() -> None:
    with pytest.raises(ModelPackageError, match="definitely_not_a_module"):
        await generate_openapi_schema(FIXTURES / "import_error", "predict.py:Predictor")


async def test_missing_class_is_refused() -> None:
    with pytest.raises(ModelPackageError, match="Nope"):
        await generate_openapi_schema(FIXTURES / "failing", "predict.py:Nope")
