"""POST /predict over a real app and a real (tiny) bundle run by ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from model_store import Bundle, parse_price_csv


@pytest.fixture(scope="module")
def last_2019_closes(shared_data: Path) -> list[float]:
    """The 40 closes of the training CSV that come right before January 2020."""
    series = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes())
    return series.values[-40:].tolist()


def reference_predictions(bundle: Bundle, windows: np.ndarray) -> np.ndarray:
    """The contract's recipe, run independently: encode -> ONNX Runtime -> decode column 0 (the
    point forecast; a scale head's output is column 1)."""
    session = ort.InferenceSession(str(bundle.path / "model.onnx"))
    outputs = session.run(None, {session.get_inputs()[0].name: bundle.encoding.encode(windows)})
    return bundle.encoding.decode(outputs[0][:, :1], windows)


def test_one_window_returns_the_next_close_and_the_model(
    client: TestClient, tiny_bundle: Bundle, last_2019_closes: list[float]
) -> None:
    response = client.post("/predict", json={"closes": last_2019_closes})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == {"name": "tiny", "version": tiny_bundle.version}
    expected = reference_predictions(tiny_bundle, np.array([last_2019_closes]))[0]
    assert body["next_close"] == pytest.approx(expected, rel=1e-6)


def test_the_first_january_prediction_equals_predict_on_the_last_40_closes_of_2019(
    client: TestClient, shared_data: Path, last_2019_closes: list[float]
) -> None:
    single = client.post("/predict", json={"closes": last_2019_closes}).json()["next_close"]
    january = (shared_data / "FB_test_data.csv").read_bytes()
    forecast = client.post("/forecast", content=january, headers={"content-type": "text/csv"})
    first = forecast.json()["points"][0]
    assert first["date"] == "2020-01-02"
    assert first["predicted"] == pytest.approx(single, rel=1e-6)


def test_a_batch_is_predicted_in_request_order(client: TestClient, tiny_bundle: Bundle) -> None:
    rng = np.random.default_rng(0)
    windows = rng.uniform(80.0, 210.0, size=(25, 40))
    response = client.post("/predict", json={"windows": windows.tolist()})
    assert response.status_code == 200
    body = response.json()
    assert body["model"]["name"] == "tiny"
    np.testing.assert_allclose(
        body["predictions"], reference_predictions(tiny_bundle, windows), rtol=1e-6
    )


def test_a_batch_of_10000_windows_is_accepted_and_10001_refused(client: TestClient) -> None:
    window = [150.0 + i for i in range(40)]
    accepted = client.post("/predict", json={"windows": [window] * 10_000})
    assert accepted.status_code == 200
    assert len(accepted.json()["predictions"]) == 10_000
    refused = client.post("/predict", json={"windows": [window] * 10_001})
    assert refused.status_code == 422
    assert refused.json()["error"]["detail"][0]["loc"] == ["body", "windows"]


def _window_with(value: object, index: int = 7) -> list[object]:
    window: list[object] = [150.0] * 40
    window[index] = value
    return window


# Raw JSON text, since NaN and Infinity are not valid JSON yet Python's parser accepts them.
INVALID_BODIES = {
    "NaN": json.dumps({"closes": _window_with(float("nan"))}),
    "Infinity": json.dumps({"closes": _window_with(float("inf"))}),
    "-Infinity": json.dumps({"closes": _window_with(float("-inf"))}),
    "negative": json.dumps({"closes": _window_with(-3.5)}),
    "zero": json.dumps({"closes": _window_with(0)}),
    "string number": json.dumps({"closes": _window_with("150.0")}),
    "word": json.dumps({"closes": _window_with("abc")}),
    "bool": json.dumps({"closes": _window_with(True)}),
    "null": json.dumps({"closes": _window_with(None)}),
    "nested list": json.dumps({"closes": _window_with([1.0])}),
    "too large a number": '{"closes": [' + ", ".join(["150.0"] * 39 + ["1e999"]) + "]}",
    "closes not a list": json.dumps({"closes": 150.0}),
    "both keys": json.dumps({"closes": [150.0] * 40, "windows": [[150.0] * 40]}),
    "neither key": json.dumps({}),
    "unknown key": json.dumps({"closes": [150.0] * 40, "extra": 1}),
    "not an object": json.dumps([150.0] * 40),
    "bad window in batch": json.dumps({"windows": [[150.0] * 40, _window_with(float("nan"))]}),
    "malformed JSON": '{"closes": [1, 2,',
    "empty body": "",
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_values_get_422_in_the_error_shape(client: TestClient, body: str) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"]
    assert isinstance(error["detail"], list) and error["detail"]


def test_a_nan_is_reported_at_its_index(client: TestClient) -> None:
    body = json.dumps({"closes": _window_with(float("nan"), index=12)})
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    error = response.json()["error"]
    assert error["message"] == "body.closes.12: Input should be a finite number"
    assert error["detail"] == [
        {
            "loc": ["body", "closes", 12],
            "msg": "Input should be a finite number",
            "type": "finite_number",
        }
    ]


@pytest.mark.parametrize("length", [0, 1, 39, 41])
def test_a_window_of_the_wrong_length_gets_422_naming_the_bundle_window(
    client: TestClient, length: int
) -> None:
    response = client.post("/predict", json={"closes": [150.0] * length})
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_input",
        "message": f"closes must hold 40 closes (got {length})",
        "detail": [
            {"loc": ["body", "closes"], "msg": "wrong window length", "type": "window_length"}
        ],
    }


def test_a_batch_names_the_window_of_the_wrong_length(client: TestClient) -> None:
    response = client.post("/predict", json={"windows": [[150.0] * 40, [150.0] * 40, [1.0] * 3]})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "windows[2] must hold 40 closes (got 3)"


def test_many_bad_values_give_a_bounded_error_body(client: TestClient) -> None:
    body = json.dumps({"windows": [[float("nan")] * 40] * 100})
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert len(error["detail"]) == 10
    assert error["message"].endswith("(4000 errors, the first 10 in detail)")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/csv", "application/x-www-form-urlencoded", None]
)
def test_predict_accepts_only_json(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps({"closes": [150.0] * 40})
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_a_json_content_type_with_charset_is_fine(client: TestClient) -> None:
    response = client.post(
        "/predict",
        content=json.dumps({"closes": [150.0] * 40}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
