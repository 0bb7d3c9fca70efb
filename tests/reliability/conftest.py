"""Fixtures of the reliability tests: real servers started per test, private copies of the tiny store."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_harness import ServerProcess


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `start_server(store, name, **env)` -> a ready server; all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(store: Path, name: str, *, ready: bool = True, **env: str) -> ServerProcess:
        settings = {"MODEL_STORE_DIR": str(store), "MODEL_NAME": name, **env}
        server = ServerProcess(settings, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        if ready:
            server.wait_until("/readyz", 200)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def private_store(tiny_store: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny store (model `tiny`, version 1)."""
    return Path(shutil.copytree(tiny_store, tmp_path / "store"))
