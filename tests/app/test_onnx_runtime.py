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
