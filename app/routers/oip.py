"""The Open Inference Protocol (KServe V2) over REST, so standard clients (tritonclient, KServe,
MLServer, Seldon) can call every served model. Errors use the protocol's `{"error": "..."}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.dependencies import ManagerDep, ModelName, ServiceDep, VersionNumber
from app.errors import ApiError
from app.manager import ModelManager
from app.oip import (
    HEADER_LENGTH,
    INPUT_NAME,
    OUTPUT_NAMES,
    OUTPUT_TYPE,
    ProtocolError,
    infer_response,
    parse_infer_request,
)
from app.predictor import Predictor
from app.schemas import V2Error, V2ModelReadiness, V2ServerReadiness
from app.service import PredictionService
from model_store import DEFAULT_LEVEL, LEVELS, ModelStoreError

router = APIRouter(
    prefix="/v2",
    tags=["open inference protocol"],
    responses={
        400: {"model": V2Error, "description": "Invalid request (the protocol's shape)"},
        422: {"model": V2Error, "description": "Invalid model name or version in the path"},
    },
)
_MODEL_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": V2Error, "description": "No such model, or the version is not loaded"},
    503: {"model": V2Error, "description": "The model has no version loaded yet"},
}

SERVER_NAME = "stock-lstm-service"
SERVER_VERSION = "0.1.0"


def v2_error(status: int, message: str) -> JSONResponse:
    """The protocol's error shape."""
    return JSONResponse({"error": message}, status_code=status)


def _resolve(manager: ModelManager, name: str, version: int | None) -> Predictor:
    return manager.require(name) if version is None else manager.require_version(name, version)


@router.get("/health/live")
def live() -> dict[str, bool]:
    """The process answers."""
    return {"live": True}


@router.get(
    "/health/ready",
    response_model=V2ServerReadiness,
    responses={503: {"model": V2ServerReadiness, "description": "The default model is not served"}},
)
def ready(manager: ManagerDep) -> Response:
    """Ready when the default model is served (as /readyz)."""
    is_ready = manager.model(manager.default).served is not None
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get("")
def server_metadata() -> dict[str, Any]:
    """Server name, version and protocol extensions."""
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": ["binary_tensor_data"]}


def _model_metadata(manager: ModelManager, name: str, version: int | None) -> Response:
    try:
        predictor = _resolve(manager, name, version)
    except ApiError as exc:
        return v2_error(exc.status_code, exc.message)
    outputs = ["next_close"] + (["lower", "upper"] if predictor.intervals is not None else [])
    return JSONResponse(
        {
            "name": predictor.name,
            "versions": [str(v) for v in sorted(manager.model(name).loaded)],
            "platform": predictor.runtime.name,
            # FP64 is accepted too; metadata names one datatype per input.
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, predictor.window]}],
            "outputs": [{"name": o, "datatype": OUTPUT_TYPE, "shape": [-1]} for o in outputs],
            "parameters": {"window": predictor.window, "feature": predictor.bundle.feature},
        }
    )


@router.get("/models/{name}", responses=_MODEL_ERRORS)
def model_metadata(name: ModelName, manager: ManagerDep) -> Response:
    """Inputs (`closes`, FP32 or FP64, [N, window]) and outputs (`next_close`, `lower`, `upper`,
    FP64, [N]) of the served version of model `name`."""
    return _model_metadata(manager, name, None)


@router.get("/models/{name}/versions/{version}", responses=_MODEL_ERRORS)
def version_metadata(name: ModelName, version: VersionNumber, manager: ManagerDep) -> Response:
    """As `/v2/models/{name}` for a loaded version."""
    return _model_metadata(manager, name, version)


def _model_ready(manager: ModelManager, name: str, version: int | None) -> Response:
    try:
        _resolve(manager, name, version)
    except ApiError as exc:
        if exc.status_code == 404:  # no such model, or the version is not loaded
            return v2_error(404, exc.message)
        return JSONResponse({"name": name, "ready": False}, status_code=503)
    return JSONResponse({"name": name, "ready": True})


_READY: dict[int | str, dict[str, Any]] = {
    404: {"model": V2Error, "description": "No such model, or the version is not loaded"},
    503: {"model": V2ModelReadiness, "description": "The model has no version loaded yet"},
}


@router.get("/models/{name}/ready", response_model=V2ModelReadiness, responses=_READY)
def model_ready(name: ModelName, manager: ManagerDep) -> Response:
    """200 when model `name` is served, 503 while it is not (404 when it is not a model here)."""
    return _model_ready(manager, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready", response_model=V2ModelReadiness, responses=_READY
)
def version_ready(name: ModelName, version: VersionNumber, manager: ManagerDep) -> Response:
    """200 when `version` of model `name` is loaded, 404 otherwise."""
    return _model_ready(manager, name, version)


async def _infer(
    request: Request,
    manager: ModelManager,
    service: PredictionService,
    name: str,
    version: int | None,
) -> Response:
    try:
        predictor = _resolve(manager, name, version)
        parsed = parse_infer_request(
            await request.body(), request.headers.get(HEADER_LENGTH), predictor.window
        )
        level = DEFAULT_LEVEL if parsed.level is None else parsed.level
        if level not in LEVELS:
            raise ProtocolError(
                f"parameter level must be a whole percent from {min(LEVELS)} to {max(LEVELS)}"
            )
        result = await service.predict(predictor, parsed.windows, level, "infer")
        tensors = dict(zip(OUTPUT_NAMES, (result.closes, result.lower, result.upper), strict=True))
        body, header_length = infer_response(parsed, predictor.name, predictor.version, tensors)
    except ProtocolError as exc:
        return v2_error(400, str(exc))
    except ApiError as exc:
        return v2_error(exc.status_code, exc.message)
    except ModelStoreError as exc:
        return v2_error(404, str(exc))
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


@router.post("/models/{name}/infer", responses=_MODEL_ERRORS)
async def infer(
    name: ModelName, request: Request, manager: ManagerDep, service: ServiceDep
) -> Response:
    """Next closes for an input tensor `closes` of shape [N, window] (FP32 or FP64, JSON `data`
    or the binary-data extension); outputs `next_close`, `lower`, `upper` of shape [N]. The
    request's `parameters.level` sets the interval's coverage (default 95)."""
    return await _infer(request, manager, service, name, None)


@router.post("/models/{name}/versions/{version}/infer", responses=_MODEL_ERRORS)
async def infer_version(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    manager: ManagerDep,
    service: ServiceDep,
) -> Response:
    """As `/v2/models/{name}/infer`, answered by a loaded version."""
    return await _infer(request, manager, service, name, version)
