"""The stages of one training run, in order: backtest, shrink, final fit, calibration, export with
parity check, test evaluation, walk-forward summary and chart. Each takes the few inputs it needs
and returns a small frozen record; `training.pipeline` chains them and `training.manifest` writes
down what they returned.

This module imports TensorFlow, so `training.pipeline` imports it only after the inputs passed.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from model_store import (
    CHART_FILE,
    KERAS_FILE,
    ONNX_FILE,
    Intervals,
    WindowEncoding,
    check_keras_archive,
    conformal_quantiles,
    sliding_windows,
)
from training import export
from training.data import TrainTestData
from training.evaluate import EvaluationSet, baseline_predictions, scored
from training.fit import FitResult, MemberSpec, train_members
from training.model import combine, shrink_output
from training.presets import Settings
from training.walkforward import (
    COVERAGE_LEVELS,
    Fold,
    FoldResult,
    choose_shrink,
    relative_residuals,
    run_folds,
    shrink_curve,
    shrunk,
    summarize,
)
from training.windows import make_encoding, training_set

logger = logging.getLogger(__name__)

BUNDLE_FILES = (KERAS_FILE, ONNX_FILE, CHART_FILE)
IN_SAMPLE_CALIBRATION = 250  # windows, only when there is no walk-forward to calibrate on
INTERVAL_LEVEL = 95  # the interval the evaluation and the chart show


def member_spec(settings: Settings) -> MemberSpec:
    """How every ensemble member of this run is built and fitted."""
    return MemberSpec(
        settings.window,
        settings.units,
        settings.layers,
        settings.dropout,
        settings.output_bias,
        settings.epochs,
        settings.batch_size,
    )


def ensemble_predictions(settings: Settings, closes: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """A fresh ensemble trained on `closes`; its unshrunk predictions (closes) for `windows`."""
    encoding = make_encoding(settings.encoding, closes)
    inputs, targets = training_set(closes, settings.window, encoding, settings.sign_flip)
    members, _ = train_members(
        member_spec(settings), settings.seeds, inputs, targets, log_epochs=False
    )
    encoded = encoding.encode(windows)
    outputs = np.mean([member.predict(encoded, verbose=0) for member in members], axis=0)
    return encoding.decode(outputs, windows)


def backtest(settings: Settings, data: TrainTestData, folds: list[Fold]) -> list[FoldResult]:
    """Each fold predicted by an ensemble trained from scratch on the closes before it."""
    closes, dates = data.train_closes, data.train.series.iso_dates()
    fit_predict = functools.partial(ensemble_predictions, settings)
    results = []
    for fold in folds:
        logger.info(
            "walk-forward fold %s (%s .. %s): training %d member(s) on %d windows",
            fold.label,
            dates[fold.start],
            dates[fold.stop - 1],
            settings.members,
            fold.start - settings.window,
        )
        (result,) = run_folds(closes, dates, [fold], settings.window, fit_predict)
        ratio = np.sqrt(
            np.mean((result.predicted - result.actual) ** 2)
            / np.mean((result.windows[:, -1] - result.actual) ** 2)
        )
        logger.info("  fold %s: RMSE ratio to persistence %.4f (unshrunk)", fold.label, ratio)
        results.append(result)
    return results


@dataclass(frozen=True)
class ShrinkChoice:
    """The fraction of the predicted change kept, where it came from, and the walk-forward's
    pooled RMSE ratio per candidate (empty without a relative walk-forward)."""

    value: float
    source: str
    curve: dict[float, float]


def pick_shrink(settings: Settings, results: list[FoldResult]) -> ShrinkChoice:
    """The given shrink, else the walk-forward's best, else none (1.0)."""
    relative = settings.encoding == "relative"
    curve = shrink_curve(results) if relative and results else {}
    if settings.shrink is not None:
        return ShrinkChoice(settings.shrink, "given", curve)
    if curve:
        return ShrinkChoice(choose_shrink(curve), "walk-forward", curve)
    return ShrinkChoice(1.0, "none" if relative else "not applicable", curve)


@dataclass(frozen=True)
class FinalModel:
    """The ensemble trained on the whole training CSV, combined into one model."""

    model: keras.Model
    encoding: WindowEncoding
    fits: list[FitResult]
    train_windows: int


def fit_final(settings: Settings, train_closes: np.ndarray, shrink: float) -> FinalModel:
    """Train every member on all training windows, shrink their outputs, combine them."""
    encoding = make_encoding(settings.encoding, train_closes)
    inputs, targets = training_set(train_closes, settings.window, encoding, settings.sign_flip)
    train_windows = inputs.shape[0] // (2 if settings.sign_flip else 1)
    logger.info("final model: windows %s -> targets %s", inputs.shape, targets.shape)
    members, fits = train_members(member_spec(settings), settings.seeds, inputs, targets)
    if settings.encoding == "relative" and shrink != 1.0:
        for member in members:
            shrink_output(member, shrink)
    return FinalModel(combine(members, settings.window), encoding, fits, int(train_windows))


