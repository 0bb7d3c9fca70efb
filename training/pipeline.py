"""One training run end to end: load, scale, window, fit, evaluate, export, check parity, publish.

TensorFlow, tf2onnx and ONNX Runtime are imported only once the inputs have passed their checks:
a bad CSV or option is reported at once, not after TensorFlow's start-up of several seconds.
"""

from __future__ import annotations

import logging
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_store import Bundle, ModelStore, validate_name
from training.data import TrainTestData, load_train_test
from training.errors import InputError
from training.evaluate import evaluation_set, metrics

logger = logging.getLogger(__name__)

KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
CHART_FILE = "report.png"


@dataclass(frozen=True)
class TrainConfig:
    """Inputs and hyperparameters of one run; the defaults are the reference tutorial's."""

    train_csv: Path
    test_csv: Path
    store: Path
    name: str
    epochs: int = 100
    units: int = 45
    layers: int = 4
    batch_size: int = 32
    dropout: float = 0.2
    window: int = 40
    seed: int = 42
    column: str = "Close"

    @property
    def preset(self) -> str:
        """`tutorial` when every hyperparameter is the tutorial's, else `custom`."""
        tutorial = TrainConfig(self.train_csv, self.test_csv, self.store, self.name)
        same = all(
            getattr(self, key) == getattr(tutorial, key)
            for key in ("epochs", "units", "layers", "batch_size", "dropout", "window")
        )
        return "tutorial" if same else "custom"

    def validate(self) -> None:
        """Refuse impossible settings before any data is read or any model is built."""
        validate_name(self.name)
        for key in ("epochs", "units", "layers", "batch_size", "window"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(
                    f"{key.replace('_', '-')} must be a positive integer, got {value!r}"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")


def library_versions() -> dict[str, str]:
    """The versions that produced a bundle, for the manifest."""
    import keras
    import onnxruntime
    import sklearn
    import tensorflow as tf
    import tf2onnx

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tf2onnx": tf2onnx.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }


def train_and_publish(config: TrainConfig) -> Bundle:
    """Train the model `config` describes, evaluate it on the test CSV the tutorial's way, export
    and parity-check it, and publish the bundle as the next version of `config.name`.

    `metrics` and `evaluation.predicted` come from the exported ONNX model decoded with the
    stored encoding, i.e. exactly what the server will answer.
    """
    config.validate()
    data = load_train_test(config.train_csv, config.test_csv, config.column, config.window)
    return _train_export_publish(config, data)


def _train_export_publish(config: TrainConfig, data: TrainTestData) -> Bundle:
    from training.export import (
        PARITY_TOLERANCE,
        check_parity,
        export_onnx,
        run_onnx,
        save_keras,
        write_chart,
    )
    from training.fit import fit_model, seed_everything
    from training.model import build_model
    from training.windows import fit_encoding, training_set

    train_closes, test_closes = data.train_closes, data.test_closes
    logger.info(
        "training on %d rows of %s (%s .. %s), testing on %d rows of %s",
        len(train_closes),
        data.train.path.name,
        data.train.series.iso_dates()[0],
        data.train.series.iso_dates()[-1],
        len(test_closes),
        data.test.path.name,
    )

    encoding = fit_encoding(train_closes)
    inputs, targets = training_set(train_closes, config.window, encoding)
    logger.info("windows %s -> targets %s", inputs.shape, targets.shape)

    seed_everything(config.seed)
    model = build_model(config.window, config.units, config.layers, config.dropout)
    fit = fit_model(model, inputs, targets, epochs=config.epochs, batch_size=config.batch_size)

    evaluation = evaluation_set(train_closes, test_closes, config.window)
    evaluation_inputs = encoding.encode(evaluation.windows)
    test_dates = data.test.series.iso_dates()

    with tempfile.TemporaryDirectory(prefix="training-export-") as scratch:
        folder = Path(scratch)
        save_keras(model, folder / KERAS_FILE)
        onnx = export_onnx(model, config.window, folder / ONNX_FILE)
        keras_outputs = model.predict(evaluation_inputs, verbose=0)
        onnx_outputs = run_onnx(onnx.path, evaluation_inputs)
        max_abs_diff = check_parity(keras_outputs, onnx_outputs)
        logger.info("ONNX parity: max abs diff %.3g on %d windows", max_abs_diff, len(onnx_outputs))

        predicted = encoding.decode(onnx_outputs, evaluation.windows)
        persistence = evaluation.persistence
        write_chart(
            folder / CHART_FILE,
            data.test.series.dates,
            evaluation.actual,
            predicted,
            persistence,
            title=f"{config.name}: {config.column} predicted vs actual "
            f"({test_dates[0]} .. {test_dates[-1]})",
        )

        manifest: dict[str, Any] = {
            "window": config.window,
            "feature": data.train.series.column,
            "scaler": encoding.to_json(),
            "context": {
                "dates": data.train.series.iso_dates()[-config.window :],
                "closes": train_closes[-config.window :].tolist(),
            },
            "metrics": {
                "model": metrics(evaluation.actual, predicted),
                "persistence": metrics(evaluation.actual, persistence),
            },
            "evaluation": {
                "dates": test_dates,
                "actual": evaluation.actual.tolist(),
                "predicted": predicted.tolist(),
                "persistence": persistence.tolist(),
            },
            "training": {
                "preset": config.preset,
                "epochs": config.epochs,
                "epochs_run": fit.epochs_run,
                "batch_size": config.batch_size,
                "units": config.units,
                "layers": config.layers,
                "dropout": config.dropout,
                "optimizer": "adam",
                "loss": "mse",
                "seed": config.seed,
                "final_loss": fit.final_loss,
                "train_windows": int(inputs.shape[0]),
            },
            "data": {"train": data.train.fingerprint(), "test": data.test.fingerprint()},
            "parity": {
                "max_abs_diff": max_abs_diff,
                "tolerance": PARITY_TOLERANCE,
                "windows": len(onnx_outputs),
            },
            "onnx": {"input": onnx.input_name, "output": onnx.output_name, "opset": onnx.opset},
            "versions": library_versions(),
        }
        files = {name: folder / name for name in (KERAS_FILE, ONNX_FILE, CHART_FILE)}
        bundle = ModelStore(config.store).publish(config.name, files, manifest)
    logger.info("published %s v%d at %s", bundle.name, bundle.version, bundle.path)
    return bundle
