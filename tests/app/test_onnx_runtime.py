"""OnnxRuntime on large batches: chunked calls give the one-call answers and bounded memory, and
run on idle-priority threads, one per core."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import numpy as np
import onnxruntime as ort
import psutil
import pytest

from app.predictor import ONNX_CHUNK, ONNX_FILE, OnnxRuntime
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


def idle_priority_threads() -> set[int]:
    """This process' threads that run at Linux's SCHED_IDLE priority."""
    idle = set()
    for thread in psutil.Process().threads():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            if os.sched_getscheduler(thread.id) == os.SCHED_IDLE:
                idle.add(thread.id)
    return idle


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_big_batches_run_on_idle_priority_threads_one_per_core_with_the_same_answers(
    tiny_bundle: Bundle,
) -> None:
    before = idle_priority_threads()

    spread = OnnxRuntime(tiny_bundle, cores=3)

    # Three pool threads of its own, started at idle priority (by a builder thread, itself at
    # idle priority, that ends just after); the thread that asked stays normal.
    deadline = time.monotonic() + 30
    while len(idle_priority_threads() - before) > 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(idle_priority_threads() - before) == 3
    assert threading.get_native_id() not in idle_priority_threads()
    inputs = encoded_windows(tiny_bundle, 3 * ONNX_CHUNK + 5)
    # Calls of at most ONNX_CHUNK windows run on the one-thread session: the same bits.
    one_thread = [spread.run(inputs[i : i + ONNX_CHUNK]) for i in range(0, len(inputs), ONNX_CHUNK)]
    assert np.array_equal(spread.run(inputs), np.concatenate(one_thread))
