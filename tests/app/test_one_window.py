"""One window's prediction in Python floats (Predictor.forecast_one, PredictionService.predict_one)
gives what the batch path gives for a batch of that one window, to the last digit, on a real
ONNX Runtime with the tiny bundles and the committed demo bundles."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.batching import MicroBatcher
from app.errors import InvalidInputError
from app.metrics import ServiceMetrics
from app.predictor import OnnxRuntime, Predictor
from app.service import PredictionService
from app.settings import DEFAULT_STORE_DIR
from model_store import Bundle, ModelStore

LEVELS_CHECKED = (50, 80, 95, 99)


def demo_bundles() -> list[Bundle]:
    store = ModelStore(DEFAULT_STORE_DIR)
    return [store.load(name) for name in store.names()]


def windows_around(bundle: Bundle, count: int) -> np.ndarray:
    """`count` windows of the bundle's own closes, each bent by a different trend and wiggle."""
    context = bundle.context_closes[-bundle.window :]
    steps = np.arange(bundle.window) / bundle.window
    return np.stack(
        [context * (1.0 + 0.05 * np.sin(i + 7.0 * steps) * steps) for i in range(count)]
    )


@pytest.fixture(params=["tiny", "tiny-minmax", "demo"])
def bundles(
    request: pytest.FixtureRequest, tiny_bundle: Bundle, tiny_minmax_bundle: Bundle
) -> list[Bundle]:
    return {
        "tiny": [tiny_bundle],
        "tiny-minmax": [tiny_minmax_bundle],
        "demo": demo_bundles(),
    }[request.param]


def test_one_window_gets_the_batch_paths_answer_to_the_last_digit(bundles: list[Bundle]) -> None:
    for bundle in bundles:
        predictor = Predictor(bundle, OnnxRuntime(bundle))
        service = PredictionService(MicroBatcher(), ServiceMetrics())
        for window in windows_around(bundle, 25):
            for level in LEVELS_CHECKED:
                batch = asyncio.run(service.predict(predictor, window[np.newaxis], level, "t"))
                one = asyncio.run(service.predict_one(predictor, window.tolist(), level, "t", True))
                expected = [batch.closes, batch.lower, batch.upper, batch.scales]
                got = [one.close, one.lower, one.upper, one.scale]
                assert got == [None if a is None else a.tolist()[0] for a in expected], bundle.label


def test_a_window_without_a_finite_prediction_is_refused_as_in_a_batch(
    tiny_bundle: Bundle,
) -> None:
    predictor = Predictor(tiny_bundle, OnnxRuntime(tiny_bundle))
    # Each close finite and positive, their ratios overflow: no finite encoded window.
    closes = [1e300] * (tiny_bundle.window - 1) + [1e-300]

    with pytest.raises(InvalidInputError) as batch:
        predictor.forecast(np.array([closes]))
    with pytest.raises(InvalidInputError) as one:
        predictor.forecast_one(closes)

    assert str(one.value) == str(batch.value)
    assert str(one.value).startswith("window 0: the model gives no finite prediction")


def test_a_window_of_the_wrong_length_is_refused_as_in_a_batch(tiny_bundle: Bundle) -> None:
    predictor = Predictor(tiny_bundle, OnnxRuntime(tiny_bundle))
    closes = [100.0] * (tiny_bundle.window + 1)

    with pytest.raises(InvalidInputError, match=rf"hold {tiny_bundle.window} closes \(got shape"):
        predictor.forecast_one(closes)
