"""Helpers of the reliability tests: quiet real uvicorn servers (bench.server's), a load generator.

Every reliability test talks HTTP to a separate `uvicorn app.main:app` process, so what is
measured (status codes, readiness, resident memory, survival) is what a deployment sees.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.server import REPO_ROOT as REPO_ROOT  # re-exported for tests written against it
from bench.server import Server, app_server
from bench.server import free_port as free_port

CONCURRENCY = 32


ServerProcess = Server  # the name tests written against this module use


def running_server(env: dict[str, str], log_path: Path) -> Server:
    """A quiet app server (warnings only, no access log) with `env` on top of this process'
    environment: ready on entering the `with` block, stopped on leaving it."""
    return app_server(
        {"LOG_LEVEL": "warning", **env}, log_path, "--no-access-log", ready_timeout_s=90.0
    )


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
