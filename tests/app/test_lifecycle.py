"""Model lifecycle in-process: verification at startup, first-bundle pickup, admin reload/pin."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model_store import Bundle
from tests.app.support import app_settings, place_corrupt_version, republish, wait_for

TOKEN = "test-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def served_version(client: TestClient) -> int | None:
    served: int | None = client.get("/models/tiny/status").json()["served"]
    return served


def test_a_tampered_bundle_is_refused_and_the_process_stays_alive(store_copy: Path) -> None:
    onnx = store_copy / "tiny" / "1" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[100] ^= 0x01
    onnx.write_bytes(bytes(data))
    with TestClient(create_app(app_settings(store_copy))) as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"] == {
            "code": "not_ready",
            "message": "model not ready: tiny v1: sha256 mismatch for model.onnx",
            "detail": [],
        }
        predict = client.post("/predict", json={"closes": [150.0] * 40})
        assert predict.status_code == 503
        models = client.get("/models/tiny/status").json()
        assert models["ready"] is False
        assert models["last_load_error"]["version"] == 1
        assert models["last_load_error"]["message"] == "tiny v1: sha256 mismatch for model.onnx"
        assert models["versions"] == [
            {
                "version": 1,
                "served": False,
                "loaded": False,
                "error": "tiny v1: sha256 mismatch for model.onnx",
            }
        ]
        assert (
            'model_load_failures_total{name="tiny",version="1"} 1.0' in client.get("/metrics").text
        )


def test_an_extra_file_in_the_bundle_is_refused(store_copy: Path) -> None:
    (store_copy / "tiny" / "1" / "payload.pkl").write_bytes(b"not in the manifest")
    with TestClient(create_app(app_settings(store_copy))) as client:
        message = client.get("/readyz").json()["error"]["message"]
        assert message == "model not ready: tiny v1: unexpected file payload.pkl"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"model_name": "nobody"}, "model 'nobody' has no versions in"),
        ({"model_version": "7"}, "model 'tiny' has no version 7 (available: 1)"),
    ],
)
def test_an_unknown_model_or_version_is_not_ready_with_the_reason(
    tiny_store: Path, overrides: dict[str, str], reason: str
) -> None:
    with TestClient(create_app(app_settings(tiny_store, **overrides))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert reason in response.json()["error"]["message"]


def test_with_no_bundle_at_startup_the_first_published_one_is_picked_up(
    tmp_path: Path, tiny_bundle: Bundle
) -> None:
    store = tmp_path / "empty-store"
    with TestClient(create_app(app_settings(store, model_poll_seconds=0.1))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "does not exist" in response.json()["error"]["message"]
        republish(tiny_bundle, store)
        wait_for(lambda: client.get("/readyz").status_code == 200)
        assert client.post("/predict", json={"closes": [150.0] * 40}).status_code == 200


def test_admin_is_disabled_without_a_token(client: TestClient) -> None:
    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "admin_disabled",
        "message": "admin endpoints are disabled: ADMIN_TOKEN is not set",
        "detail": [],
    }


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}]
)
def test_admin_needs_the_bearer_token(tiny_store: Path, headers: dict[str, str]) -> None:
    with TestClient(create_app(app_settings(tiny_store, admin_token=TOKEN))) as client:
        for path, body in (("/admin/reload", None), ("/admin/pin", {"version": 1})):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"


def test_reload_pin_and_rollback(store_copy: Path, tiny_bundle: Bundle) -> None:
    with TestClient(create_app(app_settings(store_copy, admin_token=TOKEN))) as client:
        assert client.post("/admin/reload", headers=AUTH).json() == {
            "changed": False,
            "served": {"name": "tiny", "version": 1},
            "pinned": None,
        }
        republish(tiny_bundle, store_copy)
        assert served_version(client) == 1  # polling is off: nothing changes on its own
        reload = client.post("/admin/reload", headers=AUTH).json()
        assert reload["changed"] is True and reload["served"]["version"] == 2

        rollback = client.post("/admin/pin", json={"version": 1}, headers=AUTH).json()
        assert rollback == {"changed": True, "served": {"name": "tiny", "version": 1}, "pinned": 1}
        republish(tiny_bundle, store_copy)
        assert client.post("/admin/reload", headers=AUTH).json()["served"]["version"] == 1
        predict = client.post("/predict", json={"closes": [150.0] * 40}).json()
        assert predict["model"]["version"] == 1

        unpin = client.post("/admin/pin", json={"version": "latest"}, headers=AUTH).json()
        assert unpin == {"changed": True, "served": {"name": "tiny", "version": 3}, "pinned": None}


def test_pinning_a_missing_or_invalid_version_is_refused(tiny_store: Path) -> None:
    with TestClient(create_app(app_settings(tiny_store, admin_token=TOKEN))) as client:
        missing = client.post("/admin/pin", json={"version": 9}, headers=AUTH)
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "model 'tiny' has no version 9 (available: 1)"
        for bad in ({"version": 0}, {"version": "1"}, {"version": 1.5}, {}):
            assert client.post("/admin/pin", json=bad, headers=AUTH).status_code == 422


def test_a_corrupt_version_is_refused_on_reload_and_the_old_one_keeps_serving(
    store_copy: Path, tiny_bundle: Bundle
) -> None:
    with TestClient(create_app(app_settings(store_copy, admin_token=TOKEN))) as client:
        corrupt = place_corrupt_version(tiny_bundle, store_copy)
        response = client.post("/admin/reload", headers=AUTH)
        assert response.status_code == 409
        assert response.json()["error"] == {
            "code": "load_failed",
            "message": f"tiny v{corrupt}: sha256 mismatch for model.onnx",
            "detail": [],
        }
        assert client.get("/readyz").json()["model"]["version"] == 1
        assert client.post("/predict", json={"closes": [150.0] * 40}).status_code == 200
        pin = client.post("/admin/pin", json={"version": corrupt}, headers=AUTH)
        assert pin.status_code == 409
        assert client.get("/models/tiny/status").json()["pinned"] is None
