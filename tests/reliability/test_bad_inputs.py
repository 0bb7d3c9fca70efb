"""The bad-input corpus against a real server: every file in corpus/ plus generated giants (20 MB
uploads, multipart bombs, pathological boundaries, 10 MB JSON with and without Content-Length).

Each bad input must get the status its operation documents in /openapi.json, the error shape, and
a message naming the problem (corpus/expected.json); the server must stay ready, never log a
traceback, and its resident memory must stay flat when the whole corpus is replayed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from reliability_harness import running_server

from bench.server import Server

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED: dict[str, dict[str, object]] = json.loads((CORPUS / "expected.json").read_text())
MIB = 1024 * 1024
BOUNDARY = "corpus-boundary-7MA4YWxkTrZu0gW"
# Replaying the corpus must not grow the server's resident memory by more than this (after a
# warm-up pass has filled the allocator's pools and the import caches).
RSS_GROWTH_LIMIT_MIB = 30.0
REPLAYS = 3

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class BadRequest:
    """One bad request and the answer it must get."""

    name: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    code: str
    message: str
    chunked: bool = False  # send without Content-Length (Transfer-Encoding: chunked)

    def send(self, client: httpx.Client) -> httpx.Response:
        content: bytes | Iterator[bytes] = self.body
        if self.chunked:
            content = (self.body[i : i + 256 * 1024] for i in range(0, len(self.body), 256 * 1024))
        return client.post(self.path, content=content, headers=self.headers)


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body from (field name, filename or None, content) parts."""
    chunks = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
        chunks.append(content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}


def corpus_cases() -> list[BadRequest]:
    """Every corpus file: CSVs both as a multipart upload and as a raw text/csv body."""
    cases = []
    for key, expected in sorted(EXPECTED.items()):
        data = (CORPUS / key).read_bytes()
        status, code, message = (
            int(expected["status"]),
            str(expected["code"]),
            str(expected["message"]),
        )
        if key.startswith("forecast/"):
            upload = multipart(("file", Path(key).name, data))
            cases.append(
                BadRequest(
                    f"{key} (multipart)", "/forecast", MULTIPART, upload, status, code, message
                )
            )
            cases.append(
                BadRequest(f"{key} (text/csv)", "/forecast", CSV, data, status, code, message)
            )
        else:
            cases.append(BadRequest(key, "/predict", JSON, data, status, code, message))
    return cases


