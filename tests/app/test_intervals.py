"""Prediction intervals, the `level` query, forecast history and the context plausibility rule,
over a real app and real ONNX Runtime.

The bundle with intervals is the tiny bundle republished with an `intervals` field calibrated
(split-conformal, `model_store.conformal_quantiles`) on its own January residuals, so the expected
bounds follow from numbers this file controls; the bundle without intervals is the tiny bundle
republished without that field (as bundles trained before issue 8 are). The tiny bundle itself is
the default kind (relative encoding, intervals calibrated by training) and is served as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model_store import (
    Bundle,
    Intervals,
    ModelStore,
    conformal_quantiles,
    interval_band,
    parse_price_csv,
)
from tests.app.support import app_settings, republish

CSV = {"content-type": "text/csv"}


def january_residuals(bundle: Bundle) -> np.ndarray:
    """(actual - predicted) / last close of the bundle's January evaluation."""
    evaluation = bundle.manifest.evaluation
    actual = np.array(evaluation["actual"])
    last_close = np.concatenate([bundle.context_closes[-1:], actual[:-1]])
    residuals: np.ndarray = (actual - np.array(evaluation["predicted"])) / last_close
    return residuals


@pytest.fixture(scope="module")
def intervals_bundle(tiny_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    residuals = january_residuals(tiny_bundle)
    intervals = Intervals(conformal_quantiles(residuals), len(residuals), "test: January 2020")
    store = tmp_path_factory.mktemp("intervals-store")
    return republish(tiny_bundle, store, intervals=intervals.to_json())


@pytest.fixture(scope="module")
def with_intervals(intervals_bundle: Bundle) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings(intervals_bundle.path.parent.parent))) as client:
        yield client


