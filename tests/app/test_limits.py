"""The resource bounds on a real uvicorn server (sized for CI; no timing assertions): overload
is a 503 `overloaded` with Retry-After, never a 500 or a dropped connection; the head and body
deadlines close slow clients; the head size, connection and row caps answer their errors."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.support import uvicorn_server

pytestmark = pytest.mark.slow

MAX_BODY_BYTES = 200_000
LIMITS = {
    "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    # One heavy request at a time: whoever holds the budget makes every other one wait.
    "ADMISSION_BUDGET_BYTES": str(MAX_BODY_BYTES),
    "ADMISSION_LIGHT_BYTES": "4096",
    "ADMISSION_WAIT_SECONDS": "0.2",
    "RETRY_AFTER_SECONDS": "3",
    "HEADER_TIMEOUT_SECONDS": "1",
    "BODY_TIMEOUT_SECONDS": "6",
    "MAX_HEADER_BYTES": "4096",
    "MAX_CONNECTIONS": "40",
    "KEEP_ALIVE_SECONDS": "1",
    "MAX_FORECAST_ROWS": "2500",
}


def price_csv(rows: int, seed: int = 0) -> bytes:
    """A Yahoo-shaped daily CSV of a random walk, business days from 1990 (no bundle context)."""
    rng = np.random.default_rng(seed)
    days = np.busday_offset("1990-01-01", np.arange(rows), roll="forward")
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, rows)))
    lines = [
        f"{d},{c:.4f},{c:.4f},{c:.4f},{c:.6f},{c:.6f},1000"
        for d, c in zip(days, closes, strict=True)
    ]
    return ("Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def server(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "MODEL_STORE_DIR": str(tiny_store),
        "MODEL_NAME": "tiny",
        "MODEL_VERSION": "latest",
        "MODEL_POLL_SECONDS": "0",
        "PREDICTOR_BACKEND": "onnx",
        "ADMIN_TOKEN": "",
        **LIMITS,
    }
    log = tmp_path_factory.mktemp("limits") / "uvicorn.log"
    with uvicorn_server(env, log) as (base, _process):
        yield base


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(30)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def counter(base: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


@contextmanager
def budget_held(base: str) -> Iterator[socket.socket]:
    """A chunked /forecast whose body never finishes: admitted, it holds the whole budget
    (a chunked body is charged MAX_BODY_BYTES) until the body deadline answers it."""
    sock = socket.create_connection(("127.0.0.1", port_of(base)))
    sock.sendall(
        b"POST /forecast HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n20\r\nDate,Close\n2020-0"
    )
    # The held request is in flight once /metrics shows its bytes.
    for _ in range(200):
        if counter(base, "admission_in_flight_bytes", {}) == MAX_BODY_BYTES:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the chunked upload was never admitted")
    with closing(sock):
        yield sock


def post_csv(base: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{base}/forecast", content=data, headers={"Content-Type": "text/csv"}, timeout=60
    )


def test_overload_is_503_overloaded_with_retry_after_and_light_requests_still_run(
    server: str,
) -> None:
    csv = price_csv(1500)
    assert 4096 < len(csv) <= MAX_BODY_BYTES
    rejected_before = counter(server, "http_requests_rejected_total", {"reason": "overloaded"})
    with budget_held(server) as held, ThreadPoolExecutor(6) as pool:
        # Every transport error would raise here: a dropped connection fails the test.
        answers = list(pool.map(lambda _: post_csv(server, csv), range(6)))
        light = httpx.post(f"{server}/predict", json={"closes": [150.0] * 40})
        assert light.status_code == 200
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "3"
            assert answer.json()["error"]["code"] == "overloaded"
        # The held body never completes: the body deadline answers it and frees the budget.
        timed_out = read_until_closed(held)
    assert timed_out.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in timed_out
    rejected = counter(server, "http_requests_rejected_total", {"reason": "overloaded"})
    assert rejected - rejected_before == 6
    assert counter(server, "http_requests_timed_out_total", {"phase": "body"}) >= 1


def test_accepted_forecast_is_correct_after_an_overload(server: str) -> None:
    csv = price_csv(1500, seed=1)
    answer = post_csv(server, csv)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    closes = np.array([float(line.split(b",")[4]) for line in csv.splitlines()[1:]])
    assert len(body["points"]) == len(closes) - 40
    assert [p["actual"] for p in body["points"]] == closes[40:].tolist()
    # Three points cross-checked against /predict on the same windows.
    for index in (0, 700, len(closes) - 41):
        window = closes[index : index + 40].tolist()
        single = httpx.post(f"{server}/predict", json={"closes": window}).json()
        assert body["points"][index]["predicted"] == pytest.approx(single["next_close"], rel=1e-6)


def test_a_heavy_request_waits_briefly_for_budget_instead_of_failing(server: str) -> None:
    csv = price_csv(1500, seed=2)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: post_csv(server, csv), range(3)))
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 503} and statuses[0] == 200
    for answer in answers:
        if answer.status_code == 503:
            assert answer.json()["error"]["code"] == "overloaded"


def test_too_many_rows_is_413_too_many_rows(server: str) -> None:
    answer = post_csv(server, price_csv(2600))
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["code"] == "too_many_rows"
    assert error["message"] == (
        "CSV has 2600 lines after the header; the limit is 2500 rows (MAX_FORECAST_ROWS)"
    )


def test_a_slow_request_head_is_closed_with_408_while_others_are_served(server: str) -> None:
    before = counter(server, "http_connections_closed_total", {"reason": "header_timeout"})
    slow = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(20)]
    for sock in slow[:10]:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: te")  # the rest of the head never comes
    assert httpx.get(f"{server}/livez").status_code == 200
    for sock in slow:
        with closing(sock):
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"request_timeout"' in answer
    after = counter(server, "http_connections_closed_total", {"reason": "header_timeout"})
    assert after - before == 20


def test_a_slow_head_after_a_first_request_on_the_connection_is_closed_with_408(
    server: str,
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the whole of /livez's JSON answer
            first += sock.recv(65536)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: te")  # the rest of this head never comes
        answer = read_until_closed(sock)
    assert first.startswith(b"HTTP/1.1 200 "), first
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"request_timeout"' in answer


def test_a_small_predict_body_that_stops_arriving_is_closed_with_408(server: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        head = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        sock.sendall(head + b"Content-Length: 100\r\n\r\n" + b'{"closes": [')
        answer = read_until_closed(sock)  # the rest of the body never comes
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"request body did not arrive within 6 s"' in answer


def test_an_oversized_request_head_is_431(server: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 8000)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"header_too_large"' in answer


def test_connections_past_the_cap_get_503_overloaded_with_retry_after(server: str) -> None:
    held = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(45)]
    try:
        refused = [read_until_closed(sock) for sock in held[40:]]
    finally:
        for sock in held:
            sock.close()
    for answer in refused:
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 3\r\n" in answer
        assert b'"overloaded"' in answer
    assert httpx.get(f"{server}/livez").status_code == 200


def read_livez(sock: socket.socket) -> bytes:
    """One whole /livez answer (its head and body may come in two writes)."""
    received = b""
    while not received.endswith(b'"alive"}'):
        chunk = sock.recv(65536)
        assert chunk, f"closed before the answer was complete: {received!r}"
        received += chunk
    return received


def test_an_idle_keep_alive_connection_is_closed_at_keep_alive_seconds_not_before(
    server: str,
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_livez(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.5)  # idle for half of KEEP_ALIVE_SECONDS: still open, and still served
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_livez(sock).startswith(b"HTTP/1.1 200 ")
        answered = time.monotonic()
        assert read_until_closed(sock) == b""  # closed while idle, without an answer
        idle = time.monotonic() - answered
    # The setting, not uvicorn's own 5 s default, closed it.
    assert 0.5 <= idle < 4.0, idle
