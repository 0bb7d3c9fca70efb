"""App test fixtures: apps built around the tiny bundle and writable store copies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.support import app_settings


@pytest.fixture
def store_copy(tiny_store: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny store (the session store is shared and read-only)."""
    target = tmp_path / "store"
    shutil.copytree(tiny_store, target)
    return target


@pytest.fixture(scope="module")
def client(tiny_store: Path) -> Iterator[TestClient]:
    """A started app (lifespan run) serving the tiny bundle."""
    with TestClient(create_app(app_settings(tiny_store))) as test_client:
        yield test_client
