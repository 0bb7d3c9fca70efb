"""In-process predictor latency, without HTTP: `python -m bench.inprocess BACKEND STORE NAME VERSION CALLS`.

Runs in its own interpreter per backend so that the Keras backend's TensorFlow never shares a
process (or its memory and threads) with the ONNX measurement. Prints one JSON object: p50/p99 of
the app's `Predictor.predict` on one window.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from app.predictor import Predictor, make_runtime
from model_store import ModelStore


def percentiles_ms(call: Callable[[], Any], count: int) -> dict[str, float]:
    """p50 and p99 wall-clock milliseconds of `count` calls, after 10 untimed ones."""
    for _ in range(10):
        call()
    seconds = np.empty(count)
    for i in range(count):
        started = time.perf_counter()
        call()
        seconds[i] = time.perf_counter() - started
    return {
        "p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "p99_ms": float(np.percentile(seconds, 99) * 1e3),
    }


def main(argv: list[str]) -> int:
    backend, store, name, version, calls = argv
    bundle = ModelStore(store).load(name, version)
    predictor = Predictor(bundle, make_runtime(backend, bundle))
    window = bundle.context_closes[-bundle.window :][np.newaxis, :]
    result = percentiles_ms(lambda: predictor.predict(window), int(calls))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
