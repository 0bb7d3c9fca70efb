"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.dependencies import MetricsDep, PredictorDep
from app.schemas import ErrorResponse, Liveness, ModelRef, Readiness

router = APIRouter(tags=["operations"])


@router.get("/livez", response_model=Liveness)
async def livez() -> Liveness:
    """The process answers (says nothing about the model)."""
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": ErrorResponse, "description": "Not ready, with the reason"}},
)
async def readyz(predictor: PredictorDep) -> Readiness:
    """A verified bundle is loaded and warmed up; 503 with the reason until then."""
    return Readiness(model=ModelRef(name=predictor.name, version=predictor.version))


@router.get("/metrics", response_class=Response)
async def metrics(service_metrics: MetricsDep) -> Response:
    """Prometheus text format: requests by route and status, latency, predictions, the served
    version, load failures."""
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
