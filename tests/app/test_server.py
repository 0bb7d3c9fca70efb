"""A real uvicorn server: hot swap under continuous load, a corrupt version refused, chunked
bodies capped, and no TensorFlow library mapped into the serving process."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.server import app_server
from model_store import Bundle
from tests.app.support import Load, place_corrupt_version, republish, wait_for

pytestmark = pytest.mark.slow

MAX_BODY_BYTES = 100_000


@pytest.fixture
def server(store_copy: Path, tmp_path: Path) -> Iterator[tuple[str, int]]:
    env = {
        "MODEL_STORE_DIR": str(store_copy),
        "MODEL_NAME": "tiny",
        "MODEL_VERSION": "latest",
        "MODEL_POLL_SECONDS": "0.2",
        "PREDICTOR_BACKEND": "onnx",
        "ADMIN_TOKEN": "",
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    with app_server(env, tmp_path / "uvicorn.log", "--log-level", "warning") as running:
        yield running.base_url, running.pid


def metric(base: str, name: str, labels: dict[str, str]) -> float | None:
    text = httpx.get(f"{base}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_new_version_swaps_in_and_corrupt_one_is_refused_without_a_failed_request(
    server: tuple[str, int], store_copy: Path, tiny_bundle: Bundle
) -> None:
    base, _ = server
    with Load(base) as load:
        wait_for(lambda: len(load.results) >= 20)
        assert load.last_version() == 1

        republish(tiny_bundle, store_copy)
        wait_for(lambda: load.last_version() == 2)
        seen_after_swap = len(load.results)

        corrupt = place_corrupt_version(tiny_bundle, store_copy)
        models = lambda: httpx.get(f"{base}/models/tiny/status").json()  # noqa: E731
        wait_for(lambda: models()["last_load_error"] is not None)
        time.sleep(1.0)  # several more polls: the corrupt version must stay refused

    failures = [result for result in load.results if result[0] != 200]
    assert failures == []
    versions = [version for _, version in load.results]
    assert set(versions) == {1, 2}
    # Once version 2 answered, no request sent after that got version 1: the swap is atomic.
    # (Completion order alone can interleave: a request sent before the swap may finish after.)
    first_two_answered = min(done for _, done, version in load.timings if version == 2)
    assert all(version == 2 for sent, _, version in load.timings if sent > first_two_answered)
    assert len(load.results) > seen_after_swap

    status = models()
    assert status["served"] == 2
    assert status["last_load_error"]["version"] == corrupt
    assert (
        status["last_load_error"]["message"] == f"tiny v{corrupt}: sha256 mismatch for model.onnx"
    )
    refused = {
        "version": corrupt,
        "served": False,
        "loaded": False,
        "error": status["last_load_error"]["message"],
    }
    assert refused in status["versions"]
    assert metric(base, "model_served_version", {"name": "tiny"}) == 2
    labels = {"name": "tiny", "version": str(corrupt)}
    assert metric(base, "model_load_failures_total", labels) == 1  # refused once, not every poll


def test_a_chunked_body_above_the_limit_gets_413(server: tuple[str, int]) -> None:
    base, _ = server

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent with Transfer-Encoding: chunked
        for _ in range(15):
            yield b" " * 10_000

    response = httpx.post(
        f"{base}/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    declared = httpx.post(
        f"{base}/forecast",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"content-type": "text/csv"},
    )
    assert declared.status_code == 413
    assert httpx.get(f"{base}/readyz").status_code == 200


def test_the_serving_process_maps_no_tensorflow_library(
    server: tuple[str, int], shared_data: Path
) -> None:
    base, pid = server
    january = (shared_data / "FB_test_data.csv").read_bytes()
    assert httpx.post(f"{base}/predict", json={"closes": [150.0] * 40}).status_code == 200
    forecast = httpx.post(f"{base}/forecast", content=january, headers={"content-type": "text/csv"})
    assert forecast.status_code == 200
    maps = " ".join(mapped.path for mapped in psutil.Process(pid).memory_maps())
    assert "onnxruntime" in maps  # the check can see shared libraries at all
    assert "tensorflow" not in maps


def test_a_client_that_leaves_mid_body_is_not_counted_as_a_server_error(
    server: tuple[str, int],
) -> None:
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"closes": [1'
        )
    left = {"route": "unmatched", "method": "POST", "status": "499"}
    wait_for(lambda: metric(base, "http_requests_total", left) == 1)
    assert metric(base, "http_requests_total", {**left, "status": "500"}) is None
    assert httpx.get(f"{base}/readyz").status_code == 200
