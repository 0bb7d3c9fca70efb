"""The committed demo bundle (`models/fb-lstm`), served with the default settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model_store import ModelStore, parse_price_csv

SETTINGS_VARIABLES = ("MODEL_STORE_DIR", "MODEL_NAME", "MODEL_VERSION", "PREDICTOR_BACKEND")


@pytest.fixture(scope="module")
def demo(shared_data: Path) -> Iterator[tuple[TestClient, dict[str, object]]]:
    with pytest.MonkeyPatch.context() as patch:
        for name in SETTINGS_VARIABLES:
            patch.delenv(name, raising=False)
        settings = Settings()
    bundle = ModelStore(settings.model_store_dir).verify(settings.model_name)
    with TestClient(create_app(settings)) as client:
        yield client, bundle.manifest


def test_the_demo_bundle_is_served_by_default(demo: tuple[TestClient, dict[str, object]]) -> None:
    client, manifest = demo
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"] == {"name": "fb-lstm", "version": manifest.version}


def test_january_on_the_demo_bundle_reproduces_its_manifest(
    demo: tuple[TestClient, dict[str, object]], shared_data: Path
) -> None:
    client, manifest = demo
    january = (shared_data / "FB_test_data.csv").read_bytes()
    body = client.post("/forecast", files={"file": ("FB_test_data.csv", january)}).json()
    points = body["points"]
    assert len(points) == 21
    assert (points[0]["date"], points[-1]["date"]) == ("2020-01-02", "2020-01-31")
    assert [p["actual"] for p in points] == parse_price_csv(january).values.tolist()
    evaluation = manifest.evaluation
    assert isinstance(evaluation, dict)
    np.testing.assert_allclose([p["predicted"] for p in points], evaluation["predicted"], rtol=1e-6)
    metrics = manifest.metrics
    assert isinstance(metrics, dict)
    assert body["metrics"]["rmse"] == pytest.approx(metrics["model"]["rmse"], rel=1e-6)

    training = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes())
    single = client.post("/predict", json={"closes": training.values[-40:].tolist()}).json()
    assert points[0]["predicted"] == pytest.approx(single["next_close"], rel=1e-6)


def test_the_demo_model_stays_sensible_at_ten_times_the_price_level_it_was_trained_on(
    demo: tuple[TestClient, dict[str, object]], shared_data: Path, tmp_path: Path
) -> None:
    # Issue 8: a scale-free (relative) model transfers to a price level it never saw.
    client, manifest = demo
    scaler = manifest.encoding.to_json()
    assert isinstance(scaler, dict) and scaler["kind"] == "relative"
    original = (shared_data / "FB_training_data.csv").read_text().splitlines()
    header = original[0].split(",")
    prices = {header.index(name) for name in ("Open", "High", "Low", "Close", "Adj Close")}
    tenfold = tmp_path / "FB_training_data_x10.csv"
    tenfold.write_text(
        "\n".join(
            [original[0]]
            + [
                ",".join(
                    str(float(v) * 10) if i in prices else v for i, v in enumerate(row.split(","))
                )
                for row in original[1:]
            ]
        )
    )
    answers = {}
    for label, path in (("x1", shared_data / "FB_training_data.csv"), ("x10", tenfold)):
        response = client.post("/forecast", files={"file": (path.name, path.read_bytes())})
        assert response.status_code == 200, response.text
        answers[label] = response.json()
    body = answers["x10"]
    metrics = body["metrics"]
    assert metrics["points"] == len(original) - 1 - 40
    assert metrics["rmse"] / metrics["persistence_rmse"] <= 1.05
    assert not any("training range" in warning for warning in body["warnings"])
    # Scale-free: ten times the prices, ten times the predictions and errors.
    assert metrics["rmse"] == pytest.approx(10 * answers["x1"]["metrics"]["rmse"], rel=1e-4)
    for point in body["points"]:
        assert point["lower"] <= point["predicted"] <= point["upper"]
    assert 0.0 < metrics["coverage"] <= 1.0
