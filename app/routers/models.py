"""What is served and what the store holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.dependencies import PredictorDep, RegistryDep
from app.schemas import ErrorResponse, ModelsStatus

router = APIRouter(tags=["models"])

# The manifest's bulky or internal parts; /model returns everything else.
_OMITTED = ("files",)


@router.get(
    "/model",
    responses={503: {"model": ErrorResponse, "description": "No model loaded yet"}},
)
def model(predictor: PredictorDep, registry: RegistryDep) -> dict[str, Any]:
    """The served bundle's manifest: name, version, created_at, window, feature, metrics,
    test-month evaluation, training settings, data fingerprint (file sha256s), library versions."""
    manifest = {k: v for k, v in predictor.bundle.manifest.items() if k not in _OMITTED}
    return {**manifest, "backend": predictor.runtime.name, "loaded_at": registry.loaded_at}


@router.get("/models", response_model=ModelsStatus)
def models(registry: RegistryDep) -> dict[str, Any]:
    """Complete versions in the store, which one is served or pinned, and the last load error."""
    return registry.status()