@dataclass(frozen=True)
class Calibration:
    """The bundle's interval widths and the per fold residuals they came from (empty when they
    were calibrated in sample)."""

    intervals: Intervals
    fold_residuals: list[np.ndarray]


def calibrate(
    scheme: str, results: list[FoldResult], shrink: float, final: FinalModel, closes: np.ndarray
) -> Calibration:
    """Conformal widths from the shrunk walk-forward residuals, or, without a walk-forward,
    from the final model's residuals on the last training windows."""
    if results:
        residuals = [
            relative_residuals(r.actual, shrunk(r.predicted, r.windows, shrink), r.windows)
            for r in results
        ]
        pooled = np.concatenate(residuals)
        source = (
            f"walk-forward: {scheme} folds {results[0].fold.label} .. "
            f"{results[-1].fold.label}, out of sample"
        )
        return Calibration(Intervals(conformal_quantiles(pooled), len(pooled), source), residuals)
    window = final.model.input_shape[1]
    tail, actual = sliding_windows(closes[-(IN_SAMPLE_CALIBRATION + window) :], window)
    fitted = final.encoding.decode(
        final.model.predict(final.encoding.encode(tail), verbose=0), tail
    )
    in_sample = relative_residuals(actual, fitted, tail)
    source = (
        f"in-sample: last {IN_SAMPLE_CALIBRATION} training windows "
        "(no walk-forward; widths likely too narrow)"
    )
    return Calibration(Intervals(conformal_quantiles(in_sample), len(in_sample), source), [])


@dataclass(frozen=True)
class Exported:
    """The written model files and the ONNX model's raw outputs on the test windows."""

    onnx: export.OnnxExport
    onnx_outputs: np.ndarray
    max_abs_diff: float


def export_checked(model: keras.Model, inputs: np.ndarray, folder: Path) -> Exported:
    """Write `model.keras` and `model.onnx` into `folder`; raise `UnsafeModelError` when the Keras
    archive would be refused by the server's check, `ParityError` unless ONNX Runtime reproduces
    Keras on the encoded test windows `inputs`."""
    export.save_keras(model, folder / KERAS_FILE)
    check_keras_archive((folder / KERAS_FILE).read_bytes(), "the exported model")
    onnx = export.export_onnx(model, model.input_shape[1], folder / ONNX_FILE)
    keras_outputs = model.predict(inputs, verbose=0)
    onnx_outputs = export.run_onnx(onnx.path, inputs)
    max_abs_diff = export.check_parity(keras_outputs, onnx_outputs)
    logger.info("ONNX parity: max abs diff %.3g on %d windows", max_abs_diff, len(onnx_outputs))
    return Exported(onnx, onnx_outputs, max_abs_diff)


@dataclass(frozen=True)
class TestResult:
    """The exported model's test-month predictions, the baselines', their scores, the interval
    coverage per level and the `INTERVAL_LEVEL` band."""

    evaluation: EvaluationSet
    predicted: np.ndarray
    baselines: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    coverage: dict[str, float]
    band: tuple[np.ndarray, np.ndarray]


def evaluate_test(
    evaluation: EvaluationSet, encoding: WindowEncoding, outputs: np.ndarray, intervals: Intervals
) -> TestResult:
    """Decode the ONNX `outputs` like the server does and score them against the baselines."""
    predicted = encoding.decode(outputs, evaluation.windows)
    baselines = baseline_predictions(evaluation.windows)
    test_metrics = scored(evaluation.actual, {"model": predicted, **baselines})
    last_close = evaluation.windows[:, -1]
    coverage = {}
    for level in COVERAGE_LEVELS:
        lower, upper = intervals.bounds(predicted, last_close, level)
        inside = (lower <= evaluation.actual) & (evaluation.actual <= upper)
        coverage[str(level)] = float(np.mean(inside))
    band = intervals.bounds(predicted, last_close, INTERVAL_LEVEL)
    return TestResult(evaluation, predicted, baselines, test_metrics, coverage, band)


def walk_forward_summary(
    scheme: str, results: list[FoldResult], shrink: ShrinkChoice
) -> dict[str, Any] | None:
    """The manifest's `metrics.walk_forward` (with the shrink curve when there was one), or
    `None` without a walk-forward."""
    if not results:
        return None
    summary = summarize(scheme, results, shrink.value)
    if shrink.curve:
        summary["shrink_curve"] = {str(s): ratio for s, ratio in shrink.curve.items()}
    return summary


def write_report_chart(
    path: Path,
    title: str,
    data: TrainTestData,
    test: TestResult,
    walk_forward: dict[str, Any] | None,
) -> Path:
    """The test month's chart, with the walk-forward panel when there was one."""
    test_dates = data.test.series.iso_dates()
    return export.write_chart(
        path,
        data.test.series.dates,
        test.evaluation.actual,
        test.predicted,
        test.evaluation.persistence,
        test.band,
        title=f"{title} ({test_dates[0]} .. {test_dates[-1]}), {INTERVAL_LEVEL}% interval",
        walk_forward=walk_forward,
        test_metrics=test.metrics,
    )