@pytest.fixture(scope="module")
def without_intervals(
    tiny_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    store = tmp_path_factory.mktemp("plain-store")
    spec = dataclasses.replace(tiny_bundle.manifest, intervals=None)
    files = {name: tiny_bundle.path / name for name in tiny_bundle.manifest.files}
    assert ModelStore(store).publish("tiny", files, spec).intervals is None
    with TestClient(create_app(app_settings(store))) as client:
        yield client


@pytest.fixture(scope="module")
def january(shared_data: Path) -> bytes:
    return (shared_data / "FB_test_data.csv").read_bytes()


@pytest.fixture(scope="module")
def last_2019_closes(shared_data: Path) -> list[float]:
    return (
        parse_price_csv((shared_data / "FB_training_data.csv").read_bytes()).values[-40:].tolist()
    )


def csv_text(dates: list[str], closes: list[float]) -> str:
    return "Date,Close\n" + "".join(f"{d},{c}\n" for d, c in zip(dates, closes, strict=True))


def test_one_window_gets_the_bundles_interval_at_95_by_default(
    with_intervals: TestClient, intervals_bundle: Bundle, last_2019_closes: list[float]
) -> None:
    body = with_intervals.post("/predict", json={"closes": last_2019_closes}).json()
    assert body["level"] == 95
    assert body["lower"] < body["next_close"] < body["upper"]
    intervals = intervals_bundle.intervals
    assert intervals is not None
    lower, upper = intervals.bounds(body["next_close"], last_2019_closes[-1], 95)
    assert (body["lower"], body["upper"]) == pytest.approx((float(lower), float(upper)))


def test_a_lower_level_gives_narrower_intervals(
    with_intervals: TestClient, last_2019_closes: list[float]
) -> None:
    widths = {}
    for level in (50, 80, 95, 99):
        body = with_intervals.post(f"/predict?level={level}", json={"closes": last_2019_closes})
        assert body.status_code == 200 and body.json()["level"] == level
        widths[level] = body.json()["upper"] - body.json()["lower"]
    assert 0 < widths[50] < widths[80] < widths[95] <= widths[99]


def test_a_batch_gets_one_interval_per_window(with_intervals: TestClient) -> None:
    windows = np.random.default_rng(1).uniform(150.0, 210.0, size=(70, 40))  # > one inline batch
    body = with_intervals.post("/predict?level=80", json={"windows": windows.tolist()}).json()
    predictions, lower, upper = (np.array(body[key]) for key in ("predictions", "lower", "upper"))
    assert len(lower) == len(upper) == len(predictions) == 70
    assert np.all(lower < predictions) and np.all(predictions < upper)
    assert body["level"] == 80
    empty = with_intervals.post("/predict", json={"windows": []}).json()
    assert (empty["predictions"], empty["lower"], empty["upper"]) == ([], [], [])


@pytest.mark.parametrize("level", ["49", "100", "0", "-95", "95.5", "abc", ""])
@pytest.mark.parametrize("endpoint", ["/predict", "/forecast"])
def test_invalid_levels_get_422_in_the_one_error_shape(
    with_intervals: TestClient,
    last_2019_closes: list[float],
    january: bytes,
    endpoint: str,
    level: str,
) -> None:
    if endpoint == "/predict":
        response = with_intervals.post(f"/predict?level={level}", json={"closes": last_2019_closes})
    else:
        response = with_intervals.post(f"/forecast?level={level}", content=january, headers=CSV)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("query.level: ")
    assert error["detail"][0]["loc"] == ["query", "level"]


def test_forecast_points_and_horizon_carry_intervals_and_coverage(
    with_intervals: TestClient, january: bytes
) -> None:
    body = with_intervals.post("/forecast?horizon=5", content=january, headers=CSV).json()
    assert body["level"] == 95
    points = body["points"]
    assert len(points) == 21
    for point in points:
        assert point["lower"] <= point["predicted"] <= point["upper"]
    inside = [p["lower"] <= p["actual"] <= p["upper"] for p in points]
    assert body["metrics"]["coverage"] == pytest.approx(sum(inside) / len(inside))
    # Calibrated on these very residuals: at 95% the half-width is the largest one, so every
    # actual is inside except perhaps the one that sits on its bound (float32 rounding).
    assert body["metrics"]["coverage"] >= 20 / 21
    horizon = body["horizon"]
    assert all(day["lower"] <= day["predicted"] <= day["upper"] for day in horizon)
    # Half-widths above the prediction (the lower bound may be clipped at 0 for this 1-epoch
    # model): day k's is day 1's times sqrt(k).
    half_widths = np.array([day["upper"] - day["predicted"] for day in horizon])
    assert np.all(np.diff(half_widths) > 0)
    np.testing.assert_allclose(half_widths / half_widths[0], np.sqrt(np.arange(1, 6)), rtol=1e-9)
    narrower = with_intervals.post("/forecast?level=80", content=january, headers=CSV).json()
    assert narrower["level"] == 80
    assert all(
        (n["upper"] - n["lower"]) < (p["upper"] - p["lower"])
        for n, p in zip(narrower["points"], points, strict=True)
    )
    assert narrower["metrics"]["coverage"] <= body["metrics"]["coverage"]


def test_a_bundle_without_intervals_answers_null_bounds(
    without_intervals: TestClient, january: bytes, last_2019_closes: list[float]
) -> None:
    client = without_intervals
    single = client.post("/predict?level=80", json={"closes": last_2019_closes}).json()
    assert (single["lower"], single["upper"], single["level"]) == (None, None, 80)
    batch = client.post("/predict", json={"windows": [last_2019_closes] * 2}).json()
    assert (batch["lower"], batch["upper"], batch["level"]) == (None, None, 95)
    forecast = client.post("/forecast?horizon=2", content=january, headers=CSV).json()
    assert all(p["lower"] is None and p["upper"] is None for p in forecast["points"])
    assert all(h["lower"] is None and h["upper"] is None for h in forecast["horizon"])
    assert forecast["metrics"]["coverage"] is None


def test_forecast_history_is_the_rows_without_a_prediction(
    client: TestClient, shared_data: Path, january: bytes
) -> None:
    rows = (shared_data / "FB_training_data.csv").read_text().splitlines()[:51]  # header + 50
    body = client.post("/forecast", content="\n".join(rows), headers=CSV).json()
    series = parse_price_csv("\n".join(rows))
    assert [h["date"] for h in body["history"]] == [str(d) for d in series.dates[:40]]
    assert [h["actual"] for h in body["history"]] == series.values[:40].tolist()
    assert body["points"][0]["date"] == str(series.dates[40]) and len(body["points"]) == 10
    # January follows the model's context: every row is predicted, nothing is history.
    assert client.post("/forecast", content=january, headers=CSV).json()["history"] == []


def test_another_price_level_right_after_the_training_data_does_not_use_the_context(
    client: TestClient, shared_data: Path, january: bytes
) -> None:
    # AAPL's closes rescaled to its January 2020 level (~$300, FB closed 2019 at $205), dated
    # from the first trading day after FB's training data.
    aapl = parse_price_csv((shared_data / "AAPL_2022-01_2023-05.csv").read_bytes())
    closes = (aapl.values[:45] * 300.0 / aapl.values[0]).tolist()
    dates = [str(d) for d in np.busday_offset(np.datetime64("2020-01-02"), np.arange(45))]
    body = client.post("/forecast", content=csv_text(dates, closes), headers=CSV).json()
    assert len(body["history"]) == 40 and len(body["points"]) == 5
    assert body["points"][0]["date"] == dates[40]
    assert body["warnings"][0] == (
        "the CSV starts right after the model's context (which ends 2019-12-31), but its first "
        "Close (300.00) is not within 25% of the context's last close (205.25): another ticker "
        "or price level, so its first 40 rows are not predicted"
    )
    # FB's own January (first close within 25% of the context's) still uses the context.
    assert len(client.post("/forecast", content=january, headers=CSV).json()["points"]) == 21


def test_the_trained_relative_bundle_serves_its_own_intervals(
    client: TestClient, tiny_bundle: Bundle, last_2019_closes: list[float]
) -> None:
    intervals = tiny_bundle.intervals
    assert tiny_bundle.manifest.encoding.kind == "relative" and intervals is not None
    body = client.post("/predict?level=90", json={"closes": last_2019_closes}).json()
    last = last_2019_closes[-1]
    scale = np.array([body["scale"] / last])  # the served scale, a share of the last close
    lower, upper = interval_band(intervals, np.array([body["next_close"]]), last, scale, 90)
    assert (body["lower"], body["upper"]) == pytest.approx((float(lower[0]), float(upper[0])))
    assert body["lower"] < body["next_close"] < body["upper"]


def test_a_relative_bundle_scales_with_the_price_level(
    client: TestClient, last_2019_closes: list[float], shared_data: Path
) -> None:
    assert client.get("/model").json()["scaler"]["kind"] == "relative"
    base = client.post("/predict", json={"closes": last_2019_closes}).json()
    tenfold = [close * 10 for close in last_2019_closes]
    scaled = client.post("/predict", json={"closes": tenfold}).json()
    # Scale-free: the same relative window gives the same relative change, bounds included.
    for key in ("next_close", "lower", "upper"):
        assert scaled[key] == pytest.approx(base[key] * 10, rel=1e-5)
    training = (shared_data / "FB_training_data.csv").read_text().splitlines()
    header, rows = training[0], training[1:]
    close = header.split(",").index("Close")
    upscaled = [
        ",".join(str(float(v) * 10) if i == close else v for i, v in enumerate(row.split(",")))
        for row in rows
    ]
    body = client.post("/forecast", content="\n".join([header, *upscaled]), headers=CSV).json()
    # No MinMax range to leave, so no saturation warning for prices ten times the training's.
    assert not any("training range" in warning for warning in body["warnings"])
    assert len(body["points"]) == len(rows) - 40
