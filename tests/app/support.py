"""App test helpers: settings for a tiny store, publishing copies; real servers are bench.server's."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.settings import Settings
from bench.server import app_server
from bench.server import free_port as free_port  # re-exported for tests written against it
from model_store import Bundle, ModelStore

REPO_ROOT = Path(__file__).resolve().parents[2]
# Fields ModelStore.publish fills in itself.
PUBLISH_FILLS = ("name", "version", "files", "format_version", "created_at")


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
    manifest = {k: v for k, v in source.manifest.items() if k not in PUBLISH_FILLS}
    manifest.update(changes)
    files = {filename: source.path / filename for filename in source.manifest["files"]}
    return ModelStore(store).publish(name, files, manifest)


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
