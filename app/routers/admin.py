"""Admin: reload a model from the store now, or pin (roll back to) a version. Bearer ADMIN_TOKEN."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.dependencies import ManagerDep, SettingsDep
from app.errors import AdminDisabledError, UnauthorizedError
from app.manager import ModelManager
from app.schemas import AdminResult, ErrorResponse, ModelRef, PinRequest, ReloadRequest

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
        404: {"model": ErrorResponse, "description": "No such model or version"},
        409: {"model": ErrorResponse, "description": "The version failed to load; old one serves"},
        413: {"model": ErrorResponse, "description": "Body above MAX_BODY_BYTES"},
        422: {"model": ErrorResponse, "description": "Invalid body (e.g. not a version)"},
    },
)


def _result(manager: ModelManager, name: str, before: int | None) -> AdminResult:
    predictor = manager.require(name)
    return AdminResult(
        changed=predictor.version != before,
        served=ModelRef(name=predictor.name, version=predictor.version),
        pinned=manager.model(name).pinned,
    )


def _served_version(manager: ModelManager, name: str) -> int | None:
    current = manager.model(name).served
    return current.version if current else None


@router.post("/reload", response_model=AdminResult)
def reload(manager: ManagerDep, request: ReloadRequest | None = None) -> AdminResult:
    """Look at the store now for one model (default: the default model): forget its earlier
    failures and serve its pinned or latest version."""
    name = (request.model if request else None) or manager.default
    before = _served_version(manager, name)
    manager.reload(name)
    return _result(manager, name, before)


@router.post("/pin", response_model=AdminResult)
def pin(request: PinRequest, manager: ManagerDep) -> AdminResult:
    """Serve `version` of `model` (default: the default model) and stop following new ones
    (rollback); `"latest"` follows them again. Other models are not affected."""
    name = request.model or manager.default
    before = _served_version(manager, name)
    manager.pin(name, None if request.version == "latest" else int(request.version))
    return _result(manager, name, before)
