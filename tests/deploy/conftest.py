"""Fixtures for the deploy tests: the parsed Dockerfile, .dockerignore and compose config, and
the real engine with the images built once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_spec import COMPOSE_BINARY, REPO_ROOT, DockerIgnore, Stage, parse_dockerfile
from engine import EngineUnavailable, Podman

# The tags docker-compose.yml gives the images it builds.
SERVE_IMAGE = "localhost/stock-lstm-service:serve"
TRAIN_IMAGE = "localhost/stock-lstm-service:train"
BALANCER_IMAGE = "localhost/stock-lstm-balancer:local"

ALL_PROFILES = ("--profile", "train", "--profile", "scale")


@pytest.fixture(scope="session")
def dockerfile() -> dict[str, Stage]:
    """The repo's Dockerfile, parsed into stages."""
    return parse_dockerfile((REPO_ROOT / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def dockerignore() -> DockerIgnore:
    """The repo's .dockerignore."""
    return DockerIgnore.read(REPO_ROOT / ".dockerignore")


@pytest.fixture(scope="session")
def compose_config() -> dict[str, object]:
    """docker-compose.yml with every profile enabled, as the real Compose binary resolves it."""
    result = subprocess.run(
        [str(COMPOSE_BINARY), *ALL_PROFILES, "config", "--format", "json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = json.loads(result.stdout)
    return config


# Seconds each image build took in this session, printed in the terminal summary.
BUILD_TIMES: dict[str, float] = {}


# Why the container tests were skipped, repeated at the end of the run so it cannot go unseen.
ENGINE_UNAVAILABLE: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in ENGINE_UNAVAILABLE:
        terminalreporter.section("container tests SKIPPED", red=True, bold=True)
        terminalreporter.write_line(reason, red=True, bold=True)
    if BUILD_TIMES:
        terminalreporter.section("podman image builds")
        for step, seconds in BUILD_TIMES.items():
            terminalreporter.write_line(f"{step}: {seconds:.0f} s")


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """podman on a private storage that starts empty and is wiped (containers, volumes, images,
    networks) when the session ends, or on PODMAN_TEST_STORAGE, whose images are kept; skips every
    container test, saying why, where podman cannot run."""
    kept = os.environ.get("PODMAN_TEST_STORAGE")
    home = Path(kept).resolve() if kept else Path(tempfile.mkdtemp(prefix="stock-lstm-podman-"))
    try:
        engine = Podman.find(home)
    except EngineUnavailable as reason:
        if not kept:
            shutil.rmtree(home, ignore_errors=True)
        ENGINE_UNAVAILABLE.append(f"no usable container engine: {reason}")
        pytest.skip(f"NO CONTAINER ENGINE, image and compose tests skipped: {reason}")
    try:
        yield engine
    finally:
        BUILD_TIMES.update(engine.timings)
        if kept:
            engine.remove_containers_and_volumes()
        else:
            engine.reset()


@pytest.fixture(scope="session")
def base_image(podman: Podman) -> str:
    """The Debian stand-in for the python base (no registry is assumed reachable)."""
    return podman.build_standin_base()


@dataclass
class ImageBuilds:
    """The three images compose names, building in the background."""

    serve: Future[str]
    train: Future[str]
    balancer: Future[str]


@pytest.fixture(scope="session")
def image_builds(podman: Podman, base_image: str) -> Iterator[ImageBuilds]:
    """Builds start when the first test needs an image, two at a time (serve and train, then the
    balancer), so the train image (the longest) builds while tests use the serve image."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="podman-build") as pool:
        balancer_context = REPO_ROOT / "deploy" / "balancer"
        yield ImageBuilds(
            serve=pool.submit(
                podman.build, SERVE_IMAGE, REPO_ROOT, base=base_image, target="serve"
            ),
            train=pool.submit(
                podman.build, TRAIN_IMAGE, REPO_ROOT, base=base_image, target="train"
            ),
            balancer=pool.submit(podman.build, BALANCER_IMAGE, balancer_context, base=base_image),
        )
        # Leaving the block waits for builds still running, before the storage is removed.


@pytest.fixture(scope="session")
def serve_image(image_builds: ImageBuilds) -> str:
    """The Dockerfile's serve target, tagged as compose names it."""
    return image_builds.serve.result()


@pytest.fixture(scope="session")
def train_image(image_builds: ImageBuilds) -> str:
    """The Dockerfile's train target, tagged as compose names it."""
    return image_builds.train.result()


@pytest.fixture(scope="session")
def balancer_image(image_builds: ImageBuilds) -> str:
    """deploy/balancer, tagged as compose names it."""
    return image_builds.balancer.result()
