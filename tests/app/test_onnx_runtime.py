"""OnnxRuntime on large batches: chunked calls give the one-call answers and bounded memory, and
big batches run on threads at the lowest priority."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import onnxruntime as ort
import psutil
import pytest

from app.errors import InvalidInputError
from app.predictor import (
    BACKGROUND,
    LOWEST_NICE,
    ONNX_CHUNK,
    ONNX_FILE,
    PREDICT_CHUNK,
    OnnxRuntime,
    Predictor,
)
from app.settings import DEFAULT_STORE_DIR
from model_store import Bundle, ModelStore


def rss_mb() -> float:
    """Resident memory of this process, MiB."""
    return psutil.Process().memory_info().rss / 2**20


def encoded_windows(bundle: Bundle, count: int) -> np.ndarray:
    context = bundle.context_closes[-bundle.window :]
    windows = np.stack([context * (1.0 + 0.0005 * (i % 200)) for i in range(count)])
    return bundle.encoding.encode(windows)


def test_a_chunked_batch_equals_one_onnx_call(tiny_bundle: Bundle) -> None:
    inputs = encoded_windows(tiny_bundle, 2 * ONNX_CHUNK + 7)
    session = ort.InferenceSession(
        tiny_bundle.read_verified(ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    whole = session.run(None, {session.get_inputs()[0].name: inputs})[0]

    chunked = OnnxRuntime(tiny_bundle).run(inputs)

    assert chunked.shape == whole.shape and chunked.shape[0] == len(inputs)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("count", [3, ONNX_CHUNK + 3])  # one model call, and several
def test_the_first_window_without_a_finite_prediction_is_named(
    tiny_bundle: Bundle, count: int
) -> None:
    predictor = Predictor(tiny_bundle, OnnxRuntime(tiny_bundle))
    windows = np.full((count, tiny_bundle.window), 100.0)
    # Each close finite and positive, their ratios overflow: no finite encoded window.
    for bad in (1, count - 1):
        windows[bad, :-1], windows[bad, -1] = 1e300, 1e-300

    with pytest.raises(InvalidInputError, match=r"^window 1: the model gives no finite"):
        predictor.forecast(windows)
    assert np.isfinite(predictor.forecast(windows[2:-1]).closes).all()


def test_a_10000_window_batch_leaves_the_memory_where_it_was() -> None:
    """ONNX Runtime's arena keeps its largest buffers: one 10,000-window call on the demo store's
    v1 (the tutorial's 4 x LSTM(45)) used to leave ~550 MB behind in the serving process."""
    bundle = ModelStore(DEFAULT_STORE_DIR).verify("fb-lstm", 1)
    runtime = OnnxRuntime(bundle)
    inputs = encoded_windows(bundle, 10_000)
    runtime.run(inputs[:ONNX_CHUNK])  # the arena at its working size
    before = rss_mb()

    outputs = runtime.run(inputs)

    assert outputs.shape == (10_000, 1) and np.isfinite(outputs).all()
    assert rss_mb() - before < 60.0


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
def test_a_big_batch_runs_on_lowest_priority_threads_with_the_same_answers(
    tiny_bundle: Bundle,
) -> None:
    predictor = Predictor(tiny_bundle, OnnxRuntime(tiny_bundle))
    context = tiny_bundle.context_closes[-tiny_bundle.window :]
    windows = np.stack([context * (1.0 + 0.0005 * (i % 200)) for i in range(3 * PREDICT_CHUNK + 5)])

    big = predictor.forecast(windows)

    workers = [t for t in threading.enumerate() if t.name.startswith("background-inference")]
    assert workers and len(workers) <= BACKGROUND.threads
    assert all(os.getpriority(os.PRIO_PROCESS, t.native_id or 0) == LOWEST_NICE for t in workers)
    assert os.getpriority(os.PRIO_PROCESS, 0) < LOWEST_NICE  # the thread that asked stays as is
    # Batches of at most ONNX_CHUNK windows run in the calling thread: the same bits.
    alone = [
        predictor.forecast(windows[i : i + ONNX_CHUNK]) for i in range(0, len(windows), ONNX_CHUNK)
    ]
    assert np.array_equal(big.closes, np.concatenate([a.closes for a in alone]))
