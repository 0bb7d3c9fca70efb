"""The hindsight bounds of the interval scores (how low a Winkler score any calibration of a
scale could go), checked against brute force and against normal distributions."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import winkler_score
from training.interval_quality import centred_volatility, hindsight_winkler, known_scale_gain

RNG_SEED = 20261202


def test_the_hindsight_multiplier_is_the_best_of_a_fine_grid() -> None:
    rng = np.random.default_rng(RNG_SEED)
    unit = np.exp(rng.standard_normal(500))
    actual = unit * rng.standard_t(4, 500)
    centre = np.zeros(500)
    grid = [
        float(np.mean(winkler_score(-m * unit, m * unit, actual, 95)))
        for m in np.linspace(0.01, 10.0, 5000)
    ]
    best = hindsight_winkler(centre, unit, actual, 95)
    assert best <= min(grid) + 1e-12
    assert best == pytest.approx(min(grid), rel=1e-3)


def test_a_known_scale_gains_nothing_when_every_day_has_the_same_volatility() -> None:
    assert known_scale_gain(np.full(200, 2.0), 95) == pytest.approx(1.0, abs=1e-4)


def test_a_known_scale_gains_when_volatility_varies() -> None:
    # Half the days twice as volatile as the other half.
    sigma = np.r_[np.full(100, 1.0), np.full(100, 2.0)]
    gain = known_scale_gain(sigma, 95)
    assert 0.8 < gain < 0.98
    assert known_scale_gain(np.r_[np.full(100, 1.0), np.full(100, 4.0)], 95) < gain


def test_the_centred_volatility_excludes_the_day_itself() -> None:
    closes = np.exp(np.cumsum(np.r_[0.0, np.full(10, 0.01), 0.5, np.full(10, 0.01)]))
    around = centred_volatility(closes, half=3)
    assert around[10] == pytest.approx(0.01)  # the jump into close 11 is not its own neighbour
    assert around[9] == pytest.approx((0.01 * 5 + 0.5) / 6)
