"""Runs a bundle's model: windows of closes in, next closes out.

The default runtime is ONNX Runtime (numpy only). The Keras runtime imports TensorFlow lazily, in
its constructor, so the serving process never imports it unless PREDICTOR_BACKEND=keras.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
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
# Windows encoded, run and decoded this many at a time, so a long CSV's float copies stay a few
# MB whatever its length.
PREDICT_CHUNK = 4096


class Runtime(Protocol):
    """A loaded model: encoded windows `(n, window, 1)` float32 -> raw outputs `(n, 1)`."""

    name: str
    # Cheap enough to run on the event loop, and worth batching across concurrent requests;
    # a slow runtime runs in a worker thread, one request at a time.
    inline: bool

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Raw model outputs for encoded windows."""
        ...


def _lowest_cpu_priority() -> None:
    """Let the calling thread, and the threads it starts, run only on CPU time no other thread
    wants (Linux SCHED_IDLE: a normal thread that wakes up takes the core at once); elsewhere,
    or where it is refused, they keep the normal priority."""
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle pool threads sleep instead of spinning, so they never take a core from the loop.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _background_session(model: bytes, threads: int) -> ort.InferenceSession:
    """A session whose `threads` pool threads run at the lowest CPU priority: they are started
    from a thread at that priority, which they inherit. Run it with `_run_in_pool`, so they do
    all of the work."""
    # ONNX Runtime counts the calling thread as one of the intra-op threads.
    with ThreadPoolExecutor(1, initializer=_lowest_cpu_priority) as builder:
        return builder.submit(_session, model, threads + 1).result()


def _run_in_pool(session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> np.ndarray:
    """The session's first output for `feed`, computed by its pool threads while the calling
    thread waits (holding no GIL, using no CPU)."""
    done = threading.Event()
    result: list[tuple[list[np.ndarray], str]] = []

    def finished(outputs: list[np.ndarray], _: object, error: str) -> None:
        result.append((outputs, error))
        done.set()

    session.run_async(None, feed, finished, None)
    done.wait()
    outputs, error = result[0]
    if error:
        raise RuntimeError(f"ONNX Runtime: {error}")
    return np.asarray(outputs[0])


class OnnxRuntime:
    """ONNX Runtime on the CPU, built from the verified bytes of `model.onnx`: one session for
    small batches and one for big batches, computed on every core at the lowest CPU priority.

    The small-batch session has one thread: a request's compute is too little to split, and
    scaling out is uvicorn workers, one per core (docs/decisions/0006-onnx-runtime-one-thread.md).
    The big-batch session's threads do the whole of a long /forecast's model work on the cores
    nothing else needs, so the event loop and light requests keep theirs
    (docs/decisions/0017-big-batches-on-idle-cores.md).
    """

    name = "onnx"
    inline = True

    def __init__(self, bundle: Bundle, cores: int | None = None):
        """`cores`: threads for big batches (default: the cores this process may run on)."""
        # Reading the verified bytes (rather than the path) closes the gap between checking the
        # file's sha256 and loading it.
        model = bundle.read_verified(ONNX_FILE)
        self._session = _session(model, 1)
        self._bulk = _background_session(model, _usable_cores() if cores is None else cores)
        self._input = self._session.get_inputs()[0].name

    def run(self, inputs: np.ndarray) -> np.ndarray:
        # InferenceSession.run is thread-safe, so requests share the sessions.
        if len(inputs) <= ONNX_CHUNK:
            return np.asarray(self._session.run(None, {self._input: inputs})[0])
        return np.concatenate(
            [
                _run_in_pool(self._bulk, {self._input: inputs[start : start + ONNX_CHUNK]})
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
        closes = np.empty(len(windows), dtype=np.float64)
        scales = None if self._scale is None else np.empty(len(windows), dtype=np.float64)
        for start in range(0, len(windows), PREDICT_CHUNK):
            chunk = windows[start : start + PREDICT_CHUNK]
            span = slice(start, start + len(chunk))
            closes[span], chunk_scales = self._run(chunk)
            if scales is not None and chunk_scales is not None:
                scales[span] = chunk_scales
        bad = np.flatnonzero(~np.isfinite(closes))
        if scales is not None:
            bad = np.union1d(bad, np.flatnonzero(~np.isfinite(scales)))
        if len(bad):
            raise InvalidInputError(
                f"window {int(bad[0])}: the model gives no finite prediction for these closes "
                "(far outside the range it was trained on)"
            )
        return Predictions(closes, scales)

    def _run(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One model call: decoded closes and (with a scale output) relative scales."""
        with np.errstate(over="ignore", invalid="ignore"):
            inputs = self.encoding.encode(chunk)
        outputs = np.asarray(self.runtime.run(inputs))
        # The point forecast is column 0; a scaled bundle's graph adds its scale as column 1.
        closes = self.encoding.decode(outputs[:, :1], chunk)
        if self._scale is None:
            return closes, None
        if outputs.ndim != 2 or outputs.shape[1] <= self._scale.index:
            raise ManifestError(
                f"the intervals need the model's scale output (column {self._scale.index}), "
                f"but the model returns shape {list(outputs.shape)}"
            )
        return closes, self._scale.relative_scale(outputs)

    def warm_up(self) -> None:
        """One prediction on the bundle's own context, so the first request is not the slow one."""
        context = self.bundle.context_closes[-self.window :]
        if len(context) < self.window:
            context = np.resize(context if len(context) else np.ones(1), self.window)
        self.predict(context[np.newaxis, :])
