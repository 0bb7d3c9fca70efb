"""Domain errors of the service and the one place that maps every error to HTTP.

Every error response has one shape: `{"error": {"code": str, "message": str, "detail": [...]}}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model_store import (
    InvalidVersionError,
    ModelNotFoundError,
    ModelStoreError,
    SeriesError,
    VersionNotFoundError,
)

logger = logging.getLogger(__name__)

MAX_DETAIL = 10
OIP_PREFIX = "/v2/"  # the Open Inference Protocol's routes (app/routers/oip.py)


class ApiError(Exception):
    """An error with its HTTP status, a stable machine code and a short sentence."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, detail: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or []


class NotReadyError(ApiError):
    """No verified, warmed-up bundle is being served yet."""

    status_code = 503
    code = "not_ready"


class ModelUnknownError(ApiError):
    """A model name that is not served."""

    status_code = 404
    code = "model_not_found"


class VersionNotLoadedError(ApiError):
    """A version that is not loaded (only loaded versions answer requests that name one)."""

    status_code = 404
    code = "version_not_loaded"


class InvalidInputError(ApiError):
    """Well-formed JSON whose values break a rule only known at run time (e.g. window length)."""

    status_code = 422
    code = "invalid_input"


class UnsupportedMediaTypeError(ApiError):
    """The request's Content-Type is not one the endpoint reads."""

    status_code = 415
    code = "unsupported_media_type"


class AdminDisabledError(ApiError):
    """The admin endpoints are off because ADMIN_TOKEN is unset."""

    status_code = 403
    code = "admin_disabled"


class UnauthorizedError(ApiError):
    """Missing or wrong admin bearer token."""

    status_code = 401
    code = "unauthorized"


class LoadFailedError(ApiError):
    """An admin-requested version failed to verify, load or warm up; the old one keeps serving."""

    status_code = 409
    code = "load_failed"


def error_body(
    code: str, message: str, detail: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The one error shape."""
    return {"error": {"code": code, "message": message, "detail": detail or []}}


def error_response(
    status: int,
    code: str,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSONResponse in the one error shape."""
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    return error_response(exc.status_code, exc.code, exc.message, exc.detail, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    # Only loc/msg/type (the raw input may hold NaN, which JSON cannot carry), and only the
    # first few: a batch of 10,000 bad windows must not produce a huge error body.
    detail = [
        {
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors[:MAX_DETAIL]
    ]
    if not detail:
        return error_response(422, "invalid_request", "invalid request")
    first = errors[0]
    if first.get("type") == "json_invalid":
        position = first["loc"][-1] if len(first.get("loc", ())) > 1 else "?"
        reason = first.get("ctx", {}).get("error", "malformed")
        message = f"body is not valid JSON: {reason} at position {position}"
    else:
        where = ".".join(str(part) for part in detail[0]["loc"])
        message = f"{where}: {detail[0]['msg']}"
    if len(errors) > MAX_DETAIL:
        message += f" ({len(errors)} errors, the first {MAX_DETAIL} in detail)"
    if request.url.path.startswith(OIP_PREFIX):  # the protocol's own error shape
        return JSONResponse({"error": message}, status_code=422)
    return error_response(422, "invalid_request", message, detail)


async def _series_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SeriesError)
    detail = [{"row": exc.row, "column": exc.column}] if exc.row or exc.column else []
    return error_response(400, "invalid_csv", exc.message, detail)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, VersionNotFoundError | ModelNotFoundError):
        return error_response(404, "version_not_found", str(exc))
    if isinstance(exc, InvalidVersionError):  # e.g. a pin above the store's 10-digit versions
        return error_response(422, "invalid_request", str(exc))
    return error_response(409, "model_store_error", str(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    # FastAPI answers a JSON body that is not UTF-8 or nests deeper than the parser's recursion
    # limit with a bare 400; report it like any other invalid JSON (documented 422).
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError | RecursionError):
        reason = (
            f"not UTF-8 (byte {cause.start})"
            if isinstance(cause, UnicodeDecodeError)
            else "nested too deeply"
        )
        detail = [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]
        return error_response(422, "invalid_request", f"body is not valid JSON: {reason}", detail)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(
        exc.status_code, _status_code_name(exc.status_code), message, headers=exc.headers
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the service can raise to the one JSON error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SeriesError, _series_error)
    app.add_exception_handler(ModelStoreError, _store_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
