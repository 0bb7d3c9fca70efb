"""Admin: reload from the store now, or pin (roll back to) a version. Bearer ADMIN_TOKEN."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.dependencies import RegistryDep, SettingsDep
from app.errors import AdminDisabledError, UnauthorizedError
from app.registry import ModelRegistry
from app.schemas import AdminResult, ErrorResponse, ModelRef, PinRequest

_bearer = HTTPBearer(auto_error=False, description="ADMIN_TOKEN")


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """403 when ADMIN_TOKEN is unset (admin off), 401 unless the bearer token matches it."""
    if settings.admin_token is None:
        raise AdminDisabledError("admin endpoints are disabled: ADMIN_TOKEN is not set")
    expected = settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials else b""
    if not secrets.compare_digest(given, expected):
        raise UnauthorizedError("missing or wrong bearer token")


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"},
        403: {"model": ErrorResponse, "description": "ADMIN_TOKEN is not set"},
        404: {"model": ErrorResponse, "description": "No such version"},
        409: {"model": ErrorResponse, "description": "The version failed to load; old one serves"},
        413: {"model": ErrorResponse, "description": "Body above MAX_BODY_BYTES"},
        422: {"model": ErrorResponse, "description": "Invalid body (e.g. not a version)"},
    },
)


def _result(registry: ModelRegistry, before: int | None) -> AdminResult:
    predictor = registry.require()
    return AdminResult(
        changed=predictor.version != before,
        served=ModelRef(name=predictor.name, version=predictor.version),
        pinned=registry.pinned,
    )


def _served_version(registry: ModelRegistry) -> int | None:
    current = registry.current
    return current.version if current else None


@router.post("/reload", response_model=AdminResult)
def reload(registry: RegistryDep) -> AdminResult:
    """Look at the store now: forget earlier failures and serve the pinned or latest version."""
    before = _served_version(registry)
    registry.reload()
    return _result(registry, before)


@router.post("/pin", response_model=AdminResult)
def pin(request: PinRequest, registry: RegistryDep) -> AdminResult:
    """Serve `version` and stop following new ones (rollback); `"latest"` follows them again."""
    before = _served_version(registry)
    registry.pin(None if request.version == "latest" else int(request.version))
    return _result(registry, before)
