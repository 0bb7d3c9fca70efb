"""Model lifecycle, TensorFlow Serving style: resolve, verify, load, warm up, swap atomically.

Readers take `registry.current` once per request, so a swap never changes the model under a
request in flight. Loads are serialized by a lock and run off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from anyio import to_thread

from app.errors import LoadFailedError, NotReadyError
from app.keras_archive import check_bundle_keras
from app.metrics import ServiceMetrics
from app.predictor import Predictor, make_runtime
from app.settings import Settings
from model_store import LATEST, ModelStore, ModelStoreError

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


class ModelRegistry:
    """Holds the served Predictor and swaps in new versions of one model from the store."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics):
        self.store = ModelStore(settings.model_store_dir)
        self.name = settings.model_name
        self.backend = settings.predictor_backend
        self.poll_seconds = settings.model_poll_seconds
        self.pinned: int | None = settings.pinned_version
        self.metrics = metrics
        self.last_error: LoadError | None = None
        self.store_error: str | None = None
        self.not_ready_reason = "starting: no bundle loaded yet"
        self.loaded_at: str | None = None
        self._current: Predictor | None = None
        self._failed: dict[int, str] = {}
        self._lock = threading.Lock()
        self._poller: asyncio.Task[None] | None = None
        metrics.served_version.labels(self.name).set(0)
        metrics.ready.set(0)

    @property
    def current(self) -> Predictor | None:
        """The served predictor, or None while not ready."""
        return self._current

    def require(self) -> Predictor:
        """The served predictor; raises NotReadyError (503) with the reason when there is none."""
        predictor = self._current
        if predictor is None:
            raise NotReadyError(f"model not ready: {self.not_ready_reason}")
        return predictor

    def _load(self, version: int) -> Predictor:
        bundle = self.store.verify(self.name, version)
        check_bundle_keras(bundle)  # no Lambda or foreign classes, whichever backend serves
        predictor = Predictor(bundle, make_runtime(self.backend, bundle))
        predictor.warm_up()
        return predictor

    def _swap_to(self, version: int) -> None:
        """Load `version` beside the served one and swap it in; on failure keep the old one."""
        try:
            predictor = self._load(version)
        # Whatever goes wrong with a new version (bad hash, corrupt protobuf, Keras refusing a
        # file, non-finite warm-up), the served version must keep serving.
        except Exception as exc:
            message = (
                str(exc) if str(exc).startswith(self.name) else f"{self.name} v{version}: {exc}"
            )
            self._failed[version] = message
            self.last_error = LoadError(version, message, _now())
            self.metrics.load_failures.labels(self.name, str(version)).inc()
            if self._current is None:
                self.not_ready_reason = message
            logger.error("refused %s v%d: %s", self.name, version, message)
            raise LoadFailedError(message) from exc
        previous = self._current
        self._current = predictor  # one reference assignment: the atomic swap
        self._failed.pop(version, None)
        self.loaded_at = _now()
        self.metrics.loads.labels(self.name).inc()
        self.metrics.served_version.labels(self.name).set(version)
        self.metrics.ready.set(1)
        logger.info(
            "serving %s v%d (%s)%s",
            self.name,
            version,
            self.backend,
            f", replacing v{previous.version}" if previous else "",
        )

    def refresh(self) -> bool:
        """Serve the target version (the pinned one, else the latest) unless it is already served
        or already failed. Returns whether a new version was swapped in.

        Raises ModelStoreError when the store has no such model/version and LoadFailedError when
        the target fails to load."""
        with self._lock:
            try:
                target = self.store.resolve(self.name, self.pinned or LATEST)
            except ModelStoreError as exc:
                if self._current is None:
                    self.not_ready_reason = str(exc)
                raise
            served = self._current.version if self._current else None
            if target == served or target in self._failed:
                return False
            self._swap_to(target)
            return True

    def reload(self) -> bool:
        """Forget earlier failures and serve the target version now (POST /admin/reload)."""
        with self._lock:
            self._failed.clear()
        return self.refresh()

    def pin(self, version: int | None) -> None:
        """Serve `version` from now on and stop following `latest`; None follows `latest` again."""
        with self._lock:
            if version is not None:
                self.store.resolve(self.name, version)  # unknown version: VersionNotFoundError
                if self._current is None or self._current.version != version:
                    self._swap_to(version)
            self.pinned = version
        if version is None:
            self.refresh()

    def poll_once(self) -> None:
        """One look at the store; failures are recorded, never raised.

        A store that vanishes or loses the model (a deleted volume, a bad sync) leaves the loaded
        version serving; the reason is logged once and reported by /models as `store_error`."""
        try:
            self.refresh()
        except ModelStoreError as exc:
            if str(exc) != self.store_error:
                logger.error("model store unavailable, still serving what is loaded: %s", exc)
            self.store_error = str(exc)
            return
        except LoadFailedError:
            pass
        if self.store_error is not None:
            logger.info("model store available again")
        self.store_error = None

    def status(self) -> dict[str, Any]:
        """What /models reports: the store's versions, the served and pinned ones, failures."""
        try:
            versions = self.store.versions(self.name)
        except ModelStoreError:
            versions = []
        served = self._current.version if self._current else None
        return {
            "name": self.name,
            "backend": self.backend,
            "served": served,
            "pinned": self.pinned,
            "loaded_at": self.loaded_at,
            "ready": served is not None,
            "not_ready_reason": None if served is not None else self.not_ready_reason,
            "versions": [
                {
                    "version": version,
                    "served": version == served,
                    "error": self._failed.get(version),
                }
                for version in versions
            ],
            "last_load_error": asdict(self.last_error) if self.last_error else None,
            "store_error": self.store_error,
            "poll_seconds": self.poll_seconds,
        }

    async def start(self) -> None:
        """Load the first bundle (when there is one) and start the poller."""
        await to_thread.run_sync(self.poll_once)
        if self._current is None:
            logger.warning("not ready: %s", self.not_ready_reason)
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
            elif self._current is None:
                interval = FIRST_BUNDLE_RETRY_SECONDS
            else:
                return
            await asyncio.sleep(interval)
            try:
                await to_thread.run_sync(self.poll_once)
            except Exception:  # a poller that dies silently would freeze the served version
                logger.exception("model poll failed")
