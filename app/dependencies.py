"""Dependency aliases: endpoints declare what they need; tests override these, not globals.

Every dependency is `async def` although none awaits: FastAPI runs a plain `def` dependency in
the threadpool, a hop that costs more than the prediction
(docs/decisions/0005-async-dependencies.md).
"""

from __future__ import annotations

from email.message import Message
from typing import Annotated

from fastapi import Depends, Path, Request

from app.errors import UnsupportedMediaTypeError
from app.manager import ModelManager
from app.metrics import ServiceMetrics
from app.predictor import Predictor
from app.service import PredictionService
from app.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_manager(request: Request) -> ModelManager:
    """The app's model manager."""
    manager: ModelManager = request.app.state.manager
    return manager


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's Prometheus metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_service(request: Request) -> PredictionService:
    """The prediction service every predicting endpoint calls."""
    service: PredictionService = request.app.state.service
    return service


ManagerDep = Annotated[ModelManager, Depends(get_manager)]
ModelName = Annotated[str, Path(max_length=64, description="A served model's name.")]
VersionNumber = Annotated[int, Path(ge=1, lt=10**10, description="A loaded version of it.")]


async def get_predictor(manager: ManagerDep) -> Predictor:
    """The default model's served predictor, taken once per request (503 when not ready)."""
    return manager.require(manager.default)


async def get_model_predictor(manager: ManagerDep, name: ModelName) -> Predictor:
    """The named model's served predictor (404 when not served, 503 when not ready)."""
    return manager.require(name)


async def get_version_predictor(
    manager: ManagerDep, name: ModelName, version: VersionNumber
) -> Predictor:
    """A loaded version of the named model (404 when it is not loaded)."""
    return manager.require_version(name, version)


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ServiceDep = Annotated[PredictionService, Depends(get_service)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
ModelPredictorDep = Annotated[Predictor, Depends(get_model_predictor)]
VersionPredictorDep = Annotated[Predictor, Depends(get_version_predictor)]


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case ('' when absent)."""
    header = request.headers.get("content-type")
    if not header:
        return ""
    message = Message()
    message["content-type"] = header
    return message.get_content_type() if "/" in header else ""


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/json (got {kind or 'none'!r})"
        )
