"""One window of closes in, our /predict answer out: what every peer runs per request.

The encoding and intervals are model_store's, and the ONNX Runtime session is built with the
options app/predictor.py uses, so a peer's answer equals our service's to the last digit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from model_store import DEFAULT_LEVEL, ONNX_FILE, ModelStore, ScaledIntervals, interval_band

# The bundle every peer serves, from the environment `make bench` starts it with.
STORE_ENV, NAME_ENV, VERSION_ENV = "PEER_STORE_DIR", "PEER_MODEL_NAME", "PEER_MODEL_VERSION"


def session_options() -> ort.SessionOptions:
    """app/predictor.py's options: one intra-op and one inter-op thread, sequential, all graph
    optimisations, warnings off."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class PeerModel:
    """A bundle's ONNX model with its encoding and intervals, one window per call."""

    def __init__(self, store: Path, name: str, version: str = "latest"):
        bundle = ModelStore(store).load(name, version)
        self.name, self.version, self.window = bundle.name, bundle.version, bundle.window
        self.encoding = bundle.encoding
        self.intervals = bundle.intervals
        self.session = ort.InferenceSession(
            bundle.read_verified(ONNX_FILE), session_options(), providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name

    @classmethod
    def from_env(cls) -> PeerModel:
        """The bundle named by PEER_STORE_DIR, PEER_MODEL_NAME and PEER_MODEL_VERSION."""
        return cls(
            Path(os.environ[STORE_ENV]),
            os.environ.get(NAME_ENV, "fb-lstm"),
            os.environ.get(VERSION_ENV, "latest"),
        )

    def answer(self, closes: list[float], level: int = DEFAULT_LEVEL) -> dict[str, Any]:
        """Our single-window /predict body for `closes`; ValueError for a wrong length."""
        windows = np.array([closes], dtype=np.float64)
        if windows.shape != (1, self.window):
            raise ValueError(f"closes must hold {self.window} closes (got {len(closes)})")
        outputs = np.asarray(self.session.run(None, {self.input: self.encoding.encode(windows)})[0])
        predicted = self.encoding.decode(outputs[:, :1], windows)
        last = windows[:, -1]
        relative = (
            self.intervals.scale_output.relative_scale(outputs)
            if isinstance(self.intervals, ScaledIntervals)
            else None
        )
        lower = upper = None
        if self.intervals is not None:
            low, high = interval_band(self.intervals, predicted, last, relative, level)
            lower, upper = float(low[0]), float(high[0])
        return {
            "next_close": float(predicted[0]),
            "lower": lower,
            "upper": upper,
            "scale": None if relative is None else float(relative[0] * last[0]),
            "level": level,
            "model": {"name": self.name, "version": self.version},
        }
