"""The hot path: `POST /predict` and `POST /models/{name}/predict` answered without the
framework's per-request machinery, with the same answers as the FastAPI routes.

A request takes it only when nothing about it is unusual: a JSON content type, a Content-Length
within ADMISSION_LIGHT_BYTES and MAX_BODY_BYTES (so admission control never applies to it), no
Origin header while CORS is on, no query but `level`. Its body is validated straight from the
raw bytes by the route's own pydantic model, as strictly, and the answer is encoded with orjson.
Everything else, including every body that does not validate, goes on to the FastAPI route,
which answers it (and its error) as documented in the OpenAPI schema
(docs/decisions/0017-lean-hot-path.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.body_limit import BodyReader, replaying
from app.http_protocol import alone_in_server
from app.manager import ModelManager
from app.metrics import UNMATCHED, ServiceMetrics
from app.routers.predict import answer
from app.schemas import PredictRequest
from app.service import PredictionService
from model_store import DEFAULT_LEVEL, LEVELS

DEFAULT_ROUTE = "/predict"
MODEL_ROUTE = "/models/{name}/predict"  # the route templates, as /metrics labels them
_MODEL_PREFIX, _MODEL_SUFFIX = "/models/", "/predict"
MAX_NAME = 64  # the route's ModelName path parameter
# Content types both FastAPI and the route read as JSON; any other goes the long way.
JSON_TYPES = frozenset(
    {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}
)
_LEVEL_QUERY = re.compile(rb"level=([1-9][0-9]{0,2})")
_JSON_HEADERS = (b"content-type", b"application/json")

ExceptionHandlers = Mapping[Any, Any]


def route_of(scope: Scope) -> tuple[str, str | None] | None:
    """The hot route a request is for (its template and the model name it names), or None."""
    if scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if path == DEFAULT_ROUTE:
        return DEFAULT_ROUTE, None
    if path.startswith(_MODEL_PREFIX) and path.endswith(_MODEL_SUFFIX):
        name = path[len(_MODEL_PREFIX) : -len(_MODEL_SUFFIX)]
        if 0 < len(name) <= MAX_NAME and "/" not in name:
            return MODEL_ROUTE, name
    return None


def level_of(query: bytes) -> int | None:
    """The `level` of a query that holds nothing else, or None when the route must read it."""
    if not query:
        return DEFAULT_LEVEL
    match = _LEVEL_QUERY.fullmatch(query)
    if match is None:
        return None
    level = int(match.group(1))
    return level if min(LEVELS) <= level <= max(LEVELS) else None


class HotPath:
    """Serves the common case of the two predicting routes in one ASGI layer (metrics, body
    limit, validation, prediction, encoding); passes every other request to `app` untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        manager: ModelManager,
        service: PredictionService,
        metrics: ServiceMetrics,
        reader: BodyReader,
        light_bytes: int,
        cors: bool,
        handlers: ExceptionHandlers,
    ):
        self.app = app
        self.manager = manager
        self.service = service
        self.metrics = metrics
        self.reader = reader
        self.max_length = min(light_bytes, reader.max_bytes)
        # A second Content-Length or Content-Type, a chunked body, or (with CORS on) an Origin
        # needs the layers behind.
        self._refused = {b"content-length", b"content-type", b"transfer-encoding"}
        if cors:
            self._refused.add(b"origin")
        self.handlers = handlers  # the app's exception handlers, looked up as Starlette does

    def _eligible(self, scope: Scope) -> bool:
        """Whether the request's headers leave nothing for the other middleware to do."""
        length = content_type = None
        for key, value in scope["headers"]:
            if key == b"content-length" and length is None:
                length = value
            elif key == b"content-type" and content_type is None:
                content_type = value
            elif key in self._refused:
                return False
        return (
            length is not None
            and length.isdigit()
            and int(length) <= self.max_length
            and content_type is not None
            and content_type.lower() in JSON_TYPES
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_of(scope) if scope["type"] == "http" else None
        level = None if route is None else level_of(scope["query_string"])
        if route is None or level is None or not self._eligible(scope):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # None once the request is handed to the layers behind: they count it.
        status: str | None = "499"  # no response and no error: the client went away first
        # As behind the body limit: a request whose body never arrives in full is not routed.
        template = UNMATCHED

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            body = await self.reader.read(scope, receive, send_with_status)
            if body is None:
                return
            template = route[0]
            try:
                request = PredictRequest.model_validate_json(body)
            except ValidationError:
                status = None  # the route answers it, as documented
                await self.app(scope, replaying(body, receive), send)
                return
            await self._predict(scope, receive, send_with_status, request, route[1], level)
        except Exception:
            status = "500" if status == "499" else status
            raise
        finally:
            if status is not None:
                self.metrics.observe_request(
                    template, "POST", status, time.perf_counter() - started
                )

    async def _predict(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: PredictRequest,
        name: str | None,
        level: int,
    ) -> None:
        try:
            predictor = self.manager.require(self.manager.default if name is None else name)
            content = await answer(request, predictor, self.service, level, alone_in_server(scope))
        except Exception as exc:
            await self._error(scope, receive, send, exc)
            return
        payload = orjson.dumps(content)
        headers = [(b"content-length", str(len(payload)).encode()), _JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _error(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """Answer `exc` with the app's handler for it, as Starlette's ExceptionMiddleware does;
        re-raise what only the server-error handler answers."""
        handler = next(
            (
                self.handlers[kind]
                for kind in type(exc).__mro__
                if kind in self.handlers and kind is not Exception
            ),
            None,
        )
        if handler is None:
            raise exc
        response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)
