"""Adaptive (normalised-conformal) bands served from a trained tiny bundle: the scale output of
the one ONNX graph, /predict and /forecast bounds from it, `adapt`, horizon bands, the interval
metrics, and the refusal of malformed interval specs at load."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model_store import Bundle, ModelStore, ScaledIntervals, parse_price_csv
from tests.app.support import app_settings, republish

CSV = {"content-type": "text/csv"}
TOKEN = "test-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tiny_store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings(tiny_store))) as client:
        yield client


@pytest.fixture(scope="module")
def intervals(tiny_bundle: Bundle) -> ScaledIntervals:
    spec = tiny_bundle.intervals
    assert isinstance(spec, ScaledIntervals), "the default preset trains adaptive intervals"
    return spec


@pytest.fixture(scope="module")
def last_2019_closes(shared_data: Path) -> list[float]:
    return (
        parse_price_csv((shared_data / "FB_training_data.csv").read_bytes(), "Close")
        .values[-40:]
        .tolist()
    )


@pytest.fixture(scope="module")
def aapl(shared_data: Path) -> bytes:
    return (shared_data / "AAPL_2022-01_2023-05.csv").read_bytes()


def test_predict_bounds_are_the_score_quantile_times_the_served_scale(
    client: TestClient, intervals: ScaledIntervals, last_2019_closes: list[float]
) -> None:
    for level in (80, 95):
        body = client.post(f"/predict?level={level}", json={"closes": last_2019_closes}).json()
        assert body["scale"] > 0
        half = intervals.quantiles[level] * body["scale"]
        assert body["upper"] - body["next_close"] == pytest.approx(half, rel=1e-9)
        assert body["next_close"] - body["lower"] == pytest.approx(half, rel=1e-9)


def test_a_calm_window_gets_a_narrower_band_than_a_wild_one(client: TestClient) -> None:
    calm = [100.0 + 0.1 * (i % 2) for i in range(40)]
    wild = [100.0 + 5.0 * (i % 2) for i in range(40)]
    body = client.post("/predict", json={"windows": [calm, wild]}).json()
    widths = np.subtract(body["upper"], body["lower"])
    assert len(body["scales"]) == 2 and body["scales"][0] < body["scales"][1]
    assert widths[1] > 10 * widths[0]


def test_forecast_points_carry_their_scale_and_the_interval_metrics(
    client: TestClient, aapl: bytes, intervals: ScaledIntervals
) -> None:
    body = client.post("/forecast?level=80", content=aapl, headers=CSV).json()
    points = body["points"]
    actual = np.array([p["actual"] for p in points])
    lower, upper = (np.array([p[k] for p in points]) for k in ("lower", "upper"))
    predicted = np.array([p["predicted"] for p in points])
    scales = np.array([p["scale"] for p in points])
    np.testing.assert_allclose(upper - predicted, intervals.quantiles[80] * scales, rtol=1e-9)
    assert np.std(scales) > 0.1 * np.mean(scales)  # the width follows the windows
    metrics = body["metrics"]
    inside = (lower <= actual) & (actual <= upper)
    assert metrics["coverage"] == pytest.approx(np.mean(inside))
    assert metrics["mean_width"] == pytest.approx(np.mean(upper - lower))
    outside = np.maximum(lower - actual, 0) + np.maximum(actual - upper, 0)
    assert metrics["winkler"] == pytest.approx(np.mean(upper - lower + outside / 0.1))
    assert body["adapt"] is False and metrics["adapted_level"] is None


def test_adapt_moves_the_level_after_every_miss_and_hit(
    client: TestClient, aapl: bytes, intervals: ScaledIntervals
) -> None:
    plain = client.post("/forecast?level=80", content=aapl, headers=CSV).json()
    adapted = client.post("/forecast?level=80&adapt=true", content=aapl, headers=CSV).json()
    assert adapted["adapt"] is True
    first, later = plain["points"], adapted["points"]
    assert later[0]["lower"] == pytest.approx(first[0]["lower"])  # day 1 at the nominal level
    assert [p["predicted"] for p in later] == [p["predicted"] for p in first]
    # Replay the recursion by hand from the served points: L_(t+1) = L_t - 100 gamma (alpha - miss).
    target = 0.2
    levels = [80.0]
    for before in later[:-1]:
        missed = not before["lower"] <= before["actual"] <= before["upper"]
        levels.append(levels[-1] - 100.0 * intervals.gamma * (target - float(missed)))
    for point, level in zip(later, levels, strict=True):
        half = float(intervals.half_width(level, np.array(point["scale"]), 1.0))
        assert point["upper"] - point["predicted"] == pytest.approx(half, rel=1e-9)
    last = later[-1]
    missed = not last["lower"] <= last["actual"] <= last["upper"]
    expected_next = levels[-1] - 100.0 * intervals.gamma * (target - float(missed))
    assert adapted["metrics"]["adapted_level"] == pytest.approx(expected_next)
    assert adapted["metrics"]["coverage"] != plain["metrics"]["coverage"]


def test_horizon_bands_widen_by_sqrt_k_from_the_last_actual_windows_scale(
    client: TestClient, aapl: bytes, intervals: ScaledIntervals
) -> None:
    body = client.post("/forecast?level=95&horizon=4", content=aapl, headers=CSV).json()
    closes = parse_price_csv(aapl, "Close").values
    window = closes[-40:].tolist()
    scale = client.post("/predict", json={"closes": window}).json()["scale"]
    for k, day in enumerate(body["horizon"], start=1):
        half = intervals.quantiles[95] * scale * math.sqrt(k)
        assert day["upper"] - day["predicted"] == pytest.approx(half, rel=1e-9)


def test_bad_adapt_and_level_values_are_422(client: TestClient, aapl: bytes) -> None:
    for query in ("adapt=maybe", "adapt=2", "level=100", "level=49", "level=80.5"):
        response = client.post(f"/forecast?{query}", content=aapl, headers=CSV)
        assert response.status_code == 422, query
        assert response.json()["error"]["code"] == "invalid_request"


def test_adapt_on_a_fixed_width_bundle_is_a_422_naming_it(tmp_path: Path, aapl: bytes) -> None:
    store = Path(__file__).resolve().parents[2] / "models"
    settings = app_settings(store, model_name="fb-lstm", model_version="2")
    with TestClient(create_app(settings)) as fixed:
        response = fixed.post("/forecast?adapt=true", content=aapl, headers=CSV)
        assert response.status_code == 422
        assert response.json()["error"]["message"] == (
            "adapt=true needs a bundle with adaptive intervals; fb-lstm v2 has fixed-width "
            "intervals"
        )
        body = fixed.post("/forecast", content=aapl, headers=CSV).json()
        assert all("scale" not in p or p["scale"] is None for p in body["points"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "quantile-regression"}, "unknown method 'quantile-regression'"),
        (
            {"scores": [3.0, 1.0, 2.0], "residuals": 3},
            "scores must be finite, non-negative and sorted",
        ),
        ({"scale": {"output": 2, "kind": "std", "per_close": 100.0}}, "scale.output must be 1"),
        ({"adapt": {"method": "aci", "gamma": -1}}, "adapt.gamma must be in (0, 0.5]"),
        (
            {
                "scale": {
                    "output": 1,
                    "kind": "std",
                    "per_close": 100.0,
                    "pooling": {"kind": "geometric", "exponent": 0.7, "level": 0.0},
                }
            },
            "scale.pooling.level must be positive",
        ),
    ],
)
def test_a_malformed_interval_spec_is_refused_at_load_and_the_old_version_keeps_serving(
    tiny_bundle: Bundle, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    store = tmp_path / "store"
    republish(tiny_bundle, store)
    with TestClient(create_app(app_settings(store, admin_token=TOKEN))) as client:
        broken = republish(
            tiny_bundle, store, intervals={**tiny_bundle.manifest.intervals, **change}
        )
        response = client.post("/admin/reload", headers=AUTH)
        assert response.status_code == 409
        assert message in response.json()["error"]["message"]
        assert f"tiny v{broken.version}" in response.json()["error"]["message"]
        assert client.get("/readyz").json()["model"]["version"] == 1
        assert client.post("/predict", json={"closes": [150.0] * 40}).status_code == 200


def test_scaled_intervals_without_a_scale_output_are_refused_at_load(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    fixed_store = Path(__file__).resolve().parents[2] / "models"
    v2 = ModelStore(fixed_store).verify("fb-lstm", "2")  # its ONNX has one output column
    store = tmp_path / "store"
    republish(tiny_bundle, store)
    with TestClient(create_app(app_settings(store, admin_token=TOKEN))) as client:
        republish(v2, store, intervals=tiny_bundle.manifest.intervals)
        response = client.post("/admin/reload", headers=AUTH)
        assert response.status_code == 409
        assert "scale output (column 1)" in response.json()["error"]["message"]
        assert client.get("/readyz").json()["model"]["version"] == 1


def test_the_per_model_routes_answer_the_same_scales_and_adapted_forecast(
    client: TestClient, aapl: bytes, last_2019_closes: list[float]
) -> None:
    window = {"closes": last_2019_closes}
    default = client.post("/predict", json=window).json()
    named = client.post("/models/tiny/predict", json=window).json()
    version = default["model"]["version"]
    versioned = client.post(f"/models/tiny/versions/{version}/predict", json=window).json()
    assert named["scale"] == versioned["scale"] == default["scale"] > 0
    query = "/forecast?level=80&adapt=true&horizon=3"
    adapted = client.post(query, content=aapl, headers=CSV).json()
    by_name = client.post(f"/models/tiny{query}", content=aapl, headers=CSV).json()
    assert by_name["adapt"] is True and by_name == adapted
    assert by_name["metrics"]["adapted_level"] is not None
    assert all(point["scale"] > 0 for point in by_name["points"])
