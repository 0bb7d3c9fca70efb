"""Helpers of the reliability tests: real uvicorn servers on free loopback ports, a load generator.

Every reliability test talks HTTP to a separate `uvicorn app.main:app` process, so what is
measured (status codes, readiness, resident memory, survival) is what a deployment sees.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.http_protocol import UVICORN_OPTION

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
CONCURRENCY = 32


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def vm_rss_kib(pid: int) -> int:
    """Resident memory of `pid` from /proc (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class ServerProcess:
    """`python -m uvicorn app.main:app` with the given environment, on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "LOG_LEVEL": "warning", **env}
        command = [sys.executable, "-m", "uvicorn", "app.main:app", *UVICORN_OPTION]
        command += ["--host", HOST, "--port", str(self.port), "--no-access-log"]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.client = httpx.Client(base_url=self.base_url, timeout=60.0)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        """Resident memory of the server process, MiB."""
        return vm_rss_kib(self.pid) / 1024.0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_until(self, path: str, status: int, timeout_s: float = 90.0) -> httpx.Response:
        """Poll GET `path` until it answers `status`; fail with the server log otherwise."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(
                    f"server exited ({self.process.returncode}) before {path} gave {status}:\n"
                    f"{self.log_text()[-3000:]}"
                )
            try:
                response = self.client.get(path)
                if response.status_code == status:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise AssertionError(
            f"{path} never gave {status} (last: {last}):\n{self.log_text()[-3000:]}"
        )

    def served_version(self) -> int:
        """The version /readyz reports (the server must be ready)."""
        response = self.client.get("/readyz")
        assert response.status_code == 200, response.text
        return int(response.json()["model"]["version"])

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL after 15 s."""
        self.client.close()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running_server(env: dict[str, str], log_path: Path) -> Iterator[ServerProcess]:
    """A server that is ready on entry and stopped on exit."""
    server = ServerProcess(env, log_path)
    try:
        server.wait_until("/readyz", 200)
        yield server
    finally:
        server.stop()


def predict_body(window: int = 40, start: float = 190.0) -> dict[str, list[float]]:
    """A valid /predict body: `window` plausible closes."""
    return {"closes": [round(start + 0.37 * i, 2) for i in range(window)]}


@dataclass
class LoadReport:
    """What a load run saw: status counts, transport errors, versions that answered."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    versions: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        """Transport errors plus answers other than 200."""
        return len(self.errors)

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f} s: statuses {dict(self.statuses)}, "
            f"versions {dict(self.versions)}, first errors {self.errors[:5]}"
        )


async def _load(
    base_url: str,
    report: LoadReport,
    *,
    total: int | None,
    stop: threading.Event,
    concurrency: int,
) -> None:
    body = predict_body()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    issued = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while not stop.is_set() and (total is None or issued < total):
            issued += 1
            try:
                response = await client.post("/predict", json=body)
            except httpx.HTTPError as exc:
                report.errors.append(repr(exc))
            else:
                report.statuses[response.status_code] += 1
                if response.status_code == 200:
                    report.versions[int(response.json()["model"]["version"])] += 1
                else:
                    report.errors.append(f"{response.status_code}: {response.text[:200]}")
            report.requests += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    report.seconds = time.perf_counter() - started


def run_load(base_url: str, total: int, concurrency: int = CONCURRENCY) -> LoadReport:
    """`total` valid /predict requests from `concurrency` keep-alive connections."""
    report = LoadReport()
    never = threading.Event()
    asyncio.run(_load(base_url, report, total=total, stop=never, concurrency=concurrency))
    return report


class BackgroundLoad:
    """Valid /predict traffic from a thread until the `with` block ends."""

    def __init__(self, base_url: str, concurrency: int = 8):
        self.report = LoadReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(
                _load(base_url, self.report, total=None, stop=self._stop, concurrency=concurrency)
            ),
            daemon=True,
        )

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def wait_for_requests(self, count: int, timeout_s: float = 60.0) -> None:
        """Block until at least `count` more requests have completed."""
        target = self.report.requests + count
        deadline = time.monotonic() + timeout_s
        while self.report.requests < target:
            assert time.monotonic() < deadline, f"load stalled: {self.report.summary()}"
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "load thread did not stop"
