"""The FastAPI application: `create_app(settings)` builds it, `app` is what uvicorn serves.

Building the app does no I/O; the bundle is loaded in the lifespan, so importing is cheap.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.access_log import use_lean_access_formatter
from app.admission import AdmissionBudget, AdmissionMiddleware
from app.batching import MicroBatcher
from app.body_limit import BodyLimitMiddleware, BodyReader
from app.errors import install_error_handlers
from app.hot import HotPath
from app.loader import BundleLoader
from app.manager import ModelManager
from app.memory import limit_malloc_arenas
from app.metrics import RequestMetricsMiddleware, ServiceMetrics
from app.routers import admin, dashboard, forecast, health, models, oip, predict
from app.service import PredictionService
from app.settings import Settings, settings_from_environment
from app.source import StoreSource
from model_store import ModelStore

DESCRIPTION = """
Predicts the next daily close of a stock from the 40 closes before it, with LSTMs trained
offline and served by ONNX Runtime from verified, versioned bundles: several models from one
store, each under `/models/{name}/...`, the default one also under `/predict`, `/forecast` and
`/model`, and every model over the Open Inference Protocol (`/v2/...`).

Every error has one shape: `{"error": {"code", "message", "detail"}}`.
"""


def _configure_logging(level: str, access_log: bool) -> None:
    # uvicorn has configured its loggers before it imports the app; ACCESS_LOG=false silences
    # its access logger, with the same effect as `--no-access-log`.
    access = logging.getLogger("uvicorn.access")
    access.disabled = not access_log
    use_lean_access_formatter(access.handlers)
    logger = logging.getLogger("app")
    logger.setLevel(level.upper())
    if not logger.handlers:  # uvicorn configures only its own loggers
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def build_manager(settings: Settings, metrics: ServiceMetrics) -> ModelManager:
    """The model lifecycle of `settings`: the store's source, the loader and the manager."""
    store = ModelStore(settings.model_store_dir)
    source = StoreSource(store, settings.models, settings.default_model_name)
    pins = {name: settings.pinned_version(name) for name in source.configured_names()}
    pins.update({name: settings.pinned_version(name) for name in settings.model_versions})
    return ModelManager(
        source,
        BundleLoader(store, settings.predictor_backend),
        metrics,
        pins,
        settings.model_poll_seconds,
        settings.max_loaded_versions,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app around `settings` (default: from the environment; an invalid variable exits
    with one line naming it)."""
    settings = settings or settings_from_environment()
    _configure_logging(settings.log_level, settings.access_log)
    metrics = ServiceMetrics()
    manager = build_manager(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas()  # before the worker threads exist
        await manager.start()
        # What exists now (FastAPI, pydantic, numpy, ONNX Runtime, the bundle) lives as long as
        # the process: frozen, it is no longer walked by every full collection requests trigger
        # (docs/decisions/0010-gc-freeze.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await manager.stop()
            batcher.close()

    app = FastAPI(
        title="Stock LSTM prediction service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # The service exports its own Prometheus metrics; FastAPI's built-in OpenTelemetry hooks
        # would only look up unconfigured global providers on every request
        # (docs/decisions/0009-telemetry-off.md).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.manager = manager
    batcher = MicroBatcher(
        on_batch=metrics.batch_windows.observe, inference_thread=settings.inference_thread
    )
    service = PredictionService(batcher, metrics)
    app.state.service = service
    install_error_handlers(app)
    for router in (predict, forecast, health, models, admin, oip, dashboard):
        app.include_router(router.router)

    # Added innermost first: metrics see every response, CORS headers reach 413s too.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
        on_timeout=metrics.timed_out.labels("body").inc,
    )
    # Outside the body limit: a heavy request is admitted (or refused) before its body is read.
    app.add_middleware(
        AdmissionMiddleware,
        budget=AdmissionBudget(settings.admission_budget_bytes, metrics),
        light_bytes=settings.admission_light_bytes,
        max_body_bytes=settings.max_body_bytes,
        wait_seconds=settings.admission_wait_seconds,
        retry_after_seconds=settings.retry_after_seconds,
        metrics=metrics,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
        )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    # Outermost: the common /predict request skips every layer above (app/hot.py).
    app.add_middleware(
        HotPath,
        manager=manager,
        service=service,
        metrics=metrics,
        reader=BodyReader(
            settings.max_body_bytes,
            settings.body_timeout_seconds,
            metrics.timed_out.labels("body").inc,
        ),
        light_bytes=settings.admission_light_bytes,
        cors=bool(settings.cors_origins),
        handlers=app.exception_handlers,
    )
    return app


app = create_app()
