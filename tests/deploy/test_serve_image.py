"""The serve image, built from the Dockerfile by a real engine (podman) and run as compose runs it:
read-only root filesystem, a tmpfs on /tmp, no capabilities, no-new-privileges, UID 10001."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from deploy_spec import REPO_ROOT
from engine import Podman, wait_http

from bench.server import free_port

# The first test's setup builds the images it needs (cold: several minutes each on two cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

# The image holds Debian's minimal Python plus the serve venv (measured: docs/deployment.md); the
# TensorFlow stack alone would add well over a gigabyte.
MAX_SERVE_IMAGE_BYTES = 700_000_000
HARDENED = [
    "--read-only",
    "--tmpfs", "/tmp:size=64m",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
]  # fmt: skip


@dataclass
class Container:
    name: str
    url: str


def start(podman: Podman, image: str, name: str, *env: str) -> Container:
    port = free_port()
    podman.ok(
        "run", "--detach", "--name", name, *HARDENED, "--publish", f"127.0.0.1:{port}:8000",
        *(f"--env={item}" for item in env), image,
    )  # fmt: skip
    return Container(name, f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def served(podman: Podman, serve_image: str) -> Iterator[Container]:
    """The serve image running with compose's hardening, ready."""
    container = start(podman, serve_image, "serve-image-test")
    try:
        wait_http(f"{container.url}/readyz")
        yield container
    finally:
        podman.run("rm", "--force", container.name)


def test_serve_image_answers_readyz_as_the_app_user_on_a_read_only_root(
    podman: Podman, served: Container
) -> None:
    assert httpx.get(f"{served.url}/readyz", timeout=5).json()["status"] == "ready"
    assert podman.ok("exec", served.name, "id", "-u").strip() == "10001"
    denied = podman.run("exec", served.name, "touch", "/srv/written")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    podman.ok("exec", served.name, "touch", "/tmp/written")


def test_january_forecast_matches_the_baked_bundle_evaluation(
    served: Container, shared_data: Path
) -> None:
    csv = (shared_data / "FB_test_data.csv").read_bytes()
    response = httpx.post(
        f"{served.url}/forecast",
        files={"file": ("FB_test_data.csv", csv, "text/csv")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    version = body["model"]["version"]
    manifest_path = REPO_ROOT / "models" / "fb-lstm" / str(version) / "manifest.json"
    evaluation = json.loads(manifest_path.read_text(encoding="utf-8"))["evaluation"]
    points = body["points"]
    assert [point["date"] for point in points] == evaluation["dates"]
    # The container runs the bundle's model.onnx on the trainer's own evaluation windows.
    assert [point["predicted"] for point in points] == pytest.approx(
        evaluation["predicted"], abs=1e-6
    )


def test_image_healthcheck_passes_when_ready_and_fails_when_not(
    podman: Podman, serve_image: str, served: Container
) -> None:
    # Only a Docker-format image keeps it (OCI has no HEALTHCHECK).
    healthcheck = podman.inspect("image", serve_image)["Healthcheck"]
    assert isinstance(healthcheck, dict) and healthcheck["Test"][0] == "CMD"
    assert podman.run("healthcheck", "run", served.name).returncode == 0
    assert podman.inspect("container", served.name)["State"]["Health"]["Status"] == "healthy"
    # A model name the store lacks: alive, never ready, so the same probe must fail.
    broken = start(podman, serve_image, "serve-image-unready", "MODEL_NAME=no-such-model")
    try:
        wait_http(f"{broken.url}/livez")
        assert httpx.get(f"{broken.url}/readyz", timeout=5).status_code == 503
        probe = podman.run("healthcheck", "run", broken.name)
        assert probe.returncode != 0
    finally:
        podman.run("rm", "--force", broken.name)


def test_serve_image_has_no_tensorflow_and_no_training_code(
    podman: Podman, serve_image: str
) -> None:
    listing = podman.ok(
        "run", "--rm", *HARDENED, serve_image, "python", "-c",
        "import importlib.metadata as m, importlib.util as u, json; print(json.dumps(["
        "sorted(d.metadata['Name'].lower() for d in m.distributions()),"
        "[name for name in ('tensorflow', 'keras', 'training') if u.find_spec(name)]]))",
    )  # fmt: skip
    distributions, importable = json.loads(listing)
    assert {"onnxruntime", "fastapi", "uvicorn", "stock-lstm-service"} <= set(distributions)
    assert not {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx"} & set(distributions)
    assert importable == []


def test_serve_image_size_stays_within_budget(podman: Podman, serve_image: str) -> None:
    size = podman.inspect("image", serve_image)["Size"]
    assert isinstance(size, int) and 0 < size < MAX_SERVE_IMAGE_BYTES, size
