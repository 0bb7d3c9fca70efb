"""Fixtures of the reliability tests: real servers started per test, private copies of the tiny store."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from reliability_harness import running_server

from bench.server import Server


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: `start_server(store, name, **env)` -> a ready server; all are stopped at the end."""
    numbers = itertools.count()
    with ExitStack() as servers:

        def start(store: Path, name: str, **env: str) -> Server:
            settings = {"MODEL_STORE_DIR": str(store), "MODEL_NAME": name, **env}
            log = tmp_path / f"server-{next(numbers)}.log"
            return servers.enter_context(running_server(settings, log))

        yield start


@pytest.fixture
def private_store(tiny_store: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny store (model `tiny`, version 1)."""
    return Path(shutil.copytree(tiny_store, tmp_path / "store"))
