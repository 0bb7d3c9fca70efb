"""Admission control: a budget of request-body bytes for heavy requests in flight.

A request is heavy when its body may exceed ADMISSION_LIGHT_BYTES (a CSV upload, a big batch):
what it costs to parse, predict and answer grows with its body. It takes its declared
Content-Length (MAX_BODY_BYTES for a chunked body) from the budget before its body is read,
waits at most ADMISSION_WAIT_SECONDS for room, and is otherwise answered 503 `overloaded` with
`Retry-After` at once. Light requests (one-window /predict, health, metrics) never wait here.
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_response
from app.memory import give_back_free_memory
from app.metrics import ServiceMetrics


class AdmissionBudget:
    """Bytes in flight against a fixed budget, granted first come, first served."""

    def __init__(self, budget_bytes: int, metrics: ServiceMetrics):
        self.budget_bytes = budget_bytes
        self.in_flight = 0
        self._metrics = metrics
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def _fits(self, cost: int) -> bool:
        return self.in_flight + cost <= self.budget_bytes

    def _take(self, cost: int) -> None:
        self.in_flight += cost
        self._metrics.admission_bytes.set(self.in_flight)

    async def acquire(self, cost: int, wait_seconds: float) -> bool:
        """Take `cost` bytes, waiting up to `wait_seconds` behind earlier requests; False when
        there is no room by then."""
        if not self._waiters and self._fits(cost):
            self._take(cost)
            return True
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (cost, granted)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(granted), wait_seconds)
        except TimeoutError:
            pass
        except asyncio.CancelledError:  # the client went away while waiting
            if granted.done():
                self.release(cost)
            else:
                self._withdraw(entry)
            raise
        if granted.done():  # also when granted just as the wait ran out
            return True
        self._withdraw(entry)
        return False

    def _withdraw(self, entry: tuple[int, asyncio.Future[None]]) -> None:
        self._waiters.remove(entry)
        self._grant_waiters()  # a big request leaving the queue may let smaller ones in

    def release(self, cost: int) -> None:
        """Give `cost` bytes back and admit the waiters that now fit, in order."""
        self.in_flight -= cost
        self._metrics.admission_bytes.set(self.in_flight)
        self._grant_waiters()

    def _grant_waiters(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            cost, granted = self._waiters.pop(0)
            self._take(cost)
            granted.set_result(None)


class AdmissionMiddleware:
    """Runs heavy requests within the budget; refuses the rest with 503 `overloaded`."""

    def __init__(
        self,
        app: ASGIApp,
        budget: AdmissionBudget,
        *,
        light_bytes: int,
        max_body_bytes: int,
        wait_seconds: float,
        retry_after_seconds: int,
        metrics: ServiceMetrics,
    ):
        self.app = app
        self.budget = budget
        self.light_bytes = light_bytes
        self.max_body_bytes = max_body_bytes
        self.wait_seconds = wait_seconds
        self.retry_after_seconds = retry_after_seconds
        self.metrics = metrics

    def cost(self, scope: Scope) -> int:
        """The bytes a request takes from the budget (0: light, or refused by the body limit)."""
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit():
            size = int(declared)
        elif "transfer-encoding" in headers:
            size = self.max_body_bytes
        else:
            size = 0
        return size if self.light_bytes < size <= self.max_body_bytes else 0

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.rejected.labels("overloaded").inc()
        response = error_response(
            503,
            "overloaded",
            "the server is at its budget for large requests; retry after "
            f"{self.retry_after_seconds} s",
            headers={"Retry-After": str(self.retry_after_seconds)},
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cost = self.cost(scope) if scope["type"] == "http" else 0
        if cost == 0:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if not await self.budget.acquire(cost, self.wait_seconds):
            await self._refuse(scope, receive, send)
            return
        self.metrics.admission_wait.observe(time.perf_counter() - started)
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.release(cost)
            if self.budget.in_flight == 0:
                await give_back_free_memory()
