"""Dynamic batching: concurrent single-window /predict requests share one model call.

Under load, requests queue on the event loop; a small LSTM's call is latency-bound, so one call
for many windows costs far less per window than a call each
(docs/decisions/0002-no-lone-request-shortcut.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from app.predictor import Predictor

# One window's answer: its next close and its predicted relative scale (None without one).
Forecast = tuple[float, float | None]

DEFAULT_MAX_BATCH = 64


class MicroBatcher:
    """Collects the windows submitted while the event loop is busy and predicts them together.

    The wait is bounded by one turn of the event loop: the first window schedules the flush with
    `call_soon`, so a batch holds exactly the requests that reached this point in the same turn
    (a lone request waits microseconds, never a timer). A batch never exceeds `max_batch` windows,
    so the loop is never blocked for long. Windows are grouped by predictor,
    so a hot swap mid-batch answers each request from the model it started with.

    A request can not tell whether others will join: under uvicorn each request runs from its
    first byte to this point without yielding, so "requests in flight" is always one here even
    at concurrency 32. Every window therefore takes the loop turn, even when it turns out to be
    alone (docs/decisions/0002-no-lone-request-shortcut.md).

    Event-loop only: every method runs on the loop's thread, so no lock is needed.
    """

    def __init__(
        self,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], object] | None = None,
    ):
        self.max_batch = max_batch
        self._on_batch = on_batch  # told the size of every model call (the metrics histogram)
        self._pending: list[tuple[Predictor, np.ndarray, asyncio.Future[Forecast]]] = []
        self._scheduled = False

    async def predict(self, predictor: Predictor, window: np.ndarray) -> float:
        """The next close after one window (shape `(window,)`), computed in a shared batch."""
        return (await self.forecast(predictor, window))[0]

    async def forecast(self, predictor: Predictor, window: np.ndarray) -> Forecast:
        """The next close after one window and its predicted scale, computed in a shared batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Forecast] = loop.create_future()
        self._pending.append((predictor, window, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        groups: dict[Predictor, list[tuple[np.ndarray, asyncio.Future[Forecast]]]] = {}
        for predictor, window, future in pending:
            groups.setdefault(predictor, []).append((window, future))
        for predictor, items in groups.items():
            if self._on_batch is not None:
                self._on_batch(len(items))
            try:
                predictions = predictor.forecast(np.stack([window for window, _ in items]))
            except Exception:
                # One bad window (no finite prediction) must fail only its own request, with the
                # message it would get alone: predict each window of this batch by itself.
                for window, future in items:
                    _settle_alone(predictor, window, future)
                continue
            scales = predictions.scales
            for index, (_, future) in enumerate(items):
                if not future.done():  # the client may have gone away meanwhile
                    future.set_result(_answer(predictions.closes, scales, index))


def _answer(closes: np.ndarray, scales: np.ndarray | None, index: int) -> Forecast:
    return float(closes[index]), None if scales is None else float(scales[index])


def _settle_alone(
    predictor: Predictor, window: np.ndarray, future: asyncio.Future[Forecast]
) -> None:
    if future.done():
        return
    try:
        predictions = predictor.forecast(window[np.newaxis, :])
    except Exception as exc:
        future.set_exception(exc)
    else:
        future.set_result(_answer(predictions.closes, predictions.scales, 0))
