"""Dependency aliases: endpoints declare what they need; tests override these, not globals.

Every dependency is `async def` although none awaits: FastAPI runs a plain `def` dependency in
the threadpool, a hop that costs more than the prediction
(docs/decisions/0005-async-dependencies.md).
"""

from __future__ import annotations

from email.message import Message
from typing import Annotated

from fastapi import Depends, Request

from app.batching import MicroBatcher
from app.errors import UnsupportedMediaTypeError
from app.metrics import ServiceMetrics
from app.predictor import Predictor
from app.registry import ModelRegistry
from app.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    """The app's model registry."""
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's Prometheus metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_batcher(request: Request) -> MicroBatcher:
    """The app's batcher of concurrent single-window predictions."""
    batcher: MicroBatcher = request.app.state.batcher
    return batcher


async def get_predictor(registry: Annotated[ModelRegistry, Depends(get_registry)]) -> Predictor:
    """The served predictor, taken once per request (503 when not ready)."""
    return registry.require()


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
BatcherDep = Annotated[MicroBatcher, Depends(get_batcher)]


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
