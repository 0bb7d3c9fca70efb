"""The manager: every served model's versions, swapped in availability-first, TensorFlow Serving
style (the old version serves until the new one is verified, loaded and warmed up).

Readers take a model's `served` predictor once per request, so a swap never changes the model
under a request in flight. Loads are serialized by one lock and run off the event loop. Besides
the served version, up to `max_loaded - 1` versions served before it stay loaded (for requests
that name a version, and instant rollbacks); older ones are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from anyio import to_thread

from app.errors import LoadFailedError, ModelUnknownError, NotReadyError, VersionNotLoadedError
from app.loader import BundleLoader
from app.metrics import ServiceMetrics
from app.predictor import Predictor
from app.source import StoreSource
from model_store import ModelStoreError

logger = logging.getLogger(__name__)

# How often a process with nothing to serve looks for a first bundle when polling is off.
FIRST_BUNDLE_RETRY_SECONDS = 5.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LoadError:
    """A version that failed to verify, load or warm up."""

    version: int
    message: str
    at: str


@dataclass(frozen=True)
class VersionStatus:
    """One complete version in the store."""

    version: int
    served: bool
    loaded: bool
    error: str | None


@dataclass(frozen=True)
class ModelStatus:
    """What /models reports for one model."""

    name: str
    backend: str
    state: str  # "serving" or "not_ready"
    served: int | None
    pinned: int | None
    loaded: list[int]
    loaded_at: str | None
    ready: bool
    not_ready_reason: str | None
    versions: list[VersionStatus]
    last_load_error: LoadError | None
    store_error: str | None
    poll_seconds: float


@dataclass
class ManagedModel:
    """One model's lifecycle state; mutated only under the manager's lock."""

    name: str
    pinned: int | None
    served: Predictor | None = None
    # Loaded versions, most recently served last; the served one is always among them.
    loaded: dict[int, Predictor] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    last_error: LoadError | None = None
    store_error: str | None = None
    not_ready_reason: str = "starting: no bundle loaded yet"
    loaded_at: str | None = None


class ModelManager:
    """Holds the served version of every model and applies each one's version policy."""

    def __init__(
        self,
        source: StoreSource,
        loader: BundleLoader,
        metrics: ServiceMetrics,
        pins: dict[str, int | None],
        poll_seconds: float,
        max_loaded: int,
    ):
        self.source = source
        self.loader = loader
        self.metrics = metrics
        self.default = source.default
        self.poll_seconds = poll_seconds
        self.max_loaded = max_loaded
        self._pins = pins
        self._models: dict[str, ManagedModel] = {}
        self._lock = threading.Lock()
        self._poller: asyncio.Task[None] | None = None
        for name in source.configured_names():
            self._add(name)

    def _add(self, name: str) -> ManagedModel:
        model = ManagedModel(name, self._pins.get(name))
        self._models[name] = model
        self.metrics.served_version.labels(name).set(0)
        self.metrics.ready.labels(name).set(0)
        self.metrics.loaded_versions.labels(name).set(0)
        return model

    @property
    def names(self) -> list[str]:
        """The served model names, the default first."""
        return list(self._models)

    def model(self, name: str) -> ManagedModel:
        """The named model's state; ModelUnknownError (404) naming the served ones."""
        model = self._models.get(name)
        if model is None:
            raise ModelUnknownError(
                f"no model named {name[:80]!r} is served (served: {', '.join(self._models)})"
            )
        return model

    def require(self, name: str) -> Predictor:
        """The served predictor of `name`; 404 when unknown, 503 with the reason when not ready."""
        model = self.model(name)
        predictor = model.served
        if predictor is None:
            raise NotReadyError(f"model not ready: {model.not_ready_reason}")
        return predictor

    def require_version(self, name: str, version: int) -> Predictor:
        """A loaded version of `name`; 404 naming the loaded versions when it is not one."""
        model = self.model(name)
        predictor = model.loaded.get(version)
        if predictor is None:
            loaded = ", ".join(map(str, sorted(model.loaded))) or "none"
            raise VersionNotLoadedError(
                f"model {name} has no loaded version {version} (loaded: {loaded})"
            )
        return predictor

    def _swap_to(self, model: ManagedModel, version: int) -> None:
        """Serve `version` (loading it beside the served one unless loaded); on failure keep the
        old one. Caller holds the lock."""
        predictor = model.loaded.get(version)
        if predictor is None:
            predictor = self._load(model, version)
        previous = model.served
        model.served = predictor  # one reference assignment: the atomic swap
        model.loaded.pop(version, None)
        model.loaded[version] = predictor
        while len(model.loaded) > self.max_loaded:
            del model.loaded[next(iter(model.loaded))]
        model.failed.pop(version, None)
        model.loaded_at = _now()
        self.metrics.served_version.labels(model.name).set(version)
        self.metrics.ready.labels(model.name).set(1)
        self.metrics.loaded_versions.labels(model.name).set(len(model.loaded))
        logger.info(
            "serving %s v%d (%s)%s",
            model.name,
            version,
            self.loader.backend,
            f", replacing v{previous.version}" if previous else "",
        )

    def _load(self, model: ManagedModel, version: int) -> Predictor:
        try:
            predictor = self.loader.load(model.name, version)
        # Whatever goes wrong with a new version (bad hash, corrupt protobuf, Keras refusing a
        # file, non-finite warm-up), the served version must keep serving.
        except Exception as exc:
            text = str(exc)
            message = text if text.startswith(model.name) else f"{model.name} v{version}: {text}"
            model.failed[version] = message
            model.last_error = LoadError(version, message, _now())
            self.metrics.load_failures.labels(model.name, str(version)).inc()
            if model.served is None:
                model.not_ready_reason = message
            logger.error("refused %s v%d: %s", model.name, version, message)
            raise LoadFailedError(message) from exc
        self.metrics.loads.labels(model.name).inc()
        return predictor

    def _refresh(self, model: ManagedModel) -> bool:
        try:
            target = self.source.wanted(model.name, model.pinned)
        except ModelStoreError as exc:
            if model.served is None:
                model.not_ready_reason = str(exc)
            raise
        served = model.served.version if model.served else None
        if target == served or target in model.failed:
            return False
        self._swap_to(model, target)
        return True

    def refresh(self, name: str) -> bool:
        """Serve the wanted version of `name` unless it is served or already failed. Returns
        whether a new version was swapped in.

        Raises ModelStoreError when the store has no such model/version and LoadFailedError when
        the wanted version fails to load."""
        with self._lock:
            return self._refresh(self.model(name))

    def reload(self, name: str) -> bool:
        """Forget earlier failures of `name` and serve its wanted version now."""
        with self._lock:
            self.model(name).failed.clear()
        return self.refresh(name)

    def pin(self, name: str, version: int | None) -> None:
        """Serve `version` of `name` from now on; None follows `latest` again."""
        model = self.model(name)
        with self._lock:
            if version is not None:
                self.source.store.resolve(name, version)  # unknown version: VersionNotFoundError
                served = model.served.version if model.served else None
                if served != version:
                    self._swap_to(model, version)
            model.pinned = version
        if version is None:
            self.refresh(name)

    def poll_once(self) -> None:
        """One look at the store for every model; failures are recorded, never raised.

        A store that vanishes or loses a model (a deleted volume, a bad sync) leaves the loaded
        version serving; the reason is logged once and reported by /models as `store_error`."""
        try:
            names = self.source.names()
        except ModelStoreError:
            names = self.names
        for name in names:
            with self._lock:
                model = self._models.get(name) or self._add(name)
            self._poll_model(model)

    def _poll_model(self, model: ManagedModel) -> None:
        try:
            with self._lock:
                self._refresh(model)
        except ModelStoreError as exc:
            if str(exc) != model.store_error:
                logger.error("model store unavailable for %s, still serving: %s", model.name, exc)
            model.store_error = str(exc)
            return
        except LoadFailedError:
            pass
        if model.store_error is not None:
            logger.info("model store available again for %s", model.name)
        model.store_error = None

    def status(self, name: str) -> ModelStatus:
        """The typed status of one model: store versions, served, pinned, loaded, failures."""
        model = self.model(name)
        try:
            versions = self.source.store.versions(name)
        except ModelStoreError:
            versions = []
        served = model.served.version if model.served else None
        loaded = sorted(model.loaded)
        return ModelStatus(
            name=name,
            backend=self.loader.backend,
            state="serving" if served is not None else "not_ready",
            served=served,
            pinned=model.pinned,
            loaded=loaded,
            loaded_at=model.loaded_at,
            ready=served is not None,
            not_ready_reason=None if served is not None else model.not_ready_reason,
            versions=[
                VersionStatus(v, v == served, v in loaded, model.failed.get(v)) for v in versions
            ],
            last_load_error=model.last_error,
            store_error=model.store_error,
            poll_seconds=self.poll_seconds,
        )

    async def start(self) -> None:
        """Load every model's first bundle (when there is one) and start the poller."""
        await to_thread.run_sync(self.poll_once)
        for model in self._models.values():
            if model.served is None:
                logger.warning("%s not ready: %s", model.name, model.not_ready_reason)
        self._poller = asyncio.create_task(self._poll_loop(), name="model-poller")

    async def stop(self) -> None:
        """Stop the poller."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _poll_loop(self) -> None:
        while True:
            if self.poll_seconds > 0:
                interval = self.poll_seconds
            elif any(model.served is None for model in self._models.values()):
                interval = FIRST_BUNDLE_RETRY_SECONDS
            else:
                return
            await asyncio.sleep(interval)
            try:
                await to_thread.run_sync(self.poll_once)
            except Exception:  # a poller that dies silently would freeze the served versions
                logger.exception("model poll failed")
