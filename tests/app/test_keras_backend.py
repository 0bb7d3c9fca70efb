"""PREDICTOR_BACKEND=keras serves the same bundle's model.keras within the export's parity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model_store import Bundle, parse_price_csv, prediction_windows
from tests.app.support import app_settings

pytestmark = pytest.mark.slow


def test_keras_backend_matches_onnx_within_the_parity_tolerance(
    tiny_store: Path, tiny_bundle: Bundle, shared_data: Path
) -> None:
    january = (shared_data / "FB_test_data.csv").read_bytes()
    rng = np.random.default_rng(1)
    windows = rng.uniform(80.0, 210.0, size=(16, 40))
    closes = np.concatenate([tiny_bundle.context_closes[-40:], parse_price_csv(january).values])
    january_windows = prediction_windows(closes, 40)[:-1]
    answers = {}
    for backend in ("onnx", "keras"):
        with TestClient(create_app(app_settings(tiny_store, predictor_backend=backend))) as client:
            assert client.get("/model").json()["backend"] == backend
            batch = client.post("/predict", json={"windows": windows.tolist()}).json()[
                "predictions"
            ]
            forecast = client.post(
                "/forecast", content=january, headers={"content-type": "text/csv"}
            ).json()
            answers[backend] = (batch, [point["predicted"] for point in forecast["points"]])
    # The manifest's tolerance is on raw model outputs; in dollars it depends on the encoding
    # (divided by the MinMax scale; times the window's last close for a relative model). Both
    # decodings are linear in the output, so decoding the tolerance itself gives it per window.
    raw_tolerance = tiny_bundle.manifest.parity["tolerance"]
    encoding = tiny_bundle.encoding
    for all_windows, onnx_values, keras_values in zip(
        (windows, january_windows), answers["onnx"], answers["keras"], strict=True
    ):
        count = len(all_windows)
        tolerance = np.abs(
            encoding.decode(np.full((count, 1), raw_tolerance), all_windows)
            - encoding.decode(np.zeros((count, 1)), all_windows)
        )
        assert np.all(np.abs(np.array(keras_values) - onnx_values) <= tolerance)


def test_keras_backend_without_the_train_extra_says_what_is_missing(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` now raises ImportError
    with TestClient(create_app(app_settings(tiny_store, predictor_backend="keras"))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert message.startswith(
            "model not ready: tiny v1: PREDICTOR_BACKEND=keras needs the train extra "
            "(pip install -r requirements/train.txt)"
        )
