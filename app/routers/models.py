"""What is served and what the store holds: every model, one model's metadata and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.dependencies import ManagerDep, ModelName, ModelPredictorDep, PredictorDep
from app.predictor import Predictor
from app.schemas import ErrorResponse, ModelMetadata, ModelRef, ModelsStatus, ModelStatus, Readiness

router = APIRouter(tags=["models"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such model"},
    422: {"model": ErrorResponse, "description": "Invalid model name"},
}
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "No version loaded yet"}
}


def metadata(predictor: Predictor, manager: ManagerDep) -> dict[str, Any]:
    """The served bundle's manifest without the file hashes, plus backend and load time."""
    document = predictor.bundle.manifest.to_json()
    del document["files"]
    loaded_at = manager.model(predictor.name).loaded_at
    return {**document, "backend": predictor.runtime.name, "loaded_at": loaded_at}


@router.get("/model", response_model=ModelMetadata, responses=_NOT_READY)
def model(predictor: PredictorDep, manager: ManagerDep) -> dict[str, Any]:
    """The default model's served manifest: name, version, created_at, window, feature, metrics,
    test-month evaluation, training settings, data fingerprint (file sha256s), library versions."""
    return metadata(predictor, manager)


@router.get("/models", response_model=ModelsStatus)
def models(manager: ManagerDep) -> ModelsStatus:
    """Every served model: its complete versions in the store, the served, pinned and loaded
    ones, its state and its last load error."""
    return ModelsStatus(
        default_model=manager.default,
        models=[
            ModelStatus.model_validate(manager.status(name), from_attributes=True)
            for name in manager.names
        ],
    )


@router.get("/models/{name}", response_model=ModelMetadata, responses={**_NOT_FOUND, **_NOT_READY})
def model_metadata(predictor: ModelPredictorDep, manager: ManagerDep) -> dict[str, Any]:
    """The served manifest of model `name` (as /model for the default one)."""
    return metadata(predictor, manager)


@router.get("/models/{name}/status", response_model=ModelStatus, responses=_NOT_FOUND)
def model_status(name: ModelName, manager: ManagerDep) -> ModelStatus:
    """The lifecycle state of model `name` (one entry of /models)."""
    return ModelStatus.model_validate(manager.status(name), from_attributes=True)


@router.get(
    "/models/{name}/ready", response_model=Readiness, responses={**_NOT_FOUND, **_NOT_READY}
)
def model_ready(predictor: ModelPredictorDep) -> Readiness:
    """Model `name` has a verified, warmed-up version served; 503 with the reason until then."""
    return Readiness(model=ModelRef(name=predictor.name, version=predictor.version))
