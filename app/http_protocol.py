"""uvicorn's httptools protocol with the bounds uvicorn does not have: a deadline for each
request's head, a cap on its size, a cap on open connections, and the idle keep-alive time;
its access log written after the response instead of before it; and word to the app that a
request's body has arrived.

uvicorn times out idle keep-alive connections but not one that sends a partial request head
and stops: 3,000 of them stayed open indefinitely. Select it with
`uvicorn app.main:app --http app.http_protocol:BoundedHttpToolsProtocol`; it reads
HEADER_TIMEOUT_SECONDS, MAX_HEADER_BYTES, MAX_CONNECTIONS, KEEP_ALIVE_SECONDS and
RETRY_AFTER_SECONDS.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.errors import error_body
from app.metrics import CONNECTION_EVENTS
from app.settings import Settings, settings_from_environment

# The uvicorn command-line option that selects this protocol.
UVICORN_OPTION = ("--http", "app.http_protocol:BoundedHttpToolsProtocol")
# The scope key holding the set of the server's running requests (uvicorn's own), so a request
# can tell it is the only one (app/batching.py).
SERVER_TASKS = "app.server_tasks"
# The scope key set once the request's whole body has been read from the socket: reading it then
# cannot wait for the client, so it needs no deadline (app/body_limit.py).
BODY_ARRIVED = "app.body_arrived"


def alone_in_server(scope: Scope) -> bool:
    """Whether the request of `scope` is the only one the server is running; False when the
    server does not say (another protocol, or the app called without a server)."""
    tasks = scope.get(SERVER_TASKS)
    return tasks is not None and len(tasks) <= 1


@functools.cache
def _settings() -> Settings:
    return settings_from_environment()


def raw_error(status: int, code: str, message: str, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 error response in the service's JSON shape, closing the connection."""
    body = json.dumps(error_body(code, message)).encode()
    lines = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        *(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()),
        b"\r\n",
        body,
    ]
    return b"".join(lines)


class AfterResponseLog:
    """uvicorn's access logger, writing each line once the event loop has run what it is
    running: uvicorn logs a response before writing it, so the line's formatting and write
    would delay every answer (docs/decisions/0022-access-log-after-the-response.md)."""

    def __init__(self, logger: logging.Logger, loop: asyncio.AbstractEventLoop):
        self.logger = logger
        self.loop = loop

    def info(self, msg: str, *args: object) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.loop.call_soon(self._log, msg, args)

    def _log(self, msg: str, args: tuple[object, ...]) -> None:
        # `logger.info` without its search of the stack for the caller: that would find this
        # method, nothing the line is about.
        logger = self.logger
        logger.handle(
            logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, msg, args, None)
        )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is late (408) or too large (431), and refuses
    connections past the cap (503 `overloaded`, `Retry-After`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _settings()
        # Longer than clients' and proxies' own idle expiry (httpx 5 s, nginx and cloud load
        # balancers 60 s), so the client closes an idle connection first: a server closing it
        # just as the client reuses it drops that request.
        self.timeout_keep_alive = self.limits.keep_alive_seconds
        self.access_logger = AfterResponseLog(self.access_logger, self.loop)  # type: ignore[assignment]
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._close_with(
                503,
                "overloaded",
                f"the server has its maximum of {self.limits.max_connections} open connections",
                "connection_limit",
                {"Retry-After": str(self.limits.retry_after_seconds)},
            )
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._in_head:
            return
        if self._head_bytes > self.limits.max_header_bytes:
            self._close_with(
                431,
                "header_too_large",
                f"request head is larger than {self.limits.max_header_bytes} bytes",
                "header_too_large",
            )
            return
        # Only a head that one read did not complete needs a deadline: most never arm one.
        self._arm_head_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self.scope[SERVER_TASKS] = self.tasks  # type: ignore[literal-required]
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.cycle.scope[BODY_ARRIVED] = True  # type: ignore[literal-required]

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(
                self.limits.header_timeout_seconds, self._head_timed_out
            )

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._in_head:
            self._close_with(
                408,
                "request_timeout",
                f"request head did not arrive within {self.limits.header_timeout_seconds:g} s",
                "header_timeout",
            )

    def _close_with(
        self,
        status: int,
        code: str,
        message: str,
        event: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._cancel_head_deadline()
        if self.transport.is_closing():
            return
        CONNECTION_EVENTS[event] += 1
        self.transport.write(raw_error(status, code, message, headers or {}))
        self.transport.close()
