"""Bundle artifacts: `model.keras`, `model.onnx` (made lean, checked for parity) and the test-month
chart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from training.errors import ParityError
from training.lean_graph import lean_model

ONNX_OPSET = 17
ONNX_INPUT = "window"
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class OnnxExport:
    """Where the ONNX model went and its input/output names."""

    path: Path
    opset: int
    input_name: str
    output_name: str


def save_keras(model: keras.Model, path: Path) -> Path:
    """The native Keras 3 format, for the optional Keras backend of the server and re-training."""
    model.save(path)
    return path


def export_onnx(model: keras.Model, window: int, path: Path) -> OnnxExport:
    """Write tf2onnx's graph of `model` made lean by `lean_graph.lean_model` (the same math in
    fewer, fused nodes) to `path`."""
    proto = lean_model(convert_to_onnx(model, window))
    onnx.save_model(proto, str(path))
    return OnnxExport(path, ONNX_OPSET, proto.graph.input[0].name, proto.graph.output[0].name)


def convert_to_onnx(model: keras.Model, window: int) -> onnx.ModelProto:
    """tf2onnx's graph of `model`, converted through a `tf.function` with a fixed
    `[None, window, 1]` signature (tf2onnx's `from_keras` does not understand Keras 3 models)."""
    signature = (tf.TensorSpec([None, window, 1], tf.float32, name=ONNX_INPUT),)

    @tf.function(input_signature=signature)
    def serve(inputs: tf.Tensor) -> tf.Tensor:
        return model(inputs, training=False)

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=ONNX_OPSET)
    return proto


def run_onnx(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Raw model outputs `(n, 1)` from ONNX Runtime on the CPU, the way the server runs it."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: inputs.astype(np.float32)})[0])


def check_parity(
    keras_outputs: np.ndarray, onnx_outputs: np.ndarray, tolerance: float = PARITY_TOLERANCE
) -> float:
    """The largest absolute difference between the two models' raw outputs; raises
    `ParityError` above `tolerance` so a wrong export is never published."""
    keras_outputs = np.asarray(keras_outputs, dtype=np.float64).reshape(-1)
    onnx_outputs = np.asarray(onnx_outputs, dtype=np.float64).reshape(-1)
    if keras_outputs.shape != onnx_outputs.shape:
        raise ParityError(
            f"ONNX returned {onnx_outputs.shape[0]} outputs, Keras {keras_outputs.shape[0]}"
        )
    max_abs_diff = float(np.max(np.abs(keras_outputs - onnx_outputs)))
    if not max_abs_diff <= tolerance:  # `not <=` also catches NaN
        raise ParityError(
            f"ONNX export differs from Keras by {max_abs_diff:.3g} (tolerance {tolerance:g})"
        )
    return max_abs_diff


def write_chart(
    path: Path,
    dates: np.ndarray,
    actual: np.ndarray,
    predicted: np.ndarray,
    persistence: np.ndarray,
    band: tuple[np.ndarray, np.ndarray],
    title: str,
    walk_forward: dict[str, Any] | None = None,
    test_metrics: dict[str, dict[str, float]] | None = None,
) -> Path:
    """The tutorial's figure (actual vs predicted close over the test month) with the persistence
    baseline and the prediction interval `band`; below it, when there was a walk-forward, each
    fold's RMSE ratio to persistence for the model and the other baselines (the test month last).
    Uses the Agg canvas, no display needed."""
    panels = 2 if walk_forward else 1
    figure = Figure(figsize=(10, 5 * panels), dpi=100)
    axes = figure.add_subplot(panels, 1, 1)
    days = np.asarray(dates, dtype="datetime64[D]")
    axes.fill_between(days, band[0], band[1], color="tab:green", alpha=0.15, label="Interval")
    axes.plot(days, actual, color="black", marker="o", markersize=3, label="Actual close")
    axes.plot(
        days, predicted, color="tab:green", marker="o", markersize=3, label="Predicted (LSTM)"
    )
    axes.plot(
        days, persistence, color="tab:gray", linestyle="--", label="Persistence (previous close)"
    )
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_title(title)
    axes.set_xlabel("Date")
    axes.set_ylabel("Close price")
    axes.grid(alpha=0.3)
    axes.legend()
    if walk_forward:
        _walk_forward_panel(figure.add_subplot(2, 1, 2), walk_forward, test_metrics)
    figure.tight_layout()
    # No Software/date metadata: the same data gives the same bytes.
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def _walk_forward_panel(
    axes: Any, walk_forward: dict[str, Any], test_metrics: dict[str, dict[str, float]] | None
) -> None:
    columns = [(fold["label"], fold) for fold in walk_forward["folds"]]
    columns.append(("overall", walk_forward["overall"]))
    if test_metrics:
        columns.append(("test", test_metrics))
    positions = np.arange(len(columns))
    series = (("model", "tab:green"), ("drift", "tab:orange"), ("moving_average", "tab:blue"))
    width = 0.8 / len(series)
    # The axis spans the model's and drift's ratios (a few percent around 1); a baseline far off
    # (the moving average is often 2-10x) would flatten everything else, so its bars are cut at
    # the top and labelled with their value.
    near = [values[label]["ratio"] for _, values in columns for label in ("model", "drift")]
    low, high = min(0.95, min(near) - 0.02), max(1.05, max(near) + 0.02)
    for index, (label, colour) in enumerate(series):
        ratios = [values[label]["ratio"] for _, values in columns]
        offsets = positions + (index - 1) * width
        axes.bar(offsets, ratios, width, color=colour, label=label)
        for offset, ratio in zip(offsets, ratios, strict=True):
            if ratio > high:
                axes.annotate(
                    f"{ratio:.1f}", (offset, high), ha="center", va="top", fontsize=7, rotation=90
                )
    axes.set_ylim(low, high)
    axes.axhline(1.0, color="black", linewidth=1, label="persistence")
    axes.set_xticks(positions, [label for label, _ in columns], rotation=45, ha="right")
    axes.set_ylabel("RMSE / persistence RMSE")
    axes.set_title(
        f"Walk-forward ({walk_forward['scheme']} folds): lower is better, 1 = persistence"
    )
    axes.grid(alpha=0.3, axis="y")
    axes.legend()
