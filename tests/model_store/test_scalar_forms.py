"""The one-window forms of the bundle contract's arithmetic (`decode_one`, `relative_scale_one`,
`interval_band_one`) give what the array forms give, to the last digit (numpy only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from model_store import (
    LEVELS,
    Intervals,
    IntervalSpec,
    MinMaxEncoding,
    RelativeEncoding,
    ScaledIntervals,
    ScaleOutput,
    ScalePooling,
    WindowEncoding,
    interval_band,
    interval_band_one,
)

RNG_SEED = 20261202
COUNT = 2000  # windows per check: enough for any last-digit difference to show


def random_cases(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Last closes over four orders of magnitude, model outputs (float32, as ONNX Runtime
    gives them) of either sign, and relative scales from tiny to large."""
    last = 10.0 ** rng.uniform(-1.0, 3.0, COUNT)
    outputs = rng.normal(0.0, 3.0, (COUNT, 2)).astype(np.float32)
    outputs[:, 1] = np.abs(outputs[:, 1]) * 10.0 ** rng.uniform(-4.0, 1.0, COUNT)
    return last, outputs, 10.0 ** rng.uniform(-7.0, 0.0, COUNT)


@pytest.mark.parametrize(
    "encoding",
    [RelativeEncoding(), RelativeEncoding(factor=1.0), MinMaxEncoding.fit(np.array([80.0, 230.0]))],
    ids=["relative", "relative-factor-1", "minmax"],
)
def test_decode_one_gives_decode_to_the_last_digit(encoding: WindowEncoding) -> None:
    last, outputs, _ = random_cases(np.random.default_rng(RNG_SEED))
    windows = np.column_stack([last * 1.01, last])

    expected = encoding.decode(outputs[:, :1], windows)
    one = [
        encoding.decode_one(row[0], float(close))
        for row, close in zip(outputs.tolist(), last, strict=True)
    ]

    assert one == expected.tolist()


@pytest.mark.parametrize(
    "pooling", [None, ScalePooling(0.6, 0.012), ScalePooling(1.0, 0.02)], ids=str
)
def test_relative_scale_one_gives_relative_scale_to_the_last_digit(
    pooling: ScalePooling | None,
) -> None:
    _, outputs, _ = random_cases(np.random.default_rng(RNG_SEED))
    outputs[:5, 1] = [0.0, -1.0, 1e-12, np.inf, np.nan]  # floored, floored, floored, inf, nan
    scale_output = ScaleOutput(index=1, per_close=100.0, pooling=pooling)

    expected = scale_output.relative_scale(outputs).tolist()
    one = [scale_output.relative_scale_one(row) for row in outputs.tolist()]

    assert one[:4] == expected[:4] and np.isnan(one[4]) and np.isnan(expected[4])
    assert one[5:] == expected[5:]


def scaled_intervals(rng: np.random.Generator) -> ScaledIntervals:
    return ScaledIntervals.calibrate(rng.normal(0.0, 1.0, 500), "test", ScaleOutput(1, 100.0))


def fixed_intervals(rng: np.random.Generator) -> Intervals:
    quantiles = np.sort(np.abs(rng.normal(0.0, 0.02, len(LEVELS))))
    return Intervals(dict(zip(LEVELS, quantiles.tolist(), strict=True)), 500, "test")


@pytest.mark.parametrize("make", [scaled_intervals, fixed_intervals], ids=["scaled", "fixed"])
def test_interval_band_one_gives_interval_band_to_the_last_digit(
    make: Callable[[np.random.Generator], IntervalSpec],
) -> None:
    rng = np.random.default_rng(RNG_SEED)
    intervals = make(rng)
    last, outputs, scales = random_cases(rng)
    predicted = last * (1.0 + outputs[:, 0].astype(np.float64) / 100.0)
    predicted[:3] = [0.0, 1e-9, last[2] * 1e-3]  # bounds clipped at zero

    for level in (50, 80, 95, 99):
        lower, upper = interval_band(intervals, predicted, last, scales, level)
        one = [
            interval_band_one(intervals, p, c, s, level)
            for p, c, s in zip(predicted.tolist(), last.tolist(), scales.tolist(), strict=True)
        ]
        assert [low for low, _ in one] == lower.tolist()
        assert [high for _, high in one] == upper.tolist()
    assert interval_band_one(intervals, 0.0, 1.0, 0.5, 95)[0] == 0.0


def test_scaled_intervals_need_a_scale_for_one_window_too() -> None:
    intervals = scaled_intervals(np.random.default_rng(RNG_SEED))
    with pytest.raises(ValueError, match="need the predicted scales"):
        interval_band_one(intervals, 100.0, 100.0, None, 95)
