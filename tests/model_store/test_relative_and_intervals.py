"""The scale-free encoding and the split-conformal intervals of the bundle contract (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_store import (
    Intervals,
    ManifestError,
    RelativeEncoding,
    conformal_quantiles,
    encoding_from_json,
)

WINDOWS = np.array([[100.0, 102.0, 101.0, 104.0], [50.0, 49.0, 47.5, 48.0]])


def test_relative_encoding_is_the_change_from_the_last_close_in_percent() -> None:
    encoded = RelativeEncoding().encode(WINDOWS)
    assert encoded.shape == (2, 4, 1) and encoded.dtype == np.float32
    expected = (WINDOWS / WINDOWS[:, -1:] - 1.0) * 100.0
    np.testing.assert_allclose(encoded[..., 0], expected, rtol=1e-6)
    assert encoded[0, -1, 0] == 0.0 and encoded[1, -1, 0] == 0.0


def test_relative_targets_round_trip_through_decode() -> None:
    encoding = RelativeEncoding(factor=100.0)
    targets = np.array([105.0, 47.0])
    outputs = encoding.encode_targets(targets, WINDOWS)
    np.testing.assert_allclose(outputs, [(105 / 104 - 1) * 100, (47 / 48 - 1) * 100])
    np.testing.assert_allclose(encoding.decode(outputs.reshape(-1, 1), WINDOWS), targets)
    np.testing.assert_array_equal(encoding.decode(np.zeros((2, 1)), WINDOWS), WINDOWS[:, -1])


def test_relative_encoding_does_not_see_the_price_level() -> None:
    encoding = RelativeEncoding()
    base = encoding.encode(WINDOWS)
    # Scaling by a power of two is exact in floating point: bit-identical inputs.
    np.testing.assert_array_equal(encoding.encode(WINDOWS * 8.0), base)
    np.testing.assert_allclose(encoding.encode(WINDOWS * 10.0), base, rtol=1e-6, atol=1e-6)
    outputs = np.array([[1.5], [-2.0]])
    np.testing.assert_allclose(
        encoding.decode(outputs, WINDOWS * 10.0), encoding.decode(outputs, WINDOWS) * 10.0
    )


def test_relative_encoding_json_round_trip() -> None:
    encoding = RelativeEncoding(factor=100.0)
    assert encoding.to_json() == {"kind": "relative", "factor": 100.0}
    assert encoding_from_json(encoding.to_json()) == encoding


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "relative"}, "manifest field 'scaler' is malformed"),
        ({"kind": "relative", "factor": "abc"}, "manifest field 'scaler' is malformed"),
        ({"kind": "relative", "factor": 0}, "non-finite or non-positive factor"),
        ({"kind": "relative", "factor": -100}, "non-finite or non-positive factor"),
        ({"kind": "relative", "factor": "nan"}, "non-finite or non-positive factor"),
        ({"kind": "relative", "factor": None}, "manifest field 'scaler' is malformed"),
        ({"kind": "ratio", "factor": 100}, "unknown scaler kind 'ratio'"),
    ],
)
def test_malformed_relative_specs_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        encoding_from_json(spec)


def rank_by_hand(count: int, level: int) -> int:
    """The 1-based rank of the split-conformal quantile: the smallest k with k >= (n+1)L/100,
    at most n."""
    k = 1
    while k < (count + 1) * level / 100:
        k += 1
    return min(k, count)


def test_conformal_quantiles_take_the_split_conformal_rank() -> None:
    residuals = np.array([0.05, -0.01, 0.03, -0.02, 0.004, -0.07, 0.011, 0.02, -0.001])
    ordered = sorted(abs(r) for r in residuals)  # n = 9: rank ceil(10 L / 100)
    quantiles = conformal_quantiles(residuals)
    assert sorted(quantiles) == list(range(50, 100))
    for level, width in quantiles.items():
        assert width == ordered[rank_by_hand(9, level) - 1], level
    # By hand: L=50 -> rank 5 (0.02); L=80 -> rank 8 (0.05); L=81 -> rank 9 (0.07).
    assert (quantiles[50], quantiles[80], quantiles[81]) == (0.02, 0.05, 0.07)
    # Fewer residuals than a level's rank needs: the largest one (training reports coverage).
    assert quantiles[99] == 0.07


def test_conformal_quantiles_refuse_empty_or_non_finite_residuals() -> None:
    with pytest.raises(ValueError, match="at least one finite residual"):
        conformal_quantiles(np.array([]))
    with pytest.raises(ValueError, match="at least one finite residual"):
        conformal_quantiles(np.array([0.01, math.nan]))


def test_interval_bounds_scale_with_the_last_close_and_widen_with_the_horizon() -> None:
    intervals = Intervals({80: 0.01, 95: 0.02}, 250, "test")
    lower, upper = intervals.bounds(np.array([101.0, 52.0]), np.array([100.0, 50.0]))
    np.testing.assert_allclose(lower, [101.0 - 2.0, 52.0 - 1.0])
    np.testing.assert_allclose(upper, [101.0 + 2.0, 52.0 + 1.0])
    lower, upper = intervals.bounds(
        np.array([101.0, 101.0]), np.array([100.0, 100.0]), level=80, steps_ahead=np.array([1, 4])
    )
    np.testing.assert_allclose(upper - lower, [2 * 1.0, 2 * 1.0 * math.sqrt(4)])
    lower, _ = Intervals({95: 1.5}, 10, "test").bounds(np.array([1.0]), np.array([1.0]))
    assert lower[0] == 0.0  # a close is never negative
    with pytest.raises(ValueError, match="level must be a whole percent between 80 and 95"):
        intervals.half_width(90)


def test_intervals_json_round_trip() -> None:
    intervals = Intervals(conformal_quantiles(np.linspace(-0.03, 0.03, 61)), 61, "walk-forward")
    spec = intervals.to_json()
    assert spec["method"] == "split-conformal" and spec["relative_to"] == "last_close"
    assert list(spec["quantiles"]) == [str(level) for level in range(50, 100)]
    assert Intervals.from_json(spec) == intervals


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"residuals": 3, "source": "x"}, "manifest field 'intervals' is malformed"),
        ({"quantiles": [0.1], "residuals": 3, "source": "x"}, "is malformed"),
        ({"quantiles": {"95": "wide"}, "residuals": 3, "source": "x"}, "is malformed"),
        ({"quantiles": {"ninety": 0.1}, "residuals": 3, "source": "x"}, "is malformed"),
        ({"quantiles": {"95": -0.1}, "residuals": 3, "source": "x"}, "negative or non-finite"),
        ({"quantiles": {"95": "inf"}, "residuals": 3, "source": "x"}, "negative or non-finite"),
        ({"quantiles": {}, "residuals": 3, "source": "x"}, "negative or non-finite"),
        ("wide", "is malformed"),
    ],
)
def test_malformed_intervals_are_refused(spec: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Intervals.from_json(spec)
