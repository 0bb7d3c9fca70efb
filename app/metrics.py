"""Prometheus metrics, one CollectorRegistry per app so several apps (tests) never collide."""

from __future__ import annotations

import time
from collections import Counter as EventCounts
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"  # the route label of a request no route took

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Connections the HTTP protocol closed before a request reached the app (app/http_protocol.py),
# by reason; process-wide, since the protocol runs outside any one app.
CONNECTION_EVENTS: EventCounts[str] = EventCounts()
CONNECTION_EVENT_REASONS = ("header_timeout", "header_too_large", "connection_limit")


class ConnectionEventsCollector:
    """Exports CONNECTION_EVENTS as `http_connections_closed_total{reason}`."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "http_connections_closed",
            "Connections closed before a request reached the app, by reason (header_timeout: "
            "408, header_too_large: 431, connection_limit: 503).",
            labels=["reason"],
        )
        for reason in CONNECTION_EVENT_REASONS:
            family.add_metric([reason], CONNECTION_EVENTS[reason])
        yield family


class ServiceMetrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "predictions_total",
            "Closes predicted, by endpoint and model (a batch of n windows counts n).",
            ["endpoint", "model", "version"],
            registry=self.registry,
        )
        self.batch_windows = Histogram(
            "predict_batch_windows",
            "Windows per model call made by the /predict batcher (concurrent single-window "
            "requests share one call).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.served_version = Gauge(
            "model_served_version",
            "Version of the bundle being served (0 when none).",
            ["name"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "model_ready",
            "1 when a verified, warmed-up bundle of the model is served.",
            ["name"],
            registry=self.registry,
        )
        self.loaded_versions = Gauge(
            "model_loaded_versions",
            "Versions of the model held in memory (the served one and those served before).",
            ["name"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "model_load_failures_total",
            "Versions that failed to verify, load or warm up.",
            ["name", "version"],
            registry=self.registry,
        )
        self.loads = Counter(
            "model_loads_total",
            "Versions loaded and swapped in.",
            ["name"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "http_requests_rejected_total",
            "Requests refused before they ran, by reason (overloaded: 503 past the admission "
            "budget).",
            ["reason"],
            registry=self.registry,
        )
        self.timed_out = Counter(
            "http_requests_timed_out_total",
            "Requests answered 408 because their body did not arrive within BODY_TIMEOUT_SECONDS.",
            ["phase"],
            registry=self.registry,
        )
        self.admission_bytes = Gauge(
            "admission_in_flight_bytes",
            "Request-body bytes of heavy requests being handled (against ADMISSION_BUDGET_BYTES).",
            registry=self.registry,
        )
        self.registry.register(ConnectionEventsCollector())
        self.admission_wait = Histogram(
            "admission_wait_seconds",
            "How long admitted heavy requests waited for budget.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._request_series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._prediction_series: dict[tuple[str, str, str], Counter] = {}

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        """Count and time one request; each label set's series is looked up once, since
        `labels()` costs more than the update itself."""
        key = (route, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = (self.requests.labels(*key), self.latency.labels(route, method))
            self._request_series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def count_predictions(self, endpoint: str, model: str, version: str, count: int) -> None:
        """Count `count` predictions of `model` v`version` by `endpoint` (series looked up once)."""
        key = (endpoint, model, version)
        series = self._prediction_series.get(key)
        if series is None:
            series = self._prediction_series[key] = self.predictions.labels(*key)
        series.inc(count)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by its route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: int | None = None
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            status = status or 500
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope["method"]
            # No response and no error: the client went away first (nginx's 499).
            label = str(status) if status is not None else "499"
            self.metrics.observe_request(template, method, label, time.perf_counter() - started)
