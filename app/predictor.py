"""Runs a bundle's model: windows of closes in, next closes out.

The default runtime is ONNX Runtime (numpy only). The Keras runtime imports TensorFlow lazily, in
its constructor, so the serving process never imports it unless PREDICTOR_BACKEND=keras.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from app.errors import InvalidInputError
from model_store import (
    KERAS_FILE,
    ONNX_FILE,
    Bundle,
    IntervalSpec,
    ManifestError,
    ScaledIntervals,
    WindowEncoding,
    interval_band,
)

# Big batches run through ONNX Runtime this many windows at a time: its memory arena keeps the
# largest buffers it ever needed, so chunks bound the memory
# (docs/decisions/0003-128-window-chunks.md).
ONNX_CHUNK = 128
# Windows encoded, run and decoded this many at a time (one background job), so a long CSV's
# float copies stay small whatever its length and the jobs spread evenly over the cores.
PREDICT_CHUNK = 1024
LOWEST_NICE = 19


def _lowest_cpu_priority() -> None:
    """Give the calling thread the lowest nice value, 19 (on Linux nice is per thread): under
    contention a nice-0 thread, such as the event loop's, gets ~98 % of a core against it."""
    with contextlib.suppress(OSError, AttributeError):  # refused, or not POSIX: as it is
        os.setpriority(os.PRIO_PROCESS, 0, LOWEST_NICE)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class BackgroundCores:
    """One thread per core, at the lowest CPU priority, for the model calls of big batches: a
    long /forecast uses every core nothing else needs, and the event loop and light requests
    get ~98 % of any core they need (docs/decisions/0019-big-batches-on-idle-cores.md).

    Only the runtime's call runs here, which holds no GIL while it computes: a thread at the
    lowest priority must not hold the GIL the event loop is waiting for.
    """

    def __init__(self, threads: int):
        self.threads = threads
        # Threads start on first use, so importing this module starts none.
        self._executor = ThreadPoolExecutor(
            threads, thread_name_prefix="background-inference", initializer=_lowest_cpu_priority
        )

    def run_all(
        self,
        call: Callable[[np.ndarray], np.ndarray],
        inputs: Iterable[np.ndarray],
        collect: Callable[[np.ndarray], None],
    ) -> None:
        """`collect(call(x))` for every `x` of `inputs`, in order: the calls on the background
        threads, at most two per thread in flight (so only a few chunks' inputs and outputs
        exist at once), `collect` in the calling thread."""
        in_flight: deque[Future[np.ndarray]] = deque()
        try:
            for item in inputs:
                in_flight.append(self._executor.submit(call, item))
                if len(in_flight) > 2 * self.threads:
                    collect(in_flight.popleft().result())
            while in_flight:
                collect(in_flight.popleft().result())
        finally:
            for future in in_flight:  # after an error: drop the calls not yet started
                future.cancel()


BACKGROUND = BackgroundCores(_usable_cores())


