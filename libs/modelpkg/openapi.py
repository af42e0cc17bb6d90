"""Assembling a Cog-shaped OpenAPI document around a predictor's Input/Output components."""

from __future__ import annotations

from typing import Any

_JSON_ANY: dict[str, Any] = {"application/json": {"schema": {}}}
_VALIDATION_ERROR = {
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
    "description": "Validation Error",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _get(summary: str, operation_id: str) -> dict[str, Any]:
    ok = {"200": {"content": _JSON_ANY, "description": "Successful Response"}}
    return {"get": {"summary": summary, "operationId": operation_id, "responses": ok}}


def _create(kind: str, request: str, response: str, description: str) -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": _ref(request)}}}
    ok = {"content": {"application/json": {"schema": _ref(response)}}, "description": "Successful Response"}
    return {
        "post": {
            "summary": kind.title(),
            "description": description,
            "operationId": f"{kind}_{kind}s_post" if kind != "predict" else "predict_predictions_post",
            "requestBody": body,
            "responses": {"200": ok, "422": _VALIDATION_ERROR},
        }
    }


def _cancel(collection: str, id_name: str) -> dict[str, Any]:
    param = {"in": "path", "name": id_name, "required": True,
             "schema": {"title": id_name.replace("_", " ").title(), "type": "string"}}
    ok = {"content": _JSON_ANY, "description": "Successful Response"}
    return {
        "post": {
            "summary": "Cancel",
            "operationId": f"cancel_{collection}__{id_name}__cancel_post",
            "parameters": [param],
            "responses": {"200": ok, "422": _VALIDATION_ERROR},
        }
    }


def _string(title: str, fmt: str | None = None) -> dict[str, Any]:
    prop = {"title": title, "type": "string"}
    return prop | {"format": fmt} if fmt else prop


def _response(title: str, input_name: str, output_name: str) -> dict[str, Any]:
    props = {
        "input": _ref(input_name),
        "output": _ref(output_name),
        "id": _string("Id"),
        "version": _string("Version"),
        "created_at": _string("Created At", "date-time"),
        "started_at": _string("Started At", "date-time"),
        "completed_at": _string("Completed At", "date-time"),
        "status": _string("Status"),
        "error": _string("Error"),
        "logs": _string("Logs"),
        "metrics": {"title": "Metrics", "type": "object"},
    }
    return {"title": title, "type": "object", "properties": props}


def _request(title: str, input_name: str) -> dict[str, Any]:
    return {"title": title, "type": "object", "properties": {"id": _string("Id"), "input": _ref(input_name)}}


_STATIC_COMPONENTS: dict[str, Any] = {
    "Status": {
        "title": "Status",
        "type": "string",
        "description": "An enumeration.",
        "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
    },
    "HTTPValidationError": {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "array", "items": _ref("ValidationError")}},
    },
    "ValidationError": {
        "title": "ValidationError",
        "type": "object",
        "properties": {
            "loc": {"title": "Location", "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
        },
        "required": ["loc", "msg", "type"],
    },
}


def build_openapi(
    predict: dict[str, Any], cog_version: str, train: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wrap the probe's ``{"input", "output", "enums"}`` parts in Cog's OpenAPI envelope.

    Args:
        predict: Components of the predict function.
        cog_version: Reported as ``info.version``, as Cog does.
        train: Components of the train function, when cog.yaml sets ``train``.
    """
    paths: dict[str, Any] = {
        "/": _get("Root", "root__get"),
        "/health-check": _get("Healthcheck", "healthcheck_health_check_get"),
        "/predictions": _create("predict", "PredictionRequest", "PredictionResponse",
                                "Run a single prediction on the model"),
        "/predictions/{prediction_id}/cancel": _cancel("predictions", "prediction_id"),
    }
    schemas: dict[str, Any] = {
        "Input": predict["input"],
        "Output": predict["output"],
        **predict["enums"],
        "PredictionRequest": _request("PredictionRequest", "Input"),
        "PredictionResponse": _response("PredictionResponse", "Input", "Output"),
    }
    if train is not None:
        paths["/trainings"] = _create("train", "TrainingRequest", "TrainingResponse", "Run a single training")
        paths["/trainings/{training_id}/cancel"] = _cancel("trainings", "training_id")
        schemas.update(train["enums"])
        schemas["TrainingInput"] = train["input"] | {"title": "TrainingInput"}
        schemas["TrainingOutput"] = train["output"] | {"title": "TrainingOutput"}
        schemas["TrainingRequest"] = _request("TrainingRequest", "TrainingInput")
        schemas["TrainingResponse"] = _response("TrainingResponse", "TrainingInput", "TrainingOutput")
    schemas.update(_STATIC_COMPONENTS)
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": cog_version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
