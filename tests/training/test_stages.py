"""Each training stage on its own, on the FB files with tiny real models (1 epoch, 4 units, 1
layer): what it returns is recomputed here from its inputs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store import Intervals, ScaledIntervals, conformal_quantiles, sliding_windows
from training.data import TrainTestData, load_train_test
from training.evaluate import evaluation_set
from training.presets import PRESETS
from training.walkforward import Fold, FoldResult, plan_folds

pytestmark = pytest.mark.slow

TINY = replace(
    PRESETS["default"], epochs=1, units=4, layers=1, members=1, folds=1, intervals="fixed"
)
SCALED = replace(TINY, intervals="scaled", scale_epochs=3)


@pytest.fixture(scope="module")
def fb(shared_data: Path) -> TrainTestData:
    return load_train_test(
        shared_data / "FB_training_data.csv", shared_data / "FB_test_data.csv", "Close", 40
    )


@dataclass(frozen=True)
class Tiny:
    """One tiny final model and what the later stages made of it."""

    final: Any
    exported: Any
    folder: Path


@pytest.fixture(scope="module")
def tiny(fb: TrainTestData, tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    from training import stages

    final = stages.fit_final(TINY, fb.train_closes, 0.5)
    evaluation = evaluation_set(fb.train_closes, fb.test_closes, 40)
    folder = tmp_path_factory.mktemp("export")
    exported = stages.export_checked(final.model, final.encoding.encode(evaluation.windows), folder)
    return Tiny(final, exported, folder)


def fold_result(closes: np.ndarray, start: int, stop: int, change: float) -> FoldResult:
    """A fold whose 'model' predicted the last close plus `change` percent of it."""
    windows, actual = sliding_windows(closes[start - 40 : stop], 40)
    predicted = windows[:, -1] * (1 + change / 100)
    return FoldResult(
        Fold(f"f{start}", start, stop), "a", "b", start - 40, windows, actual, predicted
    )


def test_backtest_trains_each_fold_on_the_closes_before_it(fb: TrainTestData) -> None:
    from training import stages

    folds = plan_folds(fb.train.series.dates, "monthly", 1, 40)
    (result,) = stages.backtest(TINY, fb, folds)
    dates = fb.train.series.iso_dates()
    assert (result.fold.label, result.first_date, result.last_date) == (
        "2019-12",
        "2019-12-02",
        "2019-12-31",
    )
    assert result.train_windows == folds[0].start - 40 == dates.index("2019-12-02") - 40
    np.testing.assert_array_equal(result.actual, fb.train_closes[folds[0].start :])
    np.testing.assert_array_equal(result.windows[1:, -1], result.actual[:-1])
    again = stages.ensemble_predictions(TINY, fb.train_closes[: folds[0].start], result.windows)
    np.testing.assert_array_equal(result.predicted, again)  # seeded: the same fit, the same answer
    assert np.all(np.abs(result.predicted / result.windows[:, -1] - 1) < 0.2)
    assert stages.backtest(TINY, fb, []) == []


def test_pick_shrink_prefers_given_then_walk_forward_then_none(fb: TrainTestData) -> None:
    from training import stages
    from training.walkforward import SHRINKS, shrink_curve

    closes = fb.train_closes
    results = [fold_result(closes, 1100, 1150, 1.0), fold_result(closes, 1150, 1200, -0.5)]
    choice = stages.pick_shrink(TINY, results)
    curve = shrink_curve(results)
    assert sorted(choice.curve) == list(SHRINKS) and choice.curve == curve
    assert choice == stages.ShrinkChoice(
        min(curve, key=lambda s: (curve[s], s)), "walk-forward", curve
    )
    assert stages.pick_shrink(replace(TINY, shrink=0.25), results).value == 0.25
    assert stages.pick_shrink(replace(TINY, shrink=0.25), results).source == "given"
    assert stages.pick_shrink(TINY, []) == stages.ShrinkChoice(1.0, "none", {})
    minmax = replace(TINY, encoding="minmax")
    assert stages.pick_shrink(minmax, results) == stages.ShrinkChoice(1.0, "not applicable", {})


def test_fit_final_trains_on_every_window_and_folds_in_the_shrink(
    fb: TrainTestData, tiny: Tiny
) -> None:
    from training import stages

    final = tiny.final
    assert final.train_windows == len(fb.train_closes) - 40 == 1218
    assert [fit.epochs_run for fit in final.fits] == [1]
    assert final.model.input_shape == (None, 40, 1)
    windows = sliding_windows(fb.train_closes[-60:], 40)[0]
    unshrunk = stages.fit_final(TINY, fb.train_closes, 1.0)
    half = np.asarray(final.model.predict(final.encoding.encode(windows), verbose=0))
    full = np.asarray(unshrunk.model.predict(unshrunk.encoding.encode(windows), verbose=0))
    np.testing.assert_allclose(half, full / 2, rtol=1e-5, atol=1e-7)
    persistence = stages.fit_final(TINY, fb.train_closes, 0.0)
    assert not np.any(persistence.model.predict(final.encoding.encode(windows), verbose=0))


def test_calibrate_from_fold_residuals_or_in_sample(fb: TrainTestData, tiny: Tiny) -> None:
    from training import stages
    from training.walkforward import relative_residuals, shrunk

    closes = fb.train_closes
    results = [fold_result(closes, 1100, 1150, 1.0), fold_result(closes, 1150, 1200, -0.5)]
    calibration = stages.calibrate("monthly", results, 0.5, tiny.final, closes)
    expected = [
        relative_residuals(r.actual, shrunk(r.predicted, r.windows, 0.5), r.windows)
        for r in results
    ]
    for got, want in zip(calibration.fold_residuals, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert calibration.intervals == Intervals(
        conformal_quantiles(np.concatenate(expected)),
        100,
        "walk-forward: monthly folds f1100 .. f1150, out of sample",
    )
    in_sample = stages.calibrate("none", [], 1.0, tiny.final, closes)
    assert in_sample.fold_residuals == [] and in_sample.intervals.residuals == 250
    assert in_sample.intervals.source.startswith("in-sample: last 250 training windows")
    tail, actual = sliding_windows(closes[-290:], 40)
    encoding = tiny.final.encoding
    fitted = encoding.decode(tiny.final.model.predict(encoding.encode(tail), verbose=0), tail)
    residuals = relative_residuals(actual, fitted, tail)
    assert in_sample.intervals.quantiles == conformal_quantiles(residuals)


def test_export_checked_writes_both_models_and_they_agree(tiny: Tiny) -> None:
    from training import stages
    from training.export import run_onnx

    exported = tiny.exported
    assert (tiny.folder / stages.KERAS_FILE).stat().st_size > 0
    assert exported.onnx.path == tiny.folder / stages.ONNX_FILE
    assert (exported.onnx.input_name, exported.onnx.opset) == ("window", 17)
    assert exported.onnx_outputs.shape == (21, 1)
    assert 0.0 <= exported.max_abs_diff <= 1e-4
    inputs = np.zeros((3, 40, 1), dtype=np.float32)
    np.testing.assert_allclose(
        run_onnx(exported.onnx.path, inputs),
        tiny.final.model.predict(inputs, verbose=0),
        atol=1e-4,
    )


def test_evaluate_test_decodes_onnx_outputs_and_measures_coverage(
    fb: TrainTestData, tiny: Tiny
) -> None:
    from training import stages

    evaluation = evaluation_set(fb.train_closes, fb.test_closes, 40)
    intervals = Intervals({80: 0.01, 95: 0.02}, 100, "test")
    test = stages.evaluate_test(
        evaluation, tiny.final.encoding, tiny.exported.onnx_outputs, intervals
    )
    last = evaluation.windows[:, -1]
    expected = last * (1 + tiny.exported.onnx_outputs[:, 0] / 100)  # relative encoding, percent
    np.testing.assert_allclose(test.predicted, expected, rtol=1e-6)
    rmse = float(np.sqrt(np.mean((test.predicted - evaluation.actual) ** 2)))
    assert test.metrics["model"]["rmse"] == pytest.approx(rmse)
    assert test.metrics["persistence"]["ratio"] == 1.0
    np.testing.assert_allclose(test.band[1] - test.predicted, 0.02 * last)
    for level, width in (("80", 0.01), ("95", 0.02)):
        inside = np.abs(evaluation.actual - test.predicted) <= width * last
        assert test.coverage[level] == pytest.approx(float(np.mean(inside)))


def test_walk_forward_summary_and_chart(fb: TrainTestData, tiny: Tiny, tmp_path: Path) -> None:
    from training import stages

    closes = fb.train_closes
    results = [fold_result(closes, 1100, 1150, 1.0), fold_result(closes, 1150, 1200, -0.5)]
    assert stages.walk_forward_summary("monthly", [], stages.ShrinkChoice(1.0, "none", {})) is None
    choice = stages.pick_shrink(TINY, results)
    summary = stages.walk_forward_summary("monthly", results, choice)
    assert summary is not None and [f["label"] for f in summary["folds"]] == ["f1100", "f1150"]
    assert summary["shrink_curve"] == {str(s): r for s, r in choice.curve.items()}
    evaluation = evaluation_set(closes, fb.test_closes, 40)
    intervals = Intervals({80: 0.01, 95: 0.02}, 100, "test")
    test = stages.evaluate_test(
        evaluation, tiny.final.encoding, tiny.exported.onnx_outputs, intervals
    )
    for name, walk_forward in (("plain.png", None), ("folds.png", summary)):
        path = stages.write_report_chart(tmp_path / name, "t", fb, test, walk_forward)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The walk-forward panel doubles the figure's height.
    assert (tmp_path / "folds.png").stat().st_size > (tmp_path / "plain.png").stat().st_size


def test_scaled_final_model_is_the_point_model_with_its_scale_beside_it(
    fb: TrainTestData, tiny: Tiny
) -> None:
    from training import scale, stages

    scaled = stages.fit_final(SCALED, fb.train_closes, 0.5)
    assert scaled.scale_head is not None and scaled.model.output_shape == (None, 2)
    windows = sliding_windows(fb.train_closes[-60:], 40)[0]
    inputs = scaled.encoding.encode(windows)
    both = np.asarray(scaled.model.predict(inputs, verbose=0))
    point = np.asarray(tiny.final.model.predict(inputs, verbose=0))
    np.testing.assert_allclose(both[:, :1], point, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        scale.SCALE_OUTPUT.relative_scale(both),
        scale.relative_scales(scaled.scale_head, windows),
        rtol=1e-5,
    )
    absolute = np.abs(np.diff(windows / windows[:, -1:] * 100, axis=1))
    weights = scale.head_weights(scaled.scale_head)
    decay = 0.94 ** np.arange(38, -1, -1)
    by_hand = (
        weights["last_day"] * absolute[:, -1]
        + weights["last_week"] * absolute[:, -5:].mean(axis=1)
        + weights["window"] * absolute.mean(axis=1)
        + weights["ewma"] * absolute @ (decay / decay.sum())
    )
    np.testing.assert_allclose(both[:, 1], by_hand, rtol=1e-4)


def test_scaled_calibration_and_the_interval_comparison(fb: TrainTestData) -> None:
    from training import stages
    from training.walkforward import relative_residuals, shrunk

    closes = fb.train_closes
    results = [fold_result(closes, 1100, 1150, 1.0), fold_result(closes, 1150, 1200, -0.5)]
    scales = stages.backtest_scales(SCALED, fb, results)
    assert [len(s) for s in scales] == [50, 50] and all(np.all(s > 0) for s in scales)
    assert stages.backtest_scales(TINY, fb, results) == []
    final = stages.fit_final(SCALED, closes, 0.5)
    calibration = stages.calibrate("monthly", results, 0.5, final, closes, scales)
    expected = [
        relative_residuals(r.actual, shrunk(r.predicted, r.windows, 0.5), r.windows) / s
        for r, s in zip(results, scales, strict=True)
    ]
    assert isinstance(calibration.intervals, ScaledIntervals)
    np.testing.assert_array_equal(
        calibration.intervals.scores, np.sort(np.abs(np.concatenate(expected)))
    )
    evaluation = evaluation_set(closes, fb.test_closes, 40)
    outputs = np.asarray(final.model.predict(final.encoding.encode(evaluation.windows), verbose=0))
    test = stages.evaluate_test(evaluation, final.encoding, outputs, calibration.intervals)
    assert test.scales is not None and len(test.scales) == 21
    comparison = stages.compare_intervals(fb, results, 0.5, scales, test, calibration.intervals)
    assert comparison is not None
    methods = {"model", "model_adaptive", "fixed", "ewma", "garch"}
    assert set(comparison["walk_forward"]["overall"]) == methods == set(comparison["test"])
    assert [f["label"] for f in comparison["walk_forward"]["folds"]] == ["f1100", "f1150"]
    pooled = comparison["walk_forward"]["overall"]["model"]
    assert pooled["days"] == 100 and 0.0 <= pooled["coverage_80"] <= pooled["coverage_95"] <= 1.0
