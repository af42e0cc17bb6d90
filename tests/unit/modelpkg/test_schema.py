"""OpenAPI generation through cog's own inspector, in a child process."""

import json
import sys
from pathlib import Path

import pytest

from libs.modelpkg import ModelPackageError, generate_openapi_schema

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "predictors"
# shared/ sits beside the repository's checkout (CI) or one level further up (a worktree of it).
_SAMPLE_CANDIDATES = [
    base / "shared" / "reference" / "cog-sample-schema.json" for base in (ROOT.parent, ROOT.parent.parent)
]
SAMPLE_SCHEMA = next((p for p in _SAMPLE_CANDIDATES if p.is_file()), _SAMPLE_CANDIDATES[0])


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


async def test_sample_covers_cog_input_features() -> None:
    result = await generate_openapi_schema(FIXTURES / "sample", "predict.py:Predictor")
    schemas = result.openapi_schema["components"]["schemas"]
    props = schemas["Input"]["properties"]
    assert schemas["Input"]["required"] == ["prompt", "image", "images"]
    assert [props[name]["x-order"] for name in props] == list(range(len(props)))
    assert props["prompt"] | {} == {"x-order": 0, "title": "Prompt", "type": "string", "description": "Text prompt",
                                    "minLength": 1, "maxLength": 100}
    assert props["steps"]["default"] == 4 and props["steps"]["minimum"] == 1 and props["steps"]["maximum"] == 50
    assert props["code"]["pattern"] == "^[a-z0-9]+$"
    assert props["image"]["format"] == "uri"
    assert props["images"]["items"] == {"type": "string", "format": "uri"}
    assert props["mode"]["allOf"] == [{"$ref": "#/components/schemas/mode"}]
    assert schemas["mode"] == {"title": "mode", "type": "string", "enum": ["fast", "slow"],
                               "description": "An enumeration."}
    assert schemas["size"]["enum"] == [256, 512, 1024]
    assert props["api_key"]["format"] == "password" and props["api_key"]["x-cog-secret"] is True
    assert props["api_key"]["nullable"] is True and props["seed"]["nullable"] is True
    assert props["old_flag"]["deprecated"] is True
    assert schemas["Output"] == {"title": "Output", "type": "array", "items": {"type": "string"},
                                 "x-cog-array-type": "iterator", "x-cog-array-display": "concatenate"}


@pytest.mark.skipif(not SAMPLE_SCHEMA.is_file(), reason=f"reference schema not present at {SAMPLE_SCHEMA}")
async def test_sample_matches_cog_generator_output() -> None:
    """The whole document equals what Cog's own (Go) generator wrote for the same predictor."""
    result = await generate_openapi_schema(FIXTURES / "sample", "predict.py:Predictor")
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


async def test_unknown_input_type_is_refused_by_name() -> None:
    with pytest.raises(ModelPackageError, match="invalid input field thing: unsupported Cog type Thing"):
        await generate_openapi_schema(FIXTURES / "unknown_input_type", "predict.py:Predictor")


async def test_predictor_without_predict_is_refused() -> None:
    with pytest.raises(ModelPackageError, match="run or predict method not found"):
        await generate_openapi_schema(FIXTURES / "no_predict", "predict.py:Predictor")
