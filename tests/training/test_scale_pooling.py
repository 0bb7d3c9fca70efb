"""Partial pooling of the predicted scale toward a long-run level: the fit recovers a known
exponent from draws of a known distribution, each walk-forward fold is pooled with what was fitted
before it, and a tiny real bundle trained with `scale_pooling="fitted"` serves pooled bands."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model_store import ModelStore, ScaledIntervals, sliding_windows
from tests.app.support import app_settings
from training.data import TrainTestData, load_train_test
from training.pipeline import TrainConfig, train_and_publish
from training.presets import PRESETS
from training.walkforward import Fold, FoldResult

RNG_SEED = 20261202


def laplace_changes(exponent: float, level: float, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted scales around `level` and changes whose true scale is their pooling."""
    rng = np.random.default_rng(RNG_SEED)
    scales = level * np.exp(0.5 * rng.standard_normal(count))
    truth = level ** (1.0 - exponent) * scales**exponent
    return scales, rng.laplace(0.0, truth)


@pytest.mark.parametrize("exponent", [0.3, 0.6])
def test_the_fit_recovers_a_known_exponent_and_level(exponent: float) -> None:
    from training.scale import fit_pooling

    scales, changes = laplace_changes(exponent, 0.015, 20_000)
    pooling = fit_pooling(scales, changes)
    assert pooling is not None
    assert pooling.exponent == pytest.approx(exponent, abs=0.06)
    # The level is where pooled and unpooled fits agree: close to the scales' centre.
    assert pooling.level == pytest.approx(0.015, rel=0.15)


def test_scales_that_are_the_truth_are_not_pooled() -> None:
    from training.scale import fit_pooling

    scales, changes = laplace_changes(1.0, 0.015, 20_000)
    pooling = fit_pooling(scales, changes)
    assert pooling is None or pooling.exponent >= 0.9


@pytest.fixture(scope="module")
def fb(shared_data: Path) -> TrainTestData:
    return load_train_test(
        shared_data / "FB_training_data.csv", shared_data / "FB_test_data.csv", "Close", 40
    )


@pytest.mark.slow
def test_each_fold_is_pooled_with_the_fit_before_it(fb: TrainTestData) -> None:
    from training import scale, stages

    settings = replace(
        PRESETS["default"], members=1, folds=1, scale_epochs=3, scale_pooling="fitted"
    )
    closes = fb.train_closes
    windows, actual = sliding_windows(closes[1160:1240], 40)
    fold = FoldResult(Fold("f", 1200, 1240), "a", "b", 1160, windows, actual, actual)
    (pooled,) = stages.backtest_scales(settings, fb, [fold])
    (raw,) = stages.backtest_scales(replace(settings, scale_pooling="none"), fb, [fold])
    head = scale.fit_scale_for(closes[:1200], 40, settings.seed, 3)
    pooling = scale.fit_pooling_for(head, closes[:1200], 40)
    assert pooling is not None and 0.0 < pooling.exponent < 1.0
    np.testing.assert_allclose(pooled, pooling.apply(raw), rtol=1e-12)
    # Pooling narrows the spread of the scales in log terms by the exponent.
    spread = np.std(np.log(pooled)) / np.std(np.log(raw))
    assert spread == pytest.approx(pooling.exponent, rel=1e-6)


@pytest.mark.slow
def test_a_bundle_trained_with_pooling_serves_pooled_bands(
    shared_data: Path, tmp_path: Path
) -> None:
    bundle = train_and_publish(
        TrainConfig(
            train_csv=shared_data / "FB_training_data.csv",
            test_csv=shared_data / "FB_test_data.csv",
            store=tmp_path,
            name="tiny",
            epochs=1,
            units=4,
            members=1,
            walk_forward="monthly",
            folds=2,
            scale_epochs=5,
            scale_pooling="fitted",
        )
    )
    intervals = ModelStore(tmp_path).verify("tiny").intervals
    assert isinstance(intervals, ScaledIntervals)
    pooling = intervals.scale_output.pooling
    assert pooling is not None and 0.0 < pooling.exponent < 1.0
    assert bundle.manifest.training["scale_pooling"] == "fitted"
    assert bundle.manifest.training["scale_head"]["pooling"] == pooling.to_json()
    closes = np.r_[bundle.manifest.context.closes, bundle.manifest.evaluation["actual"]]
    windows = sliding_windows(closes, 40)[0][:5]
    session = ort.InferenceSession(str(bundle.file("model.onnx")))
    raw = session.run(None, {"window": bundle.encoding.encode(windows)})[0][:, 1] / 100.0
    expected = pooling.level ** (1 - pooling.exponent) * raw**pooling.exponent * windows[:, -1]
    with TestClient(create_app(app_settings(tmp_path))) as client:
        answer = client.post("/predict", json={"windows": windows.tolist()}).json()
    served = np.array(answer["scales"])
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    half = np.array(answer["upper"]) - np.array(answer["predictions"])
    np.testing.assert_allclose(half, intervals.quantiles[95] * served, rtol=1e-5)
