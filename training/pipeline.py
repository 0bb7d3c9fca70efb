"""One training run end to end: load, walk-forward backtest, fit, evaluate, calibrate intervals,
export, check parity, publish.

TensorFlow, tf2onnx and ONNX Runtime are imported only once the inputs have passed their checks:
a bad CSV or option is reported at once, not after TensorFlow's start-up of several seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_store import (
    Bundle,
    Intervals,
    ModelStore,
    conformal_quantiles,
    sliding_windows,
    validate_name,
)
from training.data import TrainTestData, load_train_test
from training.errors import InputError
from training.evaluate import baseline_predictions, evaluation_set, scored
from training.presets import MODEL_SETTINGS, PRESETS, Settings
from training.walkforward import (
    COVERAGE_LEVELS,
    SCHEMES,
    Fold,
    FoldResult,
    choose_shrink,
    leave_one_fold_out_coverage,
    plan_folds,
    relative_residuals,
    run_folds,
    shrink_curve,
    shrunk,
    summarize,
)

logger = logging.getLogger(__name__)

KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
CHART_FILE = "report.png"
ENCODINGS = ("relative", "minmax")
IN_SAMPLE_CALIBRATION = 250  # windows, only when there is no walk-forward to calibrate on


@dataclass(frozen=True)
class TrainConfig:
    """Inputs and settings of one run. Settings left `None` come from `preset`."""

    train_csv: Path
    test_csv: Path
    store: Path
    name: str
    preset: str = "default"
    encoding: str | None = None
    epochs: int | None = None
    units: int | None = None
    layers: int | None = None
    batch_size: int | None = None
    dropout: float | None = None
    window: int = 40
    seed: int | None = None
    members: int | None = None
    walk_forward: str | None = None
    folds: int | None = None
    shrink: float | None = None
    column: str = "Close"

    @property
    def settings(self) -> Settings:
        """The preset's settings with this run's explicit values applied."""
        base = PRESETS.get(self.preset, PRESETS["default"])
        given = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(Settings)
            if getattr(self, field.name) is not None
        }
        return dataclasses.replace(base, **given)

    @property
    def preset_label(self) -> str:
        """The preset's name when every model setting is the preset's, else `custom`."""
        base, settings = PRESETS[self.preset], self.settings
        same = self.window == 40 and all(
            getattr(settings, key) == getattr(base, key) for key in MODEL_SETTINGS
        )
        return self.preset if same else "custom"

    def validate(self) -> None:
        """Refuse impossible settings before any data is read or any model is built."""
        validate_name(self.name)
        if self.preset not in PRESETS:
            raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        settings = self.settings
        values = {**dataclasses.asdict(settings), "window": self.window}
        for key in ("epochs", "units", "layers", "batch_size", "window", "members", "folds"):
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(
                    f"{key.replace('_', '-')} must be a positive integer, got {value!r}"
                )
        if not 0.0 <= settings.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {settings.dropout!r}")
        seed = settings.seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        if settings.encoding not in ENCODINGS:
            raise InputError(
                f"encoding must be one of {', '.join(ENCODINGS)}, got {settings.encoding!r}"
            )
        if settings.walk_forward not in SCHEMES:
            raise InputError(
                f"walk-forward must be one of {', '.join(SCHEMES)}, got {settings.walk_forward!r}"
            )
        if settings.shrink is not None:
            if settings.encoding != "relative":
                raise InputError("shrink applies to the relative encoding only")
            if not 0.0 <= settings.shrink <= 1.0:
                raise InputError(f"shrink must be in [0, 1], got {settings.shrink!r}")


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
    """Backtest the model `config` describes walk-forward, train it on the whole training CSV,
    evaluate it on the test CSV the tutorial's way, calibrate its intervals, export and
    parity-check it, and publish the bundle as the next version of `config.name`.

    `metrics` and `evaluation.predicted` come from the exported ONNX model decoded with the
    stored encoding, i.e. exactly what the server will answer.
    """
    config.validate()
    data = load_train_test(config.train_csv, config.test_csv, config.column, config.window)
    settings = config.settings
    folds: list[Fold] = []
    if settings.walk_forward != "none":
        folds = plan_folds(
            data.train.series.dates, settings.walk_forward, settings.folds, config.window
        )
    return _train_export_publish(config, settings, data, folds)


def _train_export_publish(
    config: TrainConfig, settings: Settings, data: TrainTestData, folds: list[Fold]
) -> Bundle:
    from training.export import (
        PARITY_TOLERANCE,
        check_parity,
        export_onnx,
        run_onnx,
        save_keras,
        write_chart,
    )
    from training.fit import MemberSpec, train_members
    from training.model import LEARNING_RATE, combine, shrink_output
    from training.windows import make_encoding, training_set

    window = config.window
    train_closes, test_closes = data.train_closes, data.test_closes
    train_dates = data.train.series.iso_dates()
    logger.info(
        "training on %d rows of %s (%s .. %s), testing on %d rows of %s",
        len(train_closes),
        data.train.path.name,
        train_dates[0],
        train_dates[-1],
        len(test_closes),
        data.test.path.name,
    )
    spec = MemberSpec(
        window,
        settings.units,
        settings.layers,
        settings.dropout,
        settings.output_bias,
        settings.epochs,
        settings.batch_size,
    )

    def fit_predict(closes: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """A fresh ensemble trained on `closes`; its unshrunk predictions for `windows`."""
        encoding = make_encoding(settings.encoding, closes)
        inputs, targets = training_set(closes, window, encoding, settings.sign_flip)
        members, _ = train_members(spec, settings.seeds, inputs, targets, log_epochs=False)
        encoded = encoding.encode(windows)
        outputs = np.mean([member.predict(encoded, verbose=0) for member in members], axis=0)
        return encoding.decode(outputs, windows)

    results: list[FoldResult] = []
    for fold in folds:
        logger.info(
            "walk-forward fold %s (%s .. %s): training %d member(s) on %d windows",
            fold.label,
            train_dates[fold.start],
            train_dates[fold.stop - 1],
            settings.members,
            fold.start - window,
        )
        (result,) = run_folds(train_closes, train_dates, [fold], window, fit_predict)
        ratio = np.sqrt(
            np.mean((result.predicted - result.actual) ** 2)
            / np.mean((result.windows[:, -1] - result.actual) ** 2)
        )
        logger.info("  fold %s: RMSE ratio to persistence %.4f (unshrunk)", fold.label, ratio)
        results.append(result)

    relative = settings.encoding == "relative"
    curve = shrink_curve(results) if relative and results else {}
    if settings.shrink is not None:
        shrink, shrink_source = settings.shrink, "given"
    elif curve:
        shrink, shrink_source = choose_shrink(curve), "walk-forward"
    else:
        shrink, shrink_source = (1.0, "none") if relative else (1.0, "not applicable")

    encoding = make_encoding(settings.encoding, train_closes)
    inputs, targets = training_set(train_closes, window, encoding, settings.sign_flip)
    train_windows = inputs.shape[0] // (2 if settings.sign_flip else 1)
    logger.info("final model: windows %s -> targets %s", inputs.shape, targets.shape)
    members, fits = train_members(spec, settings.seeds, inputs, targets)
    if relative and shrink != 1.0:
        for member in members:
            shrink_output(member, shrink)
    model = combine(members, window)

    if results:
        residuals = [
            relative_residuals(r.actual, shrunk(r.predicted, r.windows, shrink), r.windows)
            for r in results
        ]
        calibration = np.concatenate(residuals)
        source = (
            f"walk-forward: {settings.walk_forward} folds {results[0].fold.label} .. "
            f"{results[-1].fold.label}, out of sample"
        )
    else:
        residuals = []
        tail, tail_actual = sliding_windows(
            train_closes[-(IN_SAMPLE_CALIBRATION + window) :], window
        )
        fitted = encoding.decode(model.predict(encoding.encode(tail), verbose=0), tail)
        calibration = relative_residuals(tail_actual, fitted, tail)
        source = (
            f"in-sample: last {IN_SAMPLE_CALIBRATION} training windows "
            "(no walk-forward; widths likely too narrow)"
        )
    intervals = Intervals(conformal_quantiles(calibration), len(calibration), source)

    evaluation = evaluation_set(train_closes, test_closes, window)
    evaluation_inputs = encoding.encode(evaluation.windows)
    test_dates = data.test.series.iso_dates()
    last_close = evaluation.windows[:, -1]

    with tempfile.TemporaryDirectory(prefix="training-export-") as scratch:
        folder = Path(scratch)
        save_keras(model, folder / KERAS_FILE)
        onnx = export_onnx(model, window, folder / ONNX_FILE)
        keras_outputs = model.predict(evaluation_inputs, verbose=0)
        onnx_outputs = run_onnx(onnx.path, evaluation_inputs)
        max_abs_diff = check_parity(keras_outputs, onnx_outputs)
        logger.info("ONNX parity: max abs diff %.3g on %d windows", max_abs_diff, len(onnx_outputs))

        predicted = encoding.decode(onnx_outputs, evaluation.windows)
        baselines = baseline_predictions(evaluation.windows)
        test_metrics = scored(evaluation.actual, {"model": predicted, **baselines})
        test_coverage = {}
        for level in COVERAGE_LEVELS:
            lower, upper = intervals.bounds(predicted, last_close, level)
            inside = (lower <= evaluation.actual) & (evaluation.actual <= upper)
            test_coverage[str(level)] = float(np.mean(inside))
        lower95, upper95 = intervals.bounds(predicted, last_close, 95)
        walk_forward = summarize(settings.walk_forward, results, shrink) if results else None
        if walk_forward is not None and curve:
            walk_forward["shrink_curve"] = {str(s): ratio for s, ratio in curve.items()}

        write_chart(
            folder / CHART_FILE,
            data.test.series.dates,
            evaluation.actual,
            predicted,
            evaluation.persistence,
            (lower95, upper95),
            title=f"{config.name}: {config.column} predicted vs actual "
            f"({test_dates[0]} .. {test_dates[-1]}), 95% interval",
            walk_forward=walk_forward,
            test_metrics=test_metrics,
        )

        manifest: dict[str, Any] = {
            "window": window,
            "feature": data.train.series.column,
            "scaler": encoding.to_json(),
            "context": {
                "dates": train_dates[-window:],
                "closes": train_closes[-window:].tolist(),
            },
            "metrics": {
                **test_metrics,
                "walk_forward": walk_forward,
                "intervals": {
                    "levels": list(COVERAGE_LEVELS),
                    "walk_forward": leave_one_fold_out_coverage(residuals) or None,
                    "walk_forward_method": (
                        "leave-one-fold-out: each fold's widths calibrated on the other "
                        "folds' residuals only"
                    ),
                    "test": test_coverage,
                    "test_method": "the bundle's stored widths (calibrated before the test month)",
                },
            },
            "intervals": intervals.to_json(),
            "evaluation": {
                "dates": test_dates,
                "actual": evaluation.actual.tolist(),
                "predicted": predicted.tolist(),
                "persistence": evaluation.persistence.tolist(),
                "drift": baselines["drift"].tolist(),
                "moving_average": baselines["moving_average"].tolist(),
                "level": 95,
                "lower": lower95.tolist(),
                "upper": upper95.tolist(),
            },
            "training": {
                "preset": config.preset_label,
                "encoding": settings.encoding,
                "epochs": settings.epochs,
                "epochs_run": fits[0].epochs_run,
                "batch_size": settings.batch_size,
                "units": settings.units,
                "layers": settings.layers,
                "dropout": settings.dropout,
                "optimizer": "adam",
                "learning_rate": LEARNING_RATE,
                "loss": "mse",
                "seed": settings.seed,
                "seeds": settings.seeds,
                "members": settings.members,
                "sign_flip": settings.sign_flip,
                "output_bias": settings.output_bias,
                "shrink": shrink if relative else None,
                "shrink_source": shrink_source,
                "final_loss": float(np.mean([fit.final_loss for fit in fits])),
                "final_losses": [fit.final_loss for fit in fits],
                "train_windows": int(train_windows),
                "walk_forward": {"scheme": settings.walk_forward, "folds": len(folds)},
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