class Runtime(Protocol):
    """A loaded model: encoded windows `(n, window, 1)` float32 -> raw outputs `(n, 1)`."""

    name: str
    # Cheap enough to run on the event loop, and worth batching across concurrent requests;
    # a slow runtime runs in a worker thread, one request at a time.
    inline: bool

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Raw model outputs for encoded windows."""
        ...


def session_options() -> ort.SessionOptions:
    """ONNX Runtime's options for a served model."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # One thread per session: a request's compute is too little to split, and an intra-op
    # pool that spins between calls steals the core the event loop needs; scale out with
    # uvicorn workers, one per core (docs/decisions/0006-onnx-runtime-one-thread.md).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxRuntime:
    """ONNX Runtime on the CPU, built from the verified bytes of `model.onnx`."""

    name = "onnx"
    inline = True

    def __init__(self, bundle: Bundle):
        # Reading the verified bytes (rather than the path) closes the gap between checking the
        # file's sha256 and loading it.
        self._session = ort.InferenceSession(
            bundle.read_verified(ONNX_FILE), session_options(), providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def run(self, inputs: np.ndarray) -> np.ndarray:
        # InferenceSession.run is thread-safe, so requests share one session.
        if len(inputs) <= ONNX_CHUNK:
            return np.asarray(self._session.run(None, {self._input: inputs})[0])
        return np.concatenate(
            [
                self._session.run(None, {self._input: inputs[start : start + ONNX_CHUNK]})[0]
                for start in range(0, len(inputs), ONNX_CHUNK)
            ]
        )


class KerasRuntime:
    """Keras 3 (TensorFlow) for parity checks and benchmarks; needs the train extra."""

    name = "keras"
    # The tutorial's way of serving (one `model.predict` per request): the benchmark's
    # baseline, so it is deliberately not batched across requests.
    inline = False

    def __init__(self, bundle: Bundle):
        try:
            import keras  # lazy: only this backend may import TensorFlow
        except ImportError as exc:
            raise RuntimeError(
                "PREDICTOR_BACKEND=keras needs the train extra "
                f"(pip install -r requirements/train.txt): {exc}"
            ) from exc

        bundle.read_verified(KERAS_FILE)  # re-checked right before loading, like model.onnx
        self._model: Any = keras.saving.load_model(bundle.file(KERAS_FILE), safe_mode=True)
        self._lock = threading.Lock()  # a Keras model is not safe to call from several threads

    def run(self, inputs: np.ndarray) -> np.ndarray:
        # `predict` runs a compiled graph; calling the model eagerly would step the LSTMs op by
        # op in Python, several times slower (docs/decisions/0004-onnx-runtime-over-keras.md).
        with self._lock:
            return np.asarray(self._model.predict(inputs, verbose=0))


def make_runtime(backend: str, bundle: Bundle) -> Runtime:
    """The runtime named by PREDICTOR_BACKEND for `bundle`."""
    if backend == "keras":
        return KerasRuntime(bundle)
    return OnnxRuntime(bundle)


@dataclass(frozen=True)
class Predictions:
    """Next closes `(n,)` and, for a bundle with a scale output, each window's predicted scale
    of the next change as a share of its last close `(n,)` (else None)."""

    closes: np.ndarray
    scales: np.ndarray | None = None


def _no_finite_prediction(index: int) -> InvalidInputError:
    return InvalidInputError(
        f"window {index}: the model gives no finite prediction for these closes (far outside "
        "the range it was trained on)"
    )


def interval_bounds(
    intervals: IntervalSpec,
    predictions: Predictions,
    last_close: np.ndarray | float,
    level: float,
    steps_ahead: np.ndarray | int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """`level`% bounds around `predictions` with either kind of interval."""
    return interval_band(
        intervals, predictions.closes, last_close, predictions.scales, level, steps_ahead
    )


class Predictor:
    """A bundle and its runtime: encodes windows with the bundle's scaler, runs, decodes."""

    def __init__(self, bundle: Bundle, runtime: Runtime):
        self.bundle = bundle
        self.runtime = runtime
        self.encoding: WindowEncoding = bundle.encoding
        # Parsed once here: requests only look the level's width up.
        self.intervals: IntervalSpec | None = bundle.intervals
        self.window = bundle.window
        self.version_label = str(bundle.version)  # the metrics label, built once
        self._scale = (
            self.intervals.scale_output if isinstance(self.intervals, ScaledIntervals) else None
        )

    @property
    def name(self) -> str:
        """The served model's name."""
        return self.bundle.name

    @property
    def version(self) -> int:
        """The served model's version."""
        return self.bundle.version

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Next closes (float64, shape `(n,)`) for windows of closes `(n, window)`, in one call
        (a long batch runs PREDICT_CHUNK windows at a time)."""
        return self.forecast(windows).closes

    def forecast(self, windows: np.ndarray) -> Predictions:
        """Next closes and (with a scale output) their predicted scales, in one call (a long
        batch runs PREDICT_CHUNK windows at a time)."""
        windows = np.asarray(windows, dtype=np.float64)
        if windows.ndim != 2 or windows.shape[1] != self.window:
            raise InvalidInputError(
                f"each window must hold {self.window} closes (got shape {list(windows.shape)})"
            )
        closes, scales = self._joined(self._run_all(windows))
        finite = np.isfinite(closes)
        if scales is not None:
            finite &= np.isfinite(scales)
        if not finite.all():
            raise _no_finite_prediction(int(np.argmin(finite)))
        return Predictions(closes, scales)

    def forecast_one(self, closes: Sequence[float]) -> tuple[float, float | None]:
        """`forecast` for one window of closes, decoded in Python floats: the same close and
        scale to the last digit, without the array calls that cost a lone request more than
        the arithmetic (docs/decisions/0024-one-window-in-python-floats.md)."""
        window = np.array([closes], dtype=np.float64)
        if window.shape != (1, self.window):
            raise InvalidInputError(
                f"each window must hold {self.window} closes (got shape {list(window.shape)})"
            )
        outputs = np.asarray(self.runtime.run(self._encode(window)))
        self._check_scale_column(outputs)
        row = outputs[0].tolist()
        close = self.encoding.decode_one(row[0], closes[-1])
        scale = None if self._scale is None else self._scale.relative_scale_one(row)
        if not (math.isfinite(close) and (scale is None or math.isfinite(scale))):
            raise _no_finite_prediction(0)
        return close, scale

    def _joined(
        self, outputs: list[tuple[np.ndarray, np.ndarray | None]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The closes and scales of every chunk's outputs, end to end."""
        if len(outputs) == 1:  # one model call: nothing to join
            return outputs[0]
        closes = np.concatenate([np.empty(0), *(chunk_closes for chunk_closes, _ in outputs)])
        if self._scale is None:
            return closes, None
        return closes, np.concatenate([np.empty(0), *(scales for _, scales in outputs)])

    def _run_all(self, windows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Decoded outputs for `windows`: a short batch in one call in this thread, a long one
        PREDICT_CHUNK windows at a time, encoded and decoded here, run on the background cores
        (with ONNX Runtime)."""
        if len(windows) == 0:
            return []
        if len(windows) <= ONNX_CHUNK:
            return [self._decode(self.runtime.run(self._encode(windows)), windows)]
        chunks = [
            windows[start : start + PREDICT_CHUNK]
            for start in range(0, len(windows), PREDICT_CHUNK)
        ]
        if not self.runtime.inline:  # Keras holds the GIL as it runs: not on an idle thread
            return [self._decode(self.runtime.run(self._encode(chunk)), chunk) for chunk in chunks]
        decoded: list[tuple[np.ndarray, np.ndarray | None]] = []

        def collect(outputs: np.ndarray) -> None:
            decoded.append(self._decode(outputs, chunks[len(decoded)]))

        BACKGROUND.run_all(self.runtime.run, (self._encode(chunk) for chunk in chunks), collect)
        return decoded

    def _encode(self, chunk: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.encoding.encode(chunk)

    def _decode(
        self, outputs: np.ndarray, chunk: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Decoded closes and (with a scale output) relative scales from one model call."""
        outputs = np.asarray(outputs)
        # The point forecast is column 0; a scaled bundle's graph adds its scale as column 1.
        closes = self.encoding.decode(outputs[:, :1], chunk)
        if self._scale is None:
            return closes, None
        self._check_scale_column(outputs)
        return closes, self._scale.relative_scale(outputs)

    def _check_scale_column(self, outputs: np.ndarray) -> None:
        """ManifestError when the intervals need a scale column the model's outputs lack."""
        if self._scale is not None and (outputs.ndim != 2 or outputs.shape[1] <= self._scale.index):
            raise ManifestError(
                f"the intervals need the model's scale output (column {self._scale.index}), "
                f"but the model returns shape {list(outputs.shape)}"
            )

    def warm_up(self) -> None:
        """One prediction on the bundle's own context, so the first request is not the slow one."""
        context = self.bundle.context_closes[-self.window :]
        if len(context) < self.window:
            context = np.resize(context if len(context) else np.ones(1), self.window)
        self.predict(context[np.newaxis, :])
