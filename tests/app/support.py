"""App test helpers: settings for a tiny store, publishing copies; real servers are bench.server's."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from bench.server import app_server
from bench.server import free_port as free_port  # re-exported for tests written against it
from model_store import Bundle, ModelStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def app_settings(store: Path, **overrides: Any) -> Settings:
    """Settings for the model `tiny` in `store`, independent of the caller's environment."""
    values: dict[str, Any] = {
        "model_store_dir": store,
        "model_name": "tiny",
        "model_version": "latest",
        "predictor_backend": "onnx",
        "model_poll_seconds": 0.0,
        "admin_token": None,
        "cors_origins": [],
    }
    values.update(overrides)
    return Settings(**values)


def republish(source: Bundle, store: Path, name: str = "tiny", **changes: Any) -> Bundle:
    """Publish a copy of `source`'s files and manifest as the next version of `name`."""
    spec = dataclasses.replace(source.manifest, **changes)
    files = {filename: source.path / filename for filename in source.manifest.files}
    return ModelStore(store).publish(name, files, spec)


def place_corrupt_version(source: Bundle, store: Path, name: str = "tiny") -> int:
    """Copy `source` as the next version with one byte of model.onnx flipped, placed with one
    atomic rename (as a publisher would) so the poller never sees a half-written folder."""
    model_dir = store / name
    number = max(ModelStore(store).versions(name)) + 1
    staging = model_dir / f".publish-corrupt-{number}"
    shutil.copytree(source.path, staging)
    manifest_path = staging / "manifest.json"
    manifest_path.write_text(
        manifest_path.read_text().replace(f'"version": {source.version}', f'"version": {number}')
    )
    onnx = staging / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    os.rename(staging, model_dir / str(number))
    return number


@contextmanager
def uvicorn_server(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`uvicorn app.main:app` on a free port; yields (base URL, process). New tests: use
    `bench.server.app_server`, which this wraps."""
    with app_server(env, log, "--log-level", "warning", ready_path="/livez") as server:
        assert server.process is not None
        yield server.base_url, server.process


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)


class Load:
    """Clients posting to `path` (default /predict) back to back, recording (status, served
    version) per request and when each request was sent and answered."""

    def __init__(self, base: str, clients: int = 2, path: str = "/predict"):
        self.base = base
        self.path = path
        self.results: list[tuple[int | str, int | None]] = []
        self.timings: list[tuple[float, float, int | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post(self.path, json={"closes": [150.0] * 40})
                    version = response.json().get("model", {}).get("version")
                    self.results.append((response.status_code, version))
                    self.timings.append((sent, time.monotonic(), version))
                except httpx.HTTPError as exc:  # a refused or dropped connection is a failure
                    self.results.append((repr(exc), None))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def last_version(self) -> int | None:
        return self.results[-1][1] if self.results else None
