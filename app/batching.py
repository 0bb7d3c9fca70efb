"""Dynamic batching: concurrent single-window /predict requests share one model call.

Under load, requests queue on the event loop; a small LSTM's call is latency-bound, so one call
for many windows costs far less per window than a call each
(docs/decisions/0002-no-lone-request-shortcut.md, 0020-lone-requests-skip-the-loop-turn.md).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

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

    A request that is the only one the server runs (uvicorn's own set of running requests holds
    every request read so far, started or not) is predicted at once with `forecast_now` when the
    batcher is `idle`: no company can come before its answer is sent. Any other window takes the
    loop turn (docs/decisions/0020-lone-requests-skip-the-loop-turn.md).

    With `inference_thread`, a batch of several windows runs in one thread of its own while the
    loop goes on parsing requests; the windows that arrive meanwhile make the next batch, started
    when it finishes. A lone window still runs on the loop.

    Every method runs on the loop's thread, so no lock is needed.
    """

    def __init__(
        self,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], object] | None = None,
        inference_thread: bool = False,
    ):
        self.max_batch = max_batch
        self._on_batch = on_batch  # told the size of every model call (the metrics histogram)
        self.inference_thread = inference_thread
        self._executor: ThreadPoolExecutor | None = None  # started by the first batch
        self._pending: list[tuple[Predictor, np.ndarray, asyncio.Future[Forecast]]] = []
        self._scheduled = False
        self._running = False  # a batch is in the inference thread

    async def predict(self, predictor: Predictor, window: np.ndarray) -> float:
        """The next close after one window (shape `(window,)`), computed in a shared batch."""
        return (await self.forecast(predictor, window))[0]

    @property
    def idle(self) -> bool:
        """No batch is forming or running: a window alone in the server may run at once."""
        return not self._pending and not self._running

    def forecast_now(self, predictor: Predictor, closes: Sequence[float]) -> Forecast:
        """The answer for one window of a request alone in the server, at once: no other
        request can join before its answer is written."""
        if self._on_batch is not None:
            self._on_batch(1)
        return predictor.forecast_one(closes)

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
        if self._running:  # the inference thread is busy: these windows make its next batch
            return
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        groups: dict[Predictor, Group] = {}
        for predictor, window, future in batch:
            groups.setdefault(predictor, ([], []))
            groups[predictor][0].append(window)
            groups[predictor][1].append(future)
        if self._on_batch is not None:
            for windows, _ in groups.values():
                self._on_batch(len(windows))
        # A lone window runs at once: handing it to the thread would only add the hand-over.
        if not self.inference_thread or len(batch) == 1:
            for predictor, (windows, futures) in groups.items():
                _settle(futures, _predict_group(predictor, windows))
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._running = True
        work = asyncio.get_running_loop().run_in_executor(self._executor, _predict_groups, groups)
        work.add_done_callback(functools.partial(self._finished, groups))

    def close(self) -> None:
        """Stop the inference thread once its batch is done (a later batch starts another)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _finished(
        self, groups: dict[Predictor, Group], work: asyncio.Future[list[list[Outcome]]]
    ) -> None:
        self._running = False
        try:
            results = work.result()
        except BaseException as exc:  # the executor itself failed (shut down, cancelled)
            error = exc if isinstance(exc, Exception) else RuntimeError("inference stopped")
            results = [[error] * len(futures) for _, futures in groups.values()]
        for (_, futures), outcomes in zip(groups.values(), results, strict=True):
            _settle(futures, outcomes)
        if self._pending:
            self._flush()


# A predictor's windows of one batch and their requests' futures; what each window gets.
Group = tuple[list[np.ndarray], list["asyncio.Future[Forecast]"]]
Outcome = Forecast | Exception


def _predict_groups(groups: dict[Predictor, Group]) -> list[list[Outcome]]:
    return [_predict_group(predictor, windows) for predictor, (windows, _) in groups.items()]


def _predict_group(predictor: Predictor, windows: list[np.ndarray]) -> list[Outcome]:
    """Each window's answer from one model call; when the call fails, each window alone."""
    try:
        predictions = predictor.forecast(np.stack(windows))
    except Exception:
        # One bad window (no finite prediction) must fail only its own request, with the
        # message it would get alone: predict each window of this batch by itself.
        return [_alone(predictor, window) for window in windows]
    return [_answer(predictions.closes, predictions.scales, i) for i in range(len(windows))]


def _answer(closes: np.ndarray, scales: np.ndarray | None, index: int) -> Forecast:
    return float(closes[index]), None if scales is None else float(scales[index])


def _alone(predictor: Predictor, window: np.ndarray) -> Outcome:
    try:
        predictions = predictor.forecast(window[np.newaxis, :])
    except Exception as exc:
        return exc
    return _answer(predictions.closes, predictions.scales, 0)


def _settle(futures: list[asyncio.Future[Forecast]], outcomes: list[Outcome]) -> None:
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():  # the client may have gone away meanwhile
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
