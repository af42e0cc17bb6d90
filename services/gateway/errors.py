"""Errors in Replicate's format: `application/problem+json` with `title`, `detail` and `status`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.rpc import (
    RpcAlreadyExists,
    RpcError,
    RpcFailedPrecondition,
    RpcInvalidArgument,
    RpcNotFound,
    RpcPermissionDenied,
    RpcUnavailable,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# What a 503 asks the client to wait: a restarted service or server is usually back within this.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    def __init__(
        self, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "status": status, **extra},
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def not_found(what: str = "The requested resource could not be found.") -> ApiError:
    return ApiError(404, "Not found", what)


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location)
        if error.get("type") == "extra_forbidden":
            fields.append({
                "type": "additional_property_not_allowed",
                "field": "",
                "description": f"Additional property {field} is not allowed",
            })
        elif error.get("type") == "json_invalid":
            fields.append({"type": "json_invalid", "field": "", "description": "Request body is not valid JSON"})
        elif error.get("type") == "missing":
            fields.append({"type": "required", "field": "", "description": f"{field} is required"})
        else:
            fields.append(
                {"type": str(error.get("type")), "field": field, "description": f"{field}: {error.get('msg')}"}
            )
    return "".join(f"- {item['description']}\n" for item in fields), fields


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail, fields = _validation_detail(exc)
        if any(item["type"] == "json_invalid" for item in fields):
            return problem(400, "Bad request", "Request body is not valid JSON")
        return problem(422, "Input validation failed", detail, invalid_fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Payload too large"}
        return problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))

    @app.exception_handler(RpcNotFound)
    async def rpc_not_found(_: Request, exc: RpcNotFound) -> JSONResponse:
        return problem(404, "Not found", "The requested resource could not be found.")

    @app.exception_handler(RpcInvalidArgument)
    async def rpc_invalid(_: Request, exc: RpcInvalidArgument) -> JSONResponse:
        return problem(422, "Input validation failed", str(exc.details() or exc))

    @app.exception_handler(RpcAlreadyExists)
    async def rpc_exists(_: Request, exc: RpcAlreadyExists) -> JSONResponse:
        return problem(409, "Conflict", str(exc.details() or "It already exists."))

    @app.exception_handler(RpcFailedPrecondition)
    async def rpc_precondition(_: Request, exc: RpcFailedPrecondition) -> JSONResponse:
        return problem(409, "Conflict", str(exc.details() or "The resource is not in a state that allows this."))

    @app.exception_handler(RpcPermissionDenied)
    async def rpc_denied(_: Request, exc: RpcPermissionDenied) -> JSONResponse:
        return problem(403, "Forbidden", str(exc.details() or "You do not have permission to do this."))

    @app.exception_handler(RpcUnavailable)
    async def rpc_unavailable(_: Request, exc: RpcUnavailable) -> JSONResponse:
        return problem(
            503, "Service unavailable", "A backing service is not reachable; try again shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(RpcError)
    async def rpc_error(_: Request, exc: RpcError) -> JSONResponse:
        log.warning("backing service call failed: %s", exc)
        return problem(502, "Bad gateway", "A backing service failed to answer.")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "Internal server error", "An unexpected error occurred.")
