"""The tutorial's data preparation on the FB file: shapes, and the scaler's numbers surviving the
manifest JSON unchanged against scikit-learn's MinMaxScaler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler

from model_store import ManifestError, MinMaxEncoding, encoding_from_json, parse_price_csv
from training.evaluate import evaluation_set, metrics
from training.windows import fit_encoding, training_set


@pytest.fixture(scope="module")
def fb_closes(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    train = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes()).values
    test = parse_price_csv((shared_data / "FB_test_data.csv").read_bytes()).values
    return train, test


def test_fb_windows_have_the_tutorials_shapes(fb_closes: tuple[np.ndarray, np.ndarray]) -> None:
    train, _ = fb_closes
    inputs, targets = training_set(train, 40, fit_encoding(train))
    assert inputs.shape == (1218, 40, 1) and inputs.dtype == np.float32
    assert targets.shape == (1218,)


def test_training_set_matches_the_tutorials_scaled_windows(
    fb_closes: tuple[np.ndarray, np.ndarray],
) -> None:
    """The tutorial scales the whole column with sklearn first, then windows it."""
    train, _ = fb_closes
    scaled = MinMaxScaler(feature_range=(0, 1)).fit_transform(train.reshape(-1, 1))
    tutorial_x = np.array([scaled[i - 40 : i, 0] for i in range(40, len(scaled))])
    tutorial_y = np.array([scaled[i, 0] for i in range(40, len(scaled))])
    inputs, targets = training_set(train, 40, fit_encoding(train))
    np.testing.assert_allclose(inputs[..., 0], tutorial_x, rtol=0, atol=1e-7)  # float32 input
    np.testing.assert_allclose(targets, tutorial_y, rtol=1e-12, atol=1e-15)


def test_scaler_round_trips_through_manifest_json(fb_closes: tuple[np.ndarray, np.ndarray]) -> None:
    train, test = fb_closes
    scaler = MinMaxScaler(feature_range=(0, 1)).fit(train.reshape(-1, 1))
    stored = json.loads(json.dumps(fit_encoding(train).to_json()))
    assert stored["kind"] == "minmax" and stored["feature_range"] == [0.0, 1.0]
    assert stored["data_min"] == scaler.data_min_[0] and stored["data_max"] == scaler.data_max_[0]
    assert stored["scale"] == scaler.scale_[0] and stored["min"] == scaler.min_[0]

    encoding = encoding_from_json(stored)
    assert isinstance(encoding, MinMaxEncoding)
    np.testing.assert_allclose(
        encoding.transform(test), scaler.transform(test.reshape(-1, 1))[:, 0], rtol=1e-15
    )
    outputs = np.array([[0.1], [0.5], [0.97]])
    np.testing.assert_allclose(
        encoding.decode(outputs, np.zeros((3, 40))),
        scaler.inverse_transform(outputs)[:, 0],
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        encoding.inverse_transform(encoding.transform(test)), test, rtol=1e-13
    )


def test_numpy_only_fit_agrees_with_sklearn(fb_closes: tuple[np.ndarray, np.ndarray]) -> None:
    train, _ = fb_closes
    ours, sklearns = MinMaxEncoding.fit(train), fit_encoding(train)
    for field in ("data_min", "data_max", "scale", "min"):
        assert getattr(ours, field) == pytest.approx(getattr(sklearns, field), rel=1e-15)
    assert ours.feature_range == sklearns.feature_range


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "must be an object"),
        ({"kind": "zscore"}, "unknown scaler kind 'zscore'"),
        ({"kind": "minmax", "data_min": 1.0}, "is malformed"),
        (
            {
                "kind": "minmax",
                "data_min": 1,
                "data_max": 2,
                "scale": 0,
                "min": 0,
                "feature_range": [0, 1],
            },
            "non-finite or zero scale",
        ),
    ],
)
def test_malformed_scaler_json_is_refused(spec: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        encoding_from_json(spec)


def test_evaluation_is_the_tutorials(fb_closes: tuple[np.ndarray, np.ndarray]) -> None:
    """Each January day is predicted from the 40 actual closes before it."""
    train, test = fb_closes
    evaluation = evaluation_set(train, test, 40)
    assert evaluation.windows.shape == (21, 40)
    np.testing.assert_array_equal(evaluation.windows[0], train[-40:])
    np.testing.assert_array_equal(evaluation.windows[5], np.concatenate([train[-35:], test[:5]]))
    np.testing.assert_array_equal(evaluation.actual, test)
    baseline = metrics(evaluation.actual, evaluation.persistence)
    assert round(baseline["rmse"], 3) == 4.248


def test_metrics_by_hand() -> None:
    result = metrics(np.array([100.0, 200.0]), np.array([110.0, 190.0]))
    assert result == pytest.approx({"rmse": 10.0, "mae": 10.0, "mape": 7.5})
