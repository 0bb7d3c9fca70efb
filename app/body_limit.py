"""Caps request bodies at MAX_BODY_BYTES, counting the bytes actually received, and their
arrival at BODY_TIMEOUT_SECONDS (408 and close: a client dribbling a body holds its budget).

Counting received bytes (not trusting Content-Length) caps chunked bodies too. The body is read
in full before the app runs, so an oversized request is answered with the service's JSON 413
before any endpoint sees it. Starlette's own limiter answers some 413s in plain text instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response
from app.http_protocol import BODY_ARRIVED


class BodyReader:
    """Reads one HTTP request body up to `max_bytes` within `timeout_seconds`, answering 413 or
    408 itself when it cannot."""

    def __init__(
        self,
        max_bytes: int,
        timeout_seconds: float | None = None,
        on_timeout: Callable[[], None] | None = None,
    ):
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self.on_timeout = on_timeout

    async def reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the 413 of a body above `max_bytes`."""
        response = error_response(
            413,
            "payload_too_large",
            f"request body is larger than the limit of {self.max_bytes} bytes",
        )
        await response(scope, receive, send)

    async def _time_out(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on_timeout is not None:
            self.on_timeout()
        response = error_response(
            408,
            "request_timeout",
            f"request body did not arrive within {self.timeout_seconds:g} s",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> list[bytes] | None:
        """The body's chunks, or None when it was refused or the client went away."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self.reject(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks

    async def read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None when it was answered (413, 408) or the client went away."""
        try:
            if scope.get(BODY_ARRIVED):  # all in memory: no deadline to arm and cancel
                chunks = await self._read(scope, receive, send)
            else:
                async with asyncio.timeout(self.timeout_seconds):
                    chunks = await self._read(scope, receive, send)
        except TimeoutError:
            await self._time_out(scope, receive, send)
            return None
        if chunks is None:
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands `body` over once, as one message, then defers to `receive`."""
    pending: bytes | None = body

    async def replay() -> Message:
        nonlocal pending
        if pending is not None:
            # Handed over once, not kept here: the app holds the only copy.
            message: Message = {"type": "http.request", "body": pending, "more_body": False}
            pending = None
            return message
        return await receive()

    return replay


class BodyLimitMiddleware:
    """Reads each HTTP request body up to `max_bytes`, then replays it to the app."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_seconds: float | None = None,
        on_timeout: Callable[[], None] | None = None,
    ):
        self.app = app
        self.reader = BodyReader(max_bytes, timeout_seconds, on_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.reader.max_bytes:
            await self.reader.reject(scope, receive, send)
            return
        body = await self.reader.read(scope, receive, send)
        if body is None:
            return
        replay = replaying(body, receive)
        del body  # the app holds the only reference: it may free a large body early
        await self.app(scope, replay, send)
