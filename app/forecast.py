"""Pure forecast logic: a price series (plus the bundle's context and intervals) -> history,
points, metrics, horizon, with prediction bounds.

No HTTP here; the router parses the CSV and hands over a predict function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.predictor import Predictions, interval_bounds
from model_store import (
    DEFAULT_LEVEL,
    IntervalSpec,
    PriceSeries,
    ScaledIntervals,
    SeriesError,
    prediction_windows,
    winkler_score,
)

Predict = Callable[[np.ndarray], Predictions]
Bounds = tuple[np.ndarray, np.ndarray]

# A CSV "starts right after" the context when at most this many weekdays lie between the
# context's last date and the CSV's first (exchange holidays such as New Year's Day).
MAX_MISSING_WEEKDAYS = 2
# ...and when its first close is within this share of the context's last close: a bigger jump
# overnight means another ticker or price level, whose first rows must not be predicted from
# the training closes.
MAX_CONTEXT_JUMP = 0.25


@dataclass(frozen=True)
class Context:
    """The bundle's last training closes, used to predict the first rows of a CSV that follows."""

    dates: np.ndarray  # datetime64[D], ascending
    closes: np.ndarray  # float64


@dataclass(frozen=True)
class ForecastResult:
    """Everything /forecast returns apart from the model reference. The points stay numpy
    arrays (one Python object per point would be ~400 bytes: 100 MB for a 16 MB CSV), turned
    into rows a slice at a time."""

    point_dates: np.ndarray  # datetime64[D]
    actual: np.ndarray
    predicted: np.ndarray
    bounds: tuple[np.ndarray, np.ndarray] | None
    metrics: dict[str, Any]
    horizon: list[dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    scales: np.ndarray | None = None  # the points' predicted scales in price units

    @property
    def point_count(self) -> int:
        """How many CSV rows were predicted."""
        return len(self.predicted)

    @property
    def predictions_made(self) -> int:
        """How many closes were predicted (points plus horizon)."""
        return self.point_count + len(self.horizon)

    def point_rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Points `start:stop` as response rows."""
        span = slice(start, stop)
        count = len(self.predicted[span])
        lowers, uppers = _bound_lists(
            None if self.bounds is None else (self.bounds[0][span], self.bounds[1][span]), count
        )
        rows = [
            {"date": day, "actual": a, "predicted": p, "lower": lo, "upper": up}
            for day, a, p, lo, up in zip(
                self.point_dates[span].astype(str).tolist(),
                self.actual[span].tolist(),
                self.predicted[span].tolist(),
                lowers,
                uppers,
                strict=True,
            )
        ]
        if self.scales is not None:
            for row, scale in zip(rows, self.scales[span].tolist(), strict=True):
                row["scale"] = scale
        return rows

    @property
    def points(self) -> list[dict[str, Any]]:
        """Every point as a response row."""
        return self.point_rows(0, self.point_count)


def follows_context(context: Context, first_date: np.datetime64) -> bool:
    """Whether a series starting on `first_date` continues right after the context."""
    if len(context.dates) == 0:
        return False
    last = context.dates[-1]
    if first_date <= last:
        return False
    missing = int(np.busday_count(last + np.timedelta64(1, "D"), first_date))
    return missing <= MAX_MISSING_WEEKDAYS


def _context_prefix(
    context: Context | None, series: PriceSeries, window: int, warnings: list[str]
) -> np.ndarray:
    """The context's last `window` closes when the series continues it, else nothing; says why
    in `warnings` either way."""
    if context is None or not follows_context(context, series.dates[0]):
        return np.empty(0)
    last_close, first_close = float(context.closes[-1]), float(series.values[0])
    if abs(first_close / last_close - 1.0) > MAX_CONTEXT_JUMP:
        warnings.append(
            f"the CSV starts right after the model's context (which ends {context.dates[-1]}), "
            f"but its first {series.column} ({first_close:.2f}) is not within "
            f"{MAX_CONTEXT_JUMP:.0%} of the context's last close ({last_close:.2f}): another "
            f"ticker or price level, so its first {window} rows are not predicted"
        )
        return np.empty(0)
    prefix = context.closes[-window:]
    used = min(len(prefix), len(series))
    warnings.append(
        f"the first {used} row{'' if used == 1 else 's'} predicted from the model's context: its "
        f"last {len(prefix)} training closes ({context.dates[-len(prefix)]}..{context.dates[-1]})"
    )
    return prefix


def _errors(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float, float]:
    error = predicted - actual
    rmse = float(np.sqrt(np.mean(error**2)))
    mae = float(np.mean(np.abs(error)))
    mape = float(np.mean(np.abs(error) / actual) * 100.0)
    return rmse, mae, mape


def _metrics(
    predicted: np.ndarray,
    persistence: np.ndarray,
    actual: np.ndarray,
    bounds: Bounds | None,
    level: int,
) -> dict[str, Any]:
    if len(actual) == 0:
        keys = (
            "rmse", "mae", "mape", "persistence_rmse", "persistence_mae", "persistence_mape",
            "coverage", "winkler", "mean_width",
        )  # fmt: skip
        return {"points": 0, **dict.fromkeys(keys)}
    rmse, mae, mape = _errors(predicted, actual)
    p_rmse, p_mae, p_mape = _errors(persistence, actual)
    coverage = winkler = mean_width = None
    if bounds is not None:
        lower, upper = bounds
        coverage = float(np.mean((lower <= actual) & (actual <= upper)))
        winkler = float(np.mean(winkler_score(lower, upper, actual, level)))
        mean_width = float(np.mean(upper - lower))
    return {
        "points": len(actual),
        "rmse": rmse,
        "mae": mae,
        "mape": mape,
        "persistence_rmse": p_rmse,
        "persistence_mae": p_mae,
        "persistence_mape": p_mape,
        "coverage": coverage,
        "winkler": winkler,
        "mean_width": mean_width,
    }


def _bound_lists(
    bounds: Bounds | None, count: int
) -> tuple[list[float | None], list[float | None]]:
    """Plain floats for the response, or `None`s when the bundle has no intervals."""
    if bounds is None:
        return [None] * count, [None] * count
    return bounds[0].tolist(), bounds[1].tolist()


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'} {'is' if count == 1 else 'are'}"


def range_warnings(values: np.ndarray, training_range: tuple[float, float] | None) -> list[str]:
    """Closes outside the range the model was scaled on, where a MinMax model saturates."""
    if training_range is None:
        return []
    low, high = training_range
    warnings = []
    if above := int(np.sum(values > high)):
        warnings.append(
            f"{_plural(above, 'close')} above the training range (max {high:.2f}); "
            "predictions saturate there"
        )
    if below := int(np.sum(values < low)):
        warnings.append(
            f"{_plural(below, 'close')} below the training range (min {low:.2f}); "
            "predictions saturate there"
        )
    return warnings


def horizon_dates(last_date: np.datetime64, horizon: int) -> np.ndarray:
    """The `horizon` business days (Mon-Fri) after `last_date`."""
    # roll="backward" makes a weekend last date count from the Friday before it.
    return np.busday_offset(last_date, np.arange(1, horizon + 1), roll="backward")


def _point_bounds(
    intervals: IntervalSpec | None,
    predictions: Predictions,
    last_close: np.ndarray,
    actual: np.ndarray,
    level: int,
    adapt: bool,
) -> tuple[Bounds | None, float | None]:
    """The points' bounds and, when adapting, the level reached after the last point."""
    if intervals is None:
        return None, None
    if adapt and isinstance(intervals, ScaledIntervals) and predictions.scales is not None:
        adapted = intervals.adaptive_bounds(
            predictions.closes, last_close, predictions.scales, actual, level
        )
        return (adapted.lower, adapted.upper), adapted.next_level
    return interval_bounds(intervals, predictions, last_close, level), None


def _recursive_horizon(
    predict: Predict, closes: np.ndarray, first: float, horizon: int
) -> list[float]:
    """`horizon` closes, each predicted from a window ending in the predictions before it."""
    steps = [first]
    recent = closes
    while len(steps) < horizon:
        recent = np.append(recent[1:], steps[-1])
        steps.append(float(predict(recent[np.newaxis, :]).closes[0]))
    return steps


def forecast_series(
    series: PriceSeries,
    predict: Predict,
    window: int,
    context: Context | None,
    horizon: int = 0,
    training_range: tuple[float, float] | None = None,
    intervals: IntervalSpec | None = None,
    level: int = DEFAULT_LEVEL,
    adapt: bool = False,
) -> ForecastResult:
    """One-step predictions for every row with `window` known closes before it, in one batched
    call, then `horizon` business days past the last row, each fed the predictions before it.

    `context` (the bundle's last training closes, only for the bundle's own feature) is put in
    front when the series starts right after it at a similar price. With `intervals`, every
    prediction gets `level`% bounds: a point's around its window's last close (scaled by its
    window's predicted scale for adaptive intervals; with `adapt`, at a level that adapts to
    the misses before it), horizon day k's around the last actual close, widened by sqrt(k).
    Raises SeriesError when nothing is predictable.
    """
    warnings = list(series.warnings)
    prefix = _context_prefix(context, series, window, warnings)
    closes = np.concatenate([prefix, series.values])
    if len(closes) < window + 1 and (horizon == 0 or len(closes) < window):
        after = (
            f", or rows starting right after the model's context (which ends {context.dates[-1]})"
            if context is not None and len(context.dates)
            else ""
        )
        raise SeriesError(
            f"need at least {window + 1} rows of {series.column} to predict one row (the model "
            f"reads {window} closes){after}; got {len(series)}"
        )

    windows = prediction_windows(closes, window)
    predictions = predict(windows)  # the last window predicts the day after the series
    predicted, scales = predictions.closes, predictions.scales
    count = len(windows) - 1
    actual = closes[window:]
    persistence = windows[:count, -1]
    first_point = window - len(prefix)  # the series rows before it have no prediction
    history = [
        {"date": str(day), "actual": float(a)}
        for day, a in zip(series.dates[:first_point], series.values[:first_point], strict=True)
    ]
    points_only = Predictions(predicted[:count], None if scales is None else scales[:count])
    point_bounds, next_level = _point_bounds(
        intervals, points_only, persistence, actual, level, adapt
    )
    steps: list[float] = []
    horizon_bounds = None
    if horizon:
        steps = _recursive_horizon(predict, closes[-window:], float(predicted[-1]), horizon)
        warnings.append(
            "horizon points are predicted from earlier predictions, so their error compounds"
        )
        if intervals is not None:
            # Every day is scaled from the last actual window: later windows hold predictions.
            last_scale = None if scales is None else np.full(horizon, scales[-1])
            horizon_bounds = interval_bounds(
                intervals,
                Predictions(np.array(steps), last_scale),
                closes[-1],
                level if next_level is None else next_level,
                np.arange(1, horizon + 1),
            )
    lowers, uppers = _bound_lists(horizon_bounds, horizon)
    future = [
        {"date": str(day), "predicted": value, "lower": lo, "upper": up}
        for day, value, lo, up in zip(
            horizon_dates(series.dates[-1], horizon), steps, lowers, uppers, strict=True
        )
    ]
    warnings.extend(range_warnings(series.values, training_range))
    metrics = _metrics(predicted[:count], persistence, actual, point_bounds, level)
    metrics["adapted_level"] = next_level
    return ForecastResult(
        series.dates[first_point:],
        actual,
        predicted[:count],
        point_bounds,
        metrics,
        future,
        history,
        warnings,
        None if scales is None else scales[:count] * persistence,
    )
