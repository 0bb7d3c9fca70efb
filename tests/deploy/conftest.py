"""Fixtures for the deploy tests: the parsed Dockerfile, .dockerignore and compose config."""

from __future__ import annotations

import json
import subprocess

import pytest
from deploy_spec import COMPOSE_BINARY, REPO_ROOT, DockerIgnore, Stage, parse_dockerfile

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
