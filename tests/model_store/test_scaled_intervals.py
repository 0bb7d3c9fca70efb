"""Normalised split-conformal intervals, adaptive conformal inference and the interval-spec
parser, checked against distributions whose quantiles are known (numpy only)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from model_store import (
    Intervals,
    ManifestError,
    ScaledIntervals,
    ScaleOutput,
    ScalePooling,
    conformal_quantiles,
    intervals_from_json,
    score_quantile,
    winkler_score,
)

RNG_SEED = 20260101
SCALE_OUTPUT = ScaleOutput(index=1, per_close=100.0)
NORMAL_QUANTILES = {80: 1.2815515655, 95: 1.9599639845}  # two-sided standard normal


def scaled(scores: np.ndarray, gamma: float = 0.005) -> ScaledIntervals:
    return ScaledIntervals.calibrate(scores, "test", SCALE_OUTPUT, gamma)


def test_score_quantiles_of_normal_scores_are_the_normal_quantiles() -> None:
    scores = np.random.default_rng(RNG_SEED).standard_normal(200_000)
    intervals = scaled(scores)
    for level, expected in NORMAL_QUANTILES.items():
        assert intervals.quantiles[level] == pytest.approx(expected, abs=0.02)


def test_score_quantile_takes_the_finite_sample_rank_and_caps_at_the_largest() -> None:
    ordered = np.arange(1.0, 20.0)  # 19 scores: level 95 needs rank ceil(20 * 0.95) = 19
    assert score_quantile(ordered, 95) == 19.0
    assert score_quantile(ordered, 50) == 10.0  # ceil(20 * 0.5) = 10
    assert score_quantile(ordered, 99.9) == 19.0  # beyond the data: the largest, never inf
    assert score_quantile(ordered, -3.0) == 1.0
    np.testing.assert_array_equal(score_quantile(ordered, np.array([50.0, 95.0])), [10.0, 19.0])
    assert conformal_quantiles(ordered, range(95, 96)) == {95: 19.0}


def test_normalised_bands_cover_in_calm_and_wild_windows_where_fixed_bands_do_not() -> None:
    rng = np.random.default_rng(RNG_SEED)
    scale = np.where(np.arange(40_000) % 2 == 0, 0.005, 0.02)  # calm and wild windows alike
    last = np.full(len(scale), 100.0)
    change = scale * rng.standard_t(5, len(scale))  # heavy-tailed, like daily returns
    calibration, test = slice(0, 20_000), slice(20_000, None)
    normalised = scaled(change[calibration] / scale[calibration])
    fixed = Intervals(conformal_quantiles(change[calibration]), 20_000, "test")
    actual = last * (1.0 + change)
    for level in (80, 95):
        lower, upper = normalised.bounds(last[test], last[test], scale[test], level)
        inside = (lower <= actual[test]) & (actual[test] <= upper)
        fixed_lower, fixed_upper = fixed.bounds(last[test], last[test], level)
        fixed_inside = (fixed_lower <= actual[test]) & (actual[test] <= fixed_upper)
        calm = scale[test] == 0.005
        for group in (calm, ~calm):
            assert abs(np.mean(inside[group]) - level / 100) < 0.015
        assert np.mean(fixed_inside[calm]) > level / 100 + 0.04
        assert np.mean(fixed_inside[~calm]) < level / 100 - 0.04
        assert np.mean(winkler_score(lower, upper, actual[test], level)) < np.mean(
            winkler_score(fixed_lower, fixed_upper, actual[test], level)
        )


def test_horizon_bands_add_the_daily_variances() -> None:
    intervals = scaled(np.array([1.0, 2.0, 3.0]))
    lower, upper = intervals.bounds(np.full(4, 100.0), 100.0, np.full(4, 0.01), 50, np.arange(1, 5))
    np.testing.assert_allclose(upper - 100.0, 2.0 * 0.01 * 100.0 * np.sqrt(np.arange(1, 5)))
    np.testing.assert_allclose(100.0 - lower, upper - 100.0)


def test_adaptive_levels_restore_coverage_when_the_scale_forecast_is_wrong() -> None:
    rng = np.random.default_rng(RNG_SEED)
    days = 4_000
    true_scale = np.where(np.arange(days) < days // 2, 0.01, 0.02)  # volatility doubles
    believed = np.full(days, 0.01)  # a scale forecast that never noticed
    actual = 100.0 * (1.0 + true_scale * rng.standard_normal(days))
    intervals = scaled(rng.standard_normal(5_000), gamma=0.01)
    centre, last = np.full(days, 100.0), np.full(days, 100.0)
    adaptive = intervals.adaptive_bounds(centre, last, believed, actual, 80)
    static_lower, static_upper = intervals.bounds(centre, last, believed, 80)
    second = slice(days // 2 + 500, None)  # after the adaptation has caught up
    static = (static_lower <= actual) & (actual <= static_upper)
    inside = (adaptive.lower <= actual) & (actual <= adaptive.upper)
    assert np.mean(static[second]) < 0.55  # 80 % of N(0, 1) at twice the scale: ~47 %
    assert abs(np.mean(inside[second]) - 0.80) < 0.03
    assert adaptive.levels[0] == pytest.approx(80.0)
    assert adaptive.levels[-1] > 95.0 and adaptive.next_level > 95.0


def test_adaptation_without_misses_lowers_the_level_by_gamma_alpha_a_day() -> None:
    intervals = scaled(np.linspace(0.1, 5.0, 99), gamma=0.01)
    closes = np.full(10, 100.0)
    bands = intervals.adaptive_bounds(closes, closes, np.full(10, 0.01), closes, 90)
    np.testing.assert_allclose(bands.levels, 90.0 - 100.0 * 0.01 * 0.1 * np.arange(10))


def test_winkler_score_is_width_plus_the_scaled_miss() -> None:
    score = winkler_score(np.array([9.0, 9.0]), np.array([11.0, 11.0]), np.array([10.0, 12.0]), 95)
    np.testing.assert_allclose(score, [2.0, 2.0 + (2.0 / 0.05) * 1.0])


def test_scaled_spec_round_trips_through_the_one_parser() -> None:
    intervals = scaled(np.array([0.5, -2.0, 1.0]))
    spec = intervals.to_json()
    assert spec["method"] == "normalised-conformal" and spec["scores"] == [0.5, 1.0, 2.0]
    parsed = intervals_from_json(spec)
    assert isinstance(parsed, ScaledIntervals)
    np.testing.assert_array_equal(parsed.scores, intervals.scores)
    assert (parsed.scale_output, parsed.gamma, parsed.source) == (SCALE_OUTPUT, 0.005, "test")


def test_a_spec_without_a_method_is_the_fixed_width_kind() -> None:
    spec = {"quantiles": {"95": 0.034}, "residuals": 252, "source": "walk-forward"}
    parsed = intervals_from_json(spec)
    assert isinstance(parsed, Intervals) and parsed.quantiles == {95: 0.034}
    assert intervals_from_json(None) is None


def _spec(**changes: Any) -> dict[str, Any]:
    spec = scaled(np.array([0.5, 1.0, 2.0])).to_json()
    for path, value in changes.items():
        node = spec
        *parents, key = path.split("__")
        for parent in parents:
            node = node[parent]
        if value is None:
            del node[key]
        else:
            node[key] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([1, 2], "must be an object"),
        ({"method": "quantile-regression"}, "unknown method 'quantile-regression'"),
        (_spec(scores=None), "is malformed: 'scores'"),
        (_spec(scores=[1.0, "x", 2.0]), "is malformed"),
        (_spec(scores=[2.0, 1.0, 3.0]), "scores must be finite, non-negative and sorted"),
        (_spec(scores=[1.0, 2.0, math.inf]), "scores must be finite, non-negative and sorted"),
        (_spec(scores=[]), "scores must be finite"),
        (_spec(residuals=7), "residuals (7) must count the scores (3)"),
        (_spec(scale__kind="log-sigma"), "scale.kind must be 'std'"),
        (_spec(scale__output=0), "scale.output must be 1"),
        (_spec(scale__per_close=0.0), "scale.per_close must be positive"),
        (_spec(scale=None), "is malformed: 'scale'"),
        (_spec(adapt__method="pid"), "adapt.method must be 'aci'"),
        (_spec(adapt__gamma=0.0), "adapt.gamma must be in (0, 0.5]"),
        (_spec(adapt__gamma="fast"), "is malformed"),
    ],
)
def test_malformed_scaled_specs_are_refused(spec: object, message: str) -> None:
    with pytest.raises(ManifestError, match="manifest field 'intervals'") as caught:
        intervals_from_json(spec)
    assert message in str(caught.value)


def test_the_scale_output_is_read_as_a_share_of_the_last_close_with_a_floor() -> None:
    outputs = np.array([[0.3, 2.0], [-0.1, 0.0]])  # columns: encoded change, encoded scale
    np.testing.assert_allclose(SCALE_OUTPUT.relative_scale(outputs), [0.02, 1e-6])


POOLING = ScalePooling(exponent=0.5, level=0.01)


def test_pooling_pulls_the_scale_toward_its_level_geometrically() -> None:
    pooled = ScaleOutput(1, 100.0, POOLING).relative_scale(np.array([[0.0, 4.0], [0.0, 0.25]]))
    # sqrt(0.01 * 0.04) and sqrt(0.01 * 0.0025): a quadruple of the level is halved in log terms.
    np.testing.assert_allclose(pooled, [0.02, 0.005])
    assert ScaleOutput(1, 100.0, ScalePooling(1.0, 0.01)).relative_scale(
        np.array([[0.0, 4.0]])
    ) == pytest.approx(0.04)


def test_a_pooled_spec_round_trips_and_a_spec_without_pooling_is_unchanged() -> None:
    pooled = ScaledIntervals.calibrate(np.array([0.5, 1.0]), "test", ScaleOutput(1, 100.0, POOLING))
    spec = pooled.to_json()
    assert spec["scale"]["pooling"] == {"kind": "geometric", "exponent": 0.5, "level": 0.01}
    parsed = intervals_from_json(spec)
    assert isinstance(parsed, ScaledIntervals) and parsed.scale_output.pooling == POOLING
    plain = scaled(np.array([0.5, 1.0])).to_json()
    assert "pooling" not in plain["scale"]
    assert intervals_from_json(plain).scale_output.pooling is None  # type: ignore[union-attr]


def _pooled_spec(**pooling: Any) -> dict[str, Any]:
    spec = ScaledIntervals.calibrate(
        np.array([0.5, 1.0]), "test", ScaleOutput(1, 100.0, POOLING)
    ).to_json()
    spec["scale"]["pooling"].update(pooling)
    return spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_pooled_spec(exponent=0.0), "scale.pooling.exponent must be in (0, 1]"),
        (_pooled_spec(exponent=1.5), "scale.pooling.exponent must be in (0, 1]"),
        (_pooled_spec(exponent="half"), "is malformed: pooling"),
        (_pooled_spec(level=-0.01), "scale.pooling.level must be positive"),
        (_pooled_spec(level=math.inf), "scale.pooling.level must be positive"),
        (_pooled_spec(kind="arithmetic"), "scale.pooling.kind must be 'geometric'"),
        (_spec(scale__pooling=[0.5, 0.01]), "is malformed: pooling"),
    ],
)
def test_malformed_pooling_is_refused(spec: object, message: str) -> None:
    with pytest.raises(ManifestError, match="manifest field 'intervals'") as caught:
        intervals_from_json(spec)
    assert message in str(caught.value)
