"""What the bounded protocol does on a real uvicorn server (app/http_protocol.py): it tells a
request whether it is the only one the server is running and whether its body has arrived, and
writes the access log line of a response after the response."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from app.http_protocol import BODY_ARRIVED, BoundedHttpToolsProtocol, alone_in_server
from bench.server import free_port


class AloneProbe:
    """An ASGI app recording, per request path, whether the request was alone in the server;
    `/hold` answers only once `release` is set."""

    def __init__(self) -> None:
        self.alone: dict[str, bool] = {}
        self.holding = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.alone[scope["path"]] = alone_in_server(scope)
        if scope["path"] == "/hold":
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class WriteRecorder:
    """A connection's transport that notes each write in `events` before making it."""

    def __init__(self, transport: asyncio.Transport, events: list[str]):
        self._transport = transport
        self._events = events

    def write(self, data: bytes) -> None:
        self._events.append("head" if data.startswith(b"HTTP/1.1 ") else "body")
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LogRecorder(logging.Handler):
    """Notes each access log line in `events`, in the order of the writes."""

    def __init__(self, events: list[str]):
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(f"log {record.getMessage()}")


def recording_protocol(events: list[str]) -> type[BoundedHttpToolsProtocol]:
    class RecordingProtocol(BoundedHttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(WriteRecorder(transport, events))  # type: ignore[arg-type]

    return RecordingProtocol


@contextmanager
def access_log_into(events: list[str]) -> Iterator[logging.Logger]:
    logger = logging.getLogger("uvicorn.access")
    handler, level = LogRecorder(events), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = False


@contextmanager
def serving(
    app: Any, protocol: type[BoundedHttpToolsProtocol] = BoundedHttpToolsProtocol
) -> Iterator[str]:
    """`app` on a real uvicorn server with the bounded protocol, in a thread; logging is left
    as the caller configured it."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_request_knows_whether_the_server_runs_any_other() -> None:
    app = AloneProbe()
    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/first").status_code == 200
        with httpx.Client(base_url=base, timeout=10) as other:
            held = threading.Thread(target=other.get, args=("/hold",))
            held.start()
            try:
                assert app.holding.wait(10)
                assert client.get("/beside").status_code == 200
            finally:
                app.release.set()
                held.join(10)
        assert client.get("/after").status_code == 200

    assert app.alone == {"/first": True, "/hold": True, "/beside": False, "/after": True}


def test_a_scope_from_no_server_is_never_alone() -> None:
    assert alone_in_server({"type": "http", "path": "/predict"}) is False


class BodyProbe:
    """An ASGI app recording, per request path, whether its body had arrived when the app
    started and once it was read, and the body."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[bool, bool, bytes]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        at_start = bool(scope.get(BODY_ARRIVED))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.seen[scope["path"]] = (at_start, bool(scope.get(BODY_ARRIVED)), body)
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


def answer_on(sock: socket.socket) -> bytes:
    """One BodyProbe answer read from `sock` (its head and body may come in two writes)."""
    answer = b""
    while not answer.endswith(b"\r\n\r\nok"):
        answer += sock.recv(65536)
    return answer


def test_a_request_knows_whether_its_body_has_arrived() -> None:
    app = BodyProbe()
    with serving(app) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = b"POST /%s HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\n"
            sock.sendall(head % b"whole" + b"body")
            assert answer_on(sock).startswith(b"HTTP/1.1 200 ")
            sock.sendall(head % b"late")
            threading.Event().wait(0.2)
            sock.sendall(b"body")
            assert answer_on(sock).startswith(b"HTTP/1.1 200 ")

    assert app.seen == {"/whole": (True, True, b"body"), "/late": (False, True, b"body")}


def test_the_access_log_line_of_a_response_is_written_after_the_response() -> None:
    events: list[str] = []
    with (
        access_log_into(events),
        serving(AloneProbe(), recording_protocol(events)) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        assert client.get("/first").text == "ok"
        assert client.post("/second?level=80").text == "ok"

    line = r'log 127\.0\.0\.1:\d+ - "{} HTTP/1\.1" 200'
    assert events[:3] == ["head", "body", events[2]]
    assert re.fullmatch(line.format("GET /first"), events[2])
    assert events[3:5] == ["head", "body"]
    assert re.fullmatch(line.format(r"POST /second\?level=80"), events[5])
    assert len(events) == 6


def test_a_disabled_access_log_writes_no_line() -> None:
    events: list[str] = []
    with access_log_into(events) as logger:
        logger.disabled = True  # what ACCESS_LOG=false does (app/main.py)
        with (
            serving(AloneProbe(), recording_protocol(events)) as base,
            httpx.Client(base_url=base, timeout=10) as client,
        ):
            assert client.get("/first").text == "ok"
    assert events == ["head", "body"]
