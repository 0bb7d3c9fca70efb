"""Health, model info, Prometheus metrics, OpenAPI docs, CORS, the body limit and error shape."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from model_store import Bundle
from tests.app.support import app_settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_livez_and_readyz_when_ready(client: TestClient, tiny_bundle: Bundle) -> None:
    assert client.get("/livez").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": {"name": "tiny", "version": 1}}


def test_model_returns_the_served_manifest(client: TestClient, tiny_bundle: Bundle) -> None:
    body = client.get("/model").json()
    manifest = tiny_bundle.manifest
    for key in ("name", "version", "created_at", "window", "feature", "metrics", "data", "scaler"):
        assert body[key] == manifest.to_json()[key]
    assert body["data"]["train"]["sha256"] == manifest.data["train"]["sha256"]
    assert body["evaluation"]["dates"][0] == "2020-01-02"
    assert body["backend"] == "onnx"
    assert body["context"] == manifest.context.to_json() and "files" not in body


def test_models_lists_the_store_and_the_served_version(client: TestClient) -> None:
    overview = client.get("/models").json()
    assert overview["default_model"] == "tiny" and len(overview["models"]) == 1
    body = overview["models"][0]
    assert client.get("/models/tiny/status").json() == body
    assert body["name"] == "tiny" and body["state"] == "serving" and body["loaded"] == [1]
    assert body["served"] == 1 and body["ready"] is True and body["pinned"] is None
    assert body["versions"] == [{"version": 1, "served": True, "loaded": True, "error": None}]
    assert body["last_load_error"] is None


def test_metrics_count_requests_predictions_and_the_served_version(tiny_store: Path) -> None:
    with TestClient(create_app(app_settings(tiny_store))) as client:
        client.post("/predict", json={"windows": [[150.0] * 40] * 3})
        client.post("/predict", json={"closes": [150.0] * 39})
        client.get("/no-such-page")
        values = samples(client.get("/metrics").text)
    route = ("route", "/predict")
    assert values[("http_requests_total", (("method", "POST"), route, ("status", "200")))] == 1
    assert values[("http_requests_total", (("method", "POST"), route, ("status", "422")))] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert values[("http_requests_total", unmatched)] == 1
    assert values[("http_request_duration_seconds_count", (("method", "POST"), route))] == 2
    labels = (("endpoint", "predict"), ("model", "tiny"), ("version", "1"))
    assert values[("predictions_total", labels)] == 3
    assert values[("model_served_version", (("name", "tiny"),))] == 1
    assert values[("model_ready", (("name", "tiny"),))] == 1
    assert values[("model_loaded_versions", (("name", "tiny"),))] == 1


def test_two_apps_keep_separate_metrics(tiny_store: Path) -> None:
    with (
        TestClient(create_app(app_settings(tiny_store))) as first,
        TestClient(create_app(app_settings(tiny_store))) as second,
    ):
        first.post("/predict", json={"closes": [150.0] * 40})
        key = ("predictions_total", (("endpoint", "predict"), ("model", "tiny"), ("version", "1")))
        assert samples(first.get("/metrics").text)[key] == 1
        assert key not in samples(second.get("/metrics").text)


def test_openapi_docs_show_examples(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    predict_body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert set(predict_body["examples"]) == {"one window", "batch"}
    assert len(predict_body["examples"]["one window"]["value"]["closes"]) == 40
    forecast_body = spec["paths"]["/forecast"]["post"]["requestBody"]["content"]
    assert set(forecast_body) == {"multipart/form-data", "text/csv"}


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    assert client.get("/nope").json() == {
        "error": {"code": "not_found", "message": "Not Found", "detail": []}
    }
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_a_body_above_the_limit_gets_413_before_the_endpoint_runs(tiny_store: Path) -> None:
    settings = app_settings(tiny_store, max_body_bytes=1000)
    with TestClient(create_app(settings)) as client:
        small = client.post("/predict", json={"closes": [150.0] * 40})
        assert small.status_code == 200
        big = json.dumps({"windows": [[150.0] * 40] * 5})
        response = client.post(
            "/predict", content=big, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json() == {
            "error": {
                "code": "payload_too_large",
                "message": "request body is larger than the limit of 1000 bytes",
                "detail": [],
            }
        }
        upload = client.post("/forecast", files={"file": ("a.csv", b"x" * 2000, "text/csv")})
        assert upload.status_code == 413


def test_cors_allows_only_the_configured_origin(tiny_store: Path) -> None:
    settings = app_settings(tiny_store, cors_origins=["http://dashboard.example"])
    with TestClient(create_app(settings)) as client:
        allowed = client.options(
            "/predict",
            headers={
                "origin": "http://dashboard.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert allowed.headers["access-control-allow-origin"] == "http://dashboard.example"
        other = client.get("/livez", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_without_configured_origins(client: TestClient) -> None:
    response = client.get("/livez", headers={"origin": "http://dashboard.example"})
    assert "access-control-allow-origin" not in response.headers
