"""Security boundaries, tested against real servers: admin endpoints are off without a token and
refuse missing or wrong tokens; no name or version input can reach outside the store.

The constant-time comparison, the absence of pickle and Keras' safe mode are checked in the
sources (test_supply_chain.py); the Lambda-layer bundle is refused in test_fault_injection.py;
non-root user and read-only root filesystem are tests/deploy/test_deploy_files.py's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_harness import running_server

from bench.server import REPO_ROOT, Server, free_port, uvicorn_command
from model_store import InvalidNameError, InvalidVersionError, ManifestError, ModelStore

TOKEN = "correct-horse-battery-staple-4f9c"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.slow


def server_with(env: dict[str, str], store: Path, log: Path) -> Iterator[Server]:
    """A ready server on the read-only tiny store (nothing here writes to the store)."""
    with running_server(
        {"MODEL_STORE_DIR": str(store), "MODEL_NAME": "tiny", **env}, log
    ) as server:
        yield server


@pytest.fixture(scope="module")
def guarded(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """ADMIN_TOKEN set."""
    yield from server_with(
        {"ADMIN_TOKEN": TOKEN}, tiny_store, tmp_path_factory.mktemp("admin") / "log"
    )


@pytest.fixture(scope="module", params=["unset", "empty"])
def unguarded(
    request: pytest.FixtureRequest, tiny_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """ADMIN_TOKEN unset, or set to the empty string (which must not mean "empty token")."""
    env = {} if request.param == "unset" else {"ADMIN_TOKEN": ""}
    yield from server_with(env, tiny_store, tmp_path_factory.mktemp("no-admin") / "log")


@pytest.mark.parametrize(
    ("label", "headers"),
    [
        ("no header", {}),
        ("bearer without token", {"Authorization": "Bearer"}),
        ("wrong scheme", {"Authorization": f"Basic {TOKEN}"}),
        ("token without scheme", {"Authorization": TOKEN}),
        ("wrong token", {"Authorization": "Bearer not-the-token"}),
        ("token prefix", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
        ("token plus a byte", {"Authorization": f"Bearer {TOKEN}x"}),
        ("token in other case", {"Authorization": f"Bearer {TOKEN.upper()}"}),
        ("token in another header", {"X-Admin-Token": TOKEN}),
    ],
)
def test_admin_refuses_missing_or_wrong_tokens_with_401(
    label: str, headers: dict[str, str], guarded: Server
) -> None:
    for response in (
        guarded.client.post("/admin/reload", headers=headers),
        guarded.client.post("/admin/pin", json={"version": 1}, headers=headers),
    ):
        assert response.status_code == 401, label
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert guarded.served_version() == 1


def test_admin_accepts_the_right_token(guarded: Server) -> None:
    assert guarded.client.post("/admin/reload", headers=BEARER).status_code == 200
    # The scheme is case-insensitive (RFC 7235); the token is not.
    lower = {"Authorization": f"bearer {TOKEN}"}
    assert guarded.client.post("/admin/reload", headers=lower).status_code == 200


def test_admin_is_off_without_a_token_even_for_a_guessed_one(unguarded: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer None"}):
        response = unguarded.client.post("/admin/reload", headers=headers)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "admin_disabled"
        assert "ADMIN_TOKEN is not set" in error["message"]
    assert unguarded.served_version() == 1


@pytest.mark.parametrize(
    "version",
    ["../1", "1/../../etc", "/etc/passwd", "1 ", "01", 0, -1, 1.5, True, None, 10**12, "1e3"],
)
def test_pinned_versions_cannot_name_anything_but_a_version(
    version: object, guarded: Server
) -> None:
    response = guarded.client.post("/admin/pin", json={"version": version}, headers=BEARER)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert guarded.served_version() == 1


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MODEL_NAME", "../tiny", "invalid model name"),
        ("MODEL_NAME", "/etc", "invalid model name"),
        ("MODEL_VERSION", "../1", "invalid version"),
    ],
)
def test_a_server_configured_to_escape_the_store_refuses_to_start(
    variable: str, value: str, named: str, private_store: Path
) -> None:
    env = {"MODEL_STORE_DIR": str(private_store), "MODEL_NAME": "tiny", variable: value}
    result = subprocess.run(
        uvicorn_command(free_port()),
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert named in result.stderr and value in result.stderr


@pytest.mark.parametrize("name", ["..", ".", "../tiny", "tiny/1", "/tmp", "a" * 65, "", "tiny\x00"])
def test_the_store_refuses_names_that_are_not_one_safe_path_component(
    name: str, private_store: Path
) -> None:
    store = ModelStore(private_store / "tiny")  # a root one level down: `..` would reach tiny
    with pytest.raises(InvalidNameError):
        store.versions(name)
    with pytest.raises(InvalidNameError):
        store.publish(name, {"model.onnx": b"x"}, {})
    assert not (private_store / "tiny" / "tiny").exists()


@pytest.mark.parametrize("version", ["../1", "1/..", "-1", "0", "1.0", "0x1", "", " ", "\u0661"])
def test_the_store_refuses_versions_that_are_not_positive_integers(
    version: str, private_store: Path
) -> None:
    with pytest.raises(InvalidVersionError):
        ModelStore(private_store).resolve("tiny", version)


def test_a_bundle_file_name_cannot_escape_its_version_folder(private_store: Path) -> None:
    store = ModelStore(private_store)
    for filename in ("../model.onnx", "sub/model.onnx", "/etc/passwd", "manifest.json"):
        with pytest.raises(ManifestError, match="invalid bundle file name"):
            store.publish("tiny", {filename: b"x"}, {})
    assert store.versions("tiny") == [1]
    assert not (private_store / "model.onnx").exists()
