"""What the bounded protocol tells the app (app/http_protocol.py): whether a request is the only
one a real uvicorn server is running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from app.http_protocol import (
    BoundedHttpToolsProtocol,
    alone_in_server,
)
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


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` on a real uvicorn server with the bounded protocol, in a thread."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=BoundedHttpToolsProtocol,
        lifespan="off",
        log_level="warning",
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