def generated_cases() -> list[BadRequest]:
    """The giants and the multipart attacks, built in memory rather than committed."""
    rows = b"".join(b"2021-01-04,100.0\n" for _ in range(20 * MIB // 17))
    csv_20mb = b"Date,Close\n" + rows
    small_csv = b"Date,Close\n2021-01-04,100.0\n"
    closes_10mb = b'{"closes": [' + b",".join([b"100.25"] * 1_500_000) + b"]}"
    closes_20mb = b'{"closes": [' + b",".join([b"100.25"] * 3_000_000) + b"]}"
    too_large = "request body is larger than the limit"
    return [
        BadRequest("20 MB upload (multipart)", "/forecast", MULTIPART, multipart(("file", "big.csv", csv_20mb)), 413, "payload_too_large", too_large),
        BadRequest("20 MB upload (multipart, chunked)", "/forecast", MULTIPART, multipart(("file", "big.csv", csv_20mb)), 413, "payload_too_large", too_large, chunked=True),
        BadRequest("20 MB raw CSV (chunked)", "/forecast", CSV, csv_20mb, 413, "payload_too_large", too_large, chunked=True),
        BadRequest("multipart bomb: 5000 fields", "/forecast", MULTIPART, multipart(*((f"f{i}", None, b"x") for i in range(5000))), 400, "bad_request", "Too many fields"),
        BadRequest("multipart bomb: 5000 files", "/forecast", MULTIPART, multipart(*(("file", f"{i}.csv", b"x") for i in range(5000))), 400, "bad_request", "Too many files"),
        BadRequest("multipart: 5000-character boundary", "/forecast", {"Content-Type": f"multipart/form-data; boundary={'b' * 5000}"}, multipart(("file", "a.csv", small_csv), boundary="b" * 5000), 400, "bad_request", "multipart"),
        BadRequest("multipart: 3 MB of CRLF before the first boundary", "/forecast", MULTIPART, b"\r\n" * (3 * MIB // 2) + multipart(("file", "a.csv", small_csv)), 400, "invalid_csv", "need at least 41 rows"),
        BadRequest("multipart: 3 MB after the last boundary", "/forecast", MULTIPART, multipart(("file", "a.csv", small_csv)) + b"z" * 3 * MIB, 400, "invalid_csv", "need at least 41 rows"),
        BadRequest("multipart: no boundary parameter", "/forecast", {"Content-Type": "multipart/form-data"}, multipart(("file", "a.csv", small_csv)), 400, "bad_request", "boundary"),
        BadRequest("multipart: body is not multipart", "/forecast", MULTIPART, b"A" * 100_000, 400, "bad_request", "multipart"),
        BadRequest("multipart: unterminated part", "/forecast", MULTIPART, f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n".encode() + small_csv, 400, "invalid_csv", ""),
        BadRequest("multipart: no 'file' field", "/forecast", MULTIPART, multipart(("data", None, small_csv)), 400, "invalid_csv", "multipart body has no field 'file'"),
        BadRequest("forecast: JSON content type", "/forecast", JSON, b'{"csv": "Date,Close"}', 415, "unsupported_media_type", "multipart/form-data"),
        BadRequest("predict: 10 MB body (Content-Length)", "/predict", JSON, closes_10mb, 422, "invalid_input", "closes must hold 40 closes (got 1500000)"),
        BadRequest("predict: 10 MB body (chunked)", "/predict", JSON, closes_10mb, 422, "invalid_input", "closes must hold 40 closes (got 1500000)", chunked=True),
        BadRequest("predict: 20 MB body (Content-Length)", "/predict", JSON, closes_20mb, 413, "payload_too_large", too_large),
        BadRequest("predict: 20 MB body (chunked)", "/predict", JSON, closes_20mb, 413, "payload_too_large", too_large, chunked=True),
        BadRequest("predict: text/plain content type", "/predict", {"Content-Type": "text/plain"}, b'{"closes": [1.0]}', 415, "unsupported_media_type", "Content-Type must be application/json"),
        BadRequest("predict: no content type", "/predict", {}, b'{"closes": [1.0]}', 415, "unsupported_media_type", "Content-Type must be application/json"),
    ]  # fmt: skip


CASES = corpus_cases() + generated_cases()


@pytest.fixture(scope="module")
def corpus_server(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with the shipped defaults (MAX_BODY_BYTES 16 MiB) for the whole corpus."""
    env = {"MODEL_STORE_DIR": str(tiny_store), "MODEL_NAME": "tiny"}
    with running_server(env, tmp_path_factory.mktemp("corpus") / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def documented(corpus_server: Server) -> dict[str, set[int]]:
    """Documented statuses of each POST operation, from the server's own OpenAPI document."""
    paths = corpus_server.client.get("/openapi.json").json()["paths"]
    return {
        path: {int(status) for status in paths[path]["post"]["responses"]}
        for path in paths
        if "post" in paths[path]
    }


def test_corpus_is_large_and_every_file_has_an_expectation() -> None:
    files = {
        f"{folder.name}/{path.name}"
        for folder in CORPUS.iterdir()
        if folder.is_dir()
        for path in folder.iterdir()
    }
    assert files == set(EXPECTED)
    assert len(files) >= 40
    sent = {(case.path, tuple(case.headers.items()), case.body, case.chunked) for case in CASES}
    assert len(sent) == len(CASES), "two cases send the same request"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_gets_its_documented_4xx_naming_the_problem(
    case: BadRequest, corpus_server: Server, documented: dict[str, set[int]]
) -> None:
    started = time.perf_counter()
    response = case.send(corpus_server.client)
    elapsed = time.perf_counter() - started
    assert response.status_code == case.status, response.text[:500]
    assert response.status_code in documented[case.path], f"{response.status_code} is undocumented"
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == case.code
    assert case.message in error["message"]
    # Generous: a parser DoS (CVE-2024-53981 and friends) shows up as tens of seconds.
    assert elapsed < 10.0, f"{case.name} took {elapsed:.1f} s"
    assert corpus_server.client.get("/readyz").status_code == 200


def test_memory_stays_flat_and_the_server_stays_ready_over_corpus_replays(
    corpus_server: Server,
) -> None:
    def replay() -> None:
        for case in CASES:
            assert case.send(corpus_server.client).status_code == case.status, case.name

    replay()  # warm-up: allocator pools, lazily built schemas, first-use caches
    baseline = corpus_server.rss_mib()
    for _ in range(REPLAYS):
        replay()
    growth = corpus_server.rss_mib() - baseline
    assert growth < RSS_GROWTH_LIMIT_MIB, f"RSS grew {growth:.1f} MiB over {REPLAYS} replays"
    assert corpus_server.client.get("/readyz").status_code == 200
    assert corpus_server.alive()
    assert "Traceback" not in corpus_server.log_text(), corpus_server.log_text()[-3000:]
    print(
        f"{len(CASES)} bad inputs x {REPLAYS + 1} replays: RSS {baseline:.1f} -> {baseline + growth:.1f} MiB"
    )
