"""The stages of one training run, in order: backtest (point and scale), shrink, final fit,
calibration, export with parity check, test evaluation, interval comparison against the
baselines, walk-forward summary and chart. Each takes the few inputs it needs
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
    IntervalSpec,
    ScaledIntervals,
    ScaleOutput,
    ScalePooling,
    WindowEncoding,
    check_keras_archive,
    conformal_quantiles,
    interval_band,
    sliding_windows,
)
from training import export, interval_quality, scale
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


def backtest_scales(
    settings: Settings, data: TrainTestData, results: list[FoldResult]
) -> list[np.ndarray]:
    """Each fold's relative scale forecasts from a scale head fitted on the closes before it
    (empty for fixed-width intervals)."""
    if settings.intervals != "scaled":
        return []
    scales = []
    for result in results:
        before = data.train_closes[: result.fold.start]
        head = scale.fit_scale_for(before, settings.window, settings.seed, settings.scale_epochs)
        pooling = _pooling(settings, head, before)
        raw = scale.relative_scales(head, result.windows)
        scales.append(raw if pooling is None else pooling.apply(raw))
    return scales


def _pooling(settings: Settings, head: keras.Model, closes: np.ndarray) -> ScalePooling | None:
    if settings.scale_pooling == "none":
        return None
    return scale.fit_pooling_for(head, closes, settings.window)


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
    scale_head: keras.Model | None = None  # beside the members in `model` when there is one
    scale_output: ScaleOutput | None = None  # how the served output's scale is read


def fit_final(settings: Settings, train_closes: np.ndarray, shrink: float) -> FinalModel:
    """Train every member on all training windows, shrink their outputs, combine them (with the
    scale head fitted on the same windows beside them, for scaled intervals)."""
    encoding = make_encoding(settings.encoding, train_closes)
    inputs, targets = training_set(train_closes, settings.window, encoding, settings.sign_flip)
    train_windows = inputs.shape[0] // (2 if settings.sign_flip else 1)
    logger.info("final model: windows %s -> targets %s", inputs.shape, targets.shape)
    members, fits = train_members(member_spec(settings), settings.seeds, inputs, targets)
    if settings.encoding == "relative" and shrink != 1.0:
        for member in members:
            shrink_output(member, shrink)
    if settings.intervals != "scaled":
        return FinalModel(combine(members, settings.window), encoding, fits, int(train_windows))
    head = scale.fit_scale_for(train_closes, settings.window, settings.seed, settings.scale_epochs)
    model = scale.with_scale(members, head, settings.window)
    output = scale.output_with(_pooling(settings, head, train_closes))
    return FinalModel(model, encoding, fits, int(train_windows), head, output)


@dataclass(frozen=True)
class Calibration:
    """The bundle's intervals and the per fold held-out scores they came from (relative
    residuals, or residuals over the predicted scale; empty when calibrated in sample)."""

    intervals: IntervalSpec
    fold_residuals: list[np.ndarray]


def calibrate(
    scheme: str,
    results: list[FoldResult],
    shrink: float,
    final: FinalModel,
    closes: np.ndarray,
    fold_scales: list[np.ndarray] | None = None,
) -> Calibration:
    """Conformal widths (or, with `fold_scales`, conformal multiples of the predicted scale) from
    the shrunk walk-forward residuals, or, without a walk-forward, from the final model's
    residuals on the last training windows."""
    scaled = final.scale_output
    if results:
        residuals = [
            relative_residuals(r.actual, shrunk(r.predicted, r.windows, shrink), r.windows)
            for r in results
        ]
        if scaled is not None:
            residuals = [r / s for r, s in zip(residuals, fold_scales or [], strict=True)]
        source = (
            f"walk-forward: {scheme} folds {results[0].fold.label} .. "
            f"{results[-1].fold.label}, out of sample"
        )
        return Calibration(_intervals(np.concatenate(residuals), source, scaled), residuals)
    window = final.model.input_shape[1]
    tail, actual = sliding_windows(closes[-(IN_SAMPLE_CALIBRATION + window) :], window)
    outputs = final.model.predict(final.encoding.encode(tail), verbose=0)
    fitted = final.encoding.decode(outputs[:, :1], tail)
    in_sample = relative_residuals(actual, fitted, tail)
    if scaled is not None:
        in_sample = in_sample / scaled.relative_scale(outputs)
    source = (
        f"in-sample: last {IN_SAMPLE_CALIBRATION} training windows "
        "(no walk-forward; widths likely too narrow)"
    )
    return Calibration(_intervals(in_sample, source, scaled), [])


def _intervals(scores: np.ndarray, source: str, scaled: ScaleOutput | None) -> IntervalSpec:
    if scaled is not None:
        return ScaledIntervals.calibrate(scores, source, scaled)
    return Intervals(conformal_quantiles(scores), len(scores), source)


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
    scales: np.ndarray | None = None  # relative scale forecasts, for scaled intervals


def evaluate_test(
    evaluation: EvaluationSet,
    encoding: WindowEncoding,
    outputs: np.ndarray,
    intervals: IntervalSpec,
) -> TestResult:
    """Decode the ONNX `outputs` like the server does and score them against the baselines."""
    predicted = encoding.decode(outputs[:, :1], evaluation.windows)
    baselines = baseline_predictions(evaluation.windows)
    test_metrics = scored(evaluation.actual, {"model": predicted, **baselines})
    last_close = evaluation.windows[:, -1]
    scales = None
    if isinstance(intervals, ScaledIntervals):
        scales = intervals.scale_output.relative_scale(outputs)

    def bounds(level: int) -> tuple[np.ndarray, np.ndarray]:
        return interval_band(intervals, predicted, last_close, scales, level)

    coverage = {}
    for level in COVERAGE_LEVELS:
        lower, upper = bounds(level)
        inside = (lower <= evaluation.actual) & (evaluation.actual <= upper)
        coverage[str(level)] = float(np.mean(inside))
    band = bounds(INTERVAL_LEVEL)
    return TestResult(evaluation, predicted, baselines, test_metrics, coverage, band, scales)


def compare_intervals(
    data: TrainTestData,
    results: list[FoldResult],
    shrink: float,
    fold_scales: list[np.ndarray],
    test: TestResult,
    intervals: IntervalSpec,
) -> dict[str, Any] | None:
    """The model's band, its adaptive variant and the three baselines scored alike per fold,
    pooled and on the test month (None without a walk-forward or scaled intervals)."""
    if not results or test.scales is None or not isinstance(intervals, ScaledIntervals):
        return None
    closes = data.train_closes
    parts, garches = [], []
    for result, fold_scale in zip(results, fold_scales, strict=True):
        garch = interval_quality.Garch.fit(closes[: result.fold.start])
        rows = slice(result.fold.start, result.fold.stop)
        centre = shrunk(result.predicted, result.windows, shrink)
        parts.append(
            interval_quality.stretch(
                result.windows, result.actual, centre, fold_scale, garch.scales(closes, rows)
            )
        )
        garches.append(garch)
    gamma = intervals.gamma
    walk_forward = interval_quality.walk_forward_comparison(
        parts, [r.fold.label for r in results], garches, gamma
    )
    garch = interval_quality.Garch.fit(closes)
    history = np.concatenate([closes, data.test_closes])
    rows = slice(len(closes), len(history))
    evaluation = test.evaluation
    month = interval_quality.stretch(
        evaluation.windows,
        evaluation.actual,
        test.predicted,
        test.scales,
        garch.scales(history, rows),
    )
    logger.info(
        "intervals on the walk-forward, pooled (leave-one-fold-out):\n%s",
        interval_quality.comparison_table(walk_forward["overall"]),
    )
    return {
        "methods": interval_quality.METHOD_LABELS,
        "walk_forward": walk_forward,
        "test": interval_quality.comparison(month, parts, garch, gamma),
        "garch": garch.params,
        "note": (
            "every band centred on the model's point forecast; conformal widths of each fold "
            "calibrated on the other folds only; volatility thirds ranked by each day's own "
            "window's realised volatility"
        ),
    }


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
