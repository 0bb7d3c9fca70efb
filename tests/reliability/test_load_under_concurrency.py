"""A test-sized load run: a few thousand /predict requests from 32 concurrent connections against
a real server, with zero errors and the server still ready (and answering correctly) afterwards.
The 10-minute version with an RSS-flatness check is `make soak` (bench/soak.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_harness import CONCURRENCY, predict_body, run_load

from bench.server import Server

REQUESTS = 3000

pytestmark = pytest.mark.slow


def test_thousands_of_concurrent_requests_without_a_single_error(
    private_store: Path, start_server: Callable[..., Server]
) -> None:
    server = start_server(private_store, "tiny")
    expected = server.client.post("/predict", json=predict_body()).json()["next_close"]
    rss_before = server.rss_mib()

    report = run_load(server.base_url, REQUESTS, CONCURRENCY)

    assert report.requests == REQUESTS
    assert report.failures == 0, report.summary()
    assert report.statuses == {200: REQUESTS}
    assert report.versions == {1: REQUESTS}
    assert server.client.get("/readyz").status_code == 200
    # Same answer after the storm: no state leaked between concurrent requests.
    assert server.client.post("/predict", json=predict_body()).json()["next_close"] == expected
    metrics = server.client.get("/metrics").text
    assert (
        f'http_requests_total{{method="POST",route="/predict",status="200"}} {REQUESTS + 2}.0'
        in metrics
    )
    print(
        f"{REQUESTS} requests x {CONCURRENCY} connections in {report.seconds:.1f} s "
        f"({REQUESTS / report.seconds:.0f}/s), RSS {rss_before:.0f} -> {server.rss_mib():.0f} MiB"
    )
