"""A synthetic price series whose volatility doubles halfway, served through /forecast: the
adaptive band holds its level in both halves, the fixed-width band calibrated on the same
walk-forward does not.

A tiny real model (one LSTM(4) member, one epoch, a scale head) is trained on a series whose
daily volatility is 1 % and then 2 %, its twelve quarterly walk-forward folds (about 750
held-out days) all in the 2 % stretch, as a model trained before a calm spell would be. The fixed-width twin is the same bundle with the fixed
widths `--intervals fixed` calibrates from the same walk-forward residuals (same seeds, same
fold predictions), so the two differ only in how the band is sized.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model_store import Bundle, Intervals, ModelStore, ScaledIntervals, conformal_quantiles
from tests.app.support import app_settings, republish
from training.pipeline import TrainConfig, train_and_publish

pytestmark = pytest.mark.slow

CALM, WILD = 0.01, 0.02  # daily volatility before and after the doubling
TOLERANCE = 0.03  # points of coverage


def write_prices(path: Path, first: str, sigmas: np.ndarray, seed: int, start: float) -> Path:
    """A geometric random walk with the given daily volatilities, as a Date,Close CSV."""
    rng = np.random.default_rng(seed)
    closes = start * np.exp(np.cumsum(sigmas * rng.standard_normal(len(sigmas))))
    dates = np.busday_offset(np.datetime64(first), np.arange(len(sigmas)), roll="forward")
    rows = [f"{day},{close:.4f}" for day, close in zip(dates, closes, strict=True)]
    path.write_text("Date,Close\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def regime_bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Bundle]:
    folder = tmp_path_factory.mktemp("regimes")
    sigmas = np.r_[np.full(500, CALM), np.full(900, WILD)]
    train = write_prices(folder / "train.csv", "2010-01-04", sigmas, seed=1, start=50.0)
    test = write_prices(folder / "test.csv", "2015-06-01", np.full(21, WILD), seed=2, start=60.0)
    store = folder / "store"
    scaled = train_and_publish(
        TrainConfig(
            train_csv=train,
            test_csv=test,
            store=store,
            name="regimes",
            epochs=1,
            units=4,
            members=1,
            walk_forward="quarterly",
            folds=12,
            shrink=0.0,
            scale_epochs=10,
        )
    )
    return scaled, fixed_twin(scaled, train, store)


def fixed_twin(scaled: Bundle, train: Path, store: Path) -> Bundle:
    """The bundle with the fixed widths of its own walk-forward's relative residuals."""
    from model_store import parse_price_csv

    closes = parse_price_csv(train.read_bytes()).values
    folds = scaled.manifest.metrics["walk_forward"]["folds"]
    days = sum(fold["days"] for fold in folds)
    predicted = np.concatenate([fold["predicted"] for fold in folds])
    actual, last = closes[-days:], closes[-days - 1 : -1]
    residuals = (actual - predicted) / last
    fixed = Intervals(conformal_quantiles(residuals), len(residuals), "walk-forward (twin)")
    return republish(scaled, store, name="regimes", intervals=fixed.to_json())


def coverage_by_half(client: TestClient, csv: bytes, level: int) -> tuple[float, float]:
    body: dict[str, Any] = client.post(
        f"/forecast?level={level}", content=csv, headers={"content-type": "text/csv"}
    ).json()
    points = body["points"]
    inside = np.array([p["lower"] <= p["actual"] <= p["upper"] for p in points])
    half = len(inside) // 2
    return float(np.mean(inside[:half])), float(np.mean(inside[half:]))


def test_the_adaptive_band_holds_in_both_halves_and_the_fixed_band_does_not(
    regime_bundles: tuple[Bundle, Bundle], tmp_path: Path
) -> None:
    scaled, fixed = regime_bundles
    assert isinstance(scaled.intervals, ScaledIntervals)
    assert isinstance(fixed.intervals, Intervals)
    # A fresh series: 40 rows of history, then 1,500 calm and 1,500 wild days.
    sigmas = np.r_[np.full(1540, CALM), np.full(1500, WILD)]
    csv = write_prices(tmp_path / "doubling.csv", "2016-01-04", sigmas, seed=3, start=80.0)
    data = csv.read_bytes()
    store = scaled.path.parent.parent
    results = {}
    for bundle in (scaled, fixed):
        settings = app_settings(store, model_name="regimes", model_version=str(bundle.version))
        with TestClient(create_app(settings)) as client:
            results[bundle.version] = {
                level: coverage_by_half(client, data, level) for level in (80, 95)
            }
    for level, halves in results[scaled.version].items():
        for share in halves:
            assert abs(share - level / 100) <= TOLERANCE, (level, results)
    fixed_misses = [
        abs(share - level / 100) > TOLERANCE
        for level, halves in results[fixed.version].items()
        for share in halves
    ]
    assert all(fixed_misses[0::2]), results  # the calm half: far too wide
    assert ModelStore(store).versions("regimes") == [1, 2]
