"""app.forecast without HTTP: context joining, horizon dates, metrics, intervals, history, the
too-short rule.

The predict function here is a real one (tomorrow = the window's mean), so expected values can
be computed by hand; the model itself is exercised in test_forecast.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.forecast import Context, follows_context, forecast_series, horizon_dates
from app.predictor import Predictions
from model_store import Intervals, PriceSeries, SeriesError


def window_mean(windows: np.ndarray) -> Predictions:
    return Predictions(np.asarray(windows).mean(axis=1))


def series(first: str, values: list[float]) -> PriceSeries:
    dates = np.busday_offset(np.datetime64(first), np.arange(len(values)), roll="forward")
    return PriceSeries(dates, np.array(values, dtype=np.float64), "Close")


CONTEXT = Context(
    dates=np.busday_offset(np.datetime64("2019-11-04"), np.arange(3)),  # ends Wed 2019-11-06
    closes=np.array([10.0, 11.0, 12.0]),
)


@pytest.mark.parametrize(
    ("first", "follows"),
    [
        ("2019-11-07", True),  # the next weekday
        ("2019-11-08", True),  # one weekday missing (a holiday)
        ("2019-11-11", True),  # two missing weekdays around a weekend
        ("2019-11-12", False),  # three missing weekdays: a gap, not a holiday
        ("2019-11-06", False),  # overlaps the context
        ("2019-10-01", False),  # before it
    ],
)
def test_follows_context_allows_holidays_but_not_gaps(first: str, follows: bool) -> None:
    assert follows_context(CONTEXT, np.datetime64(first)) is follows


def test_horizon_dates_skip_weekends_even_from_a_weekend() -> None:
    assert [str(d) for d in horizon_dates(np.datetime64("2020-01-31"), 3)] == [
        "2020-02-03", "2020-02-04", "2020-02-05",
    ]  # fmt: skip
    # A Saturday last row counts from the Friday before: the next business day is Monday.
    assert [str(d) for d in horizon_dates(np.datetime64("2020-02-01"), 1)] == ["2020-02-03"]


def test_rows_after_the_context_are_predicted_from_it() -> None:
    result = forecast_series(series("2019-11-07", [13.0, 14.0]), window_mean, 3, CONTEXT)
    assert result.points == [
        {"date": "2019-11-07", "actual": 13.0, "predicted": 11.0, "lower": None, "upper": None},
        {"date": "2019-11-08", "actual": 14.0, "predicted": 12.0, "lower": None, "upper": None},
    ]
    assert result.history == []
    assert result.metrics["points"] == 2
    assert result.metrics["coverage"] is None
    assert result.metrics["rmse"] == pytest.approx(2.0)
    assert result.metrics["mae"] == pytest.approx(2.0)
    assert result.metrics["mape"] == pytest.approx((2 / 13 + 2 / 14) / 2 * 100)
    assert result.metrics["persistence_rmse"] == pytest.approx(1.0)  # 12 -> 13, 13 -> 14
    assert "the first 2 rows predicted from the model's context" in result.warnings[0]


def test_without_context_only_rows_with_a_full_window_before_them_are_points() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    result = forecast_series(series("2020-03-02", values), window_mean, 3, None)
    assert [p["actual"] for p in result.points] == [4.0, 5.0]
    assert [p["predicted"] for p in result.points] == [2.0, 3.0]
    assert result.history == [
        {"date": "2020-03-02", "actual": 1.0},
        {"date": "2020-03-03", "actual": 2.0},
        {"date": "2020-03-04", "actual": 3.0},
    ]
    assert result.warnings == []


@pytest.mark.parametrize(
    ("first_close", "used"), [(14.9, True), (9.1, True), (15.1, False), (8.9, False)]
)
def test_context_is_used_only_when_the_first_close_is_within_25_percent_of_its_last(
    first_close: float, used: bool
) -> None:
    # CONTEXT ends at 12.0: 9.0..15.0 continue it, anything further is another ticker or level.
    values = [first_close, 13.0, 14.0, 15.0, 16.0]
    result = forecast_series(series("2019-11-07", values), window_mean, 3, CONTEXT)
    if used:
        assert len(result.points) == 5 and result.history == []
        assert result.warnings[0].startswith("the first 3 rows predicted from the model's context")
    else:
        assert [p["date"] for p in result.points] == ["2019-11-12", "2019-11-13"]
        assert [h["actual"] for h in result.history] == [first_close, 13.0, 14.0]
        assert result.warnings == [
            "the CSV starts right after the model's context (which ends 2019-11-06), but its "
            f"first Close ({first_close:.2f}) is not within 25% of the context's last close "
            "(12.00): another ticker or price level, so its first 3 rows are not predicted"
        ]


INTERVALS = Intervals(quantiles={80: 0.5, 95: 1.0}, residuals=10, source="test")


def test_points_get_bounds_around_their_last_close_and_coverage_counts_the_actuals_inside() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]  # points: 4 predicted 2 (last close 3), 5 predicted 3 (4)
    at_80 = forecast_series(
        series("2020-03-02", values), window_mean, 3, None, 0, None, INTERVALS, 80
    )
    assert [(p["lower"], p["upper"]) for p in at_80.points] == [(0.5, 3.5), (1.0, 5.0)]
    assert at_80.metrics["coverage"] == 0.5  # 4 is outside [0.5, 3.5]; 5 is on the upper bound
    at_95 = forecast_series(
        series("2020-03-02", values), window_mean, 3, None, 0, None, INTERVALS, 95
    )
    assert [(p["lower"], p["upper"]) for p in at_95.points] == [(0.0, 5.0), (0.0, 7.0)]  # >= 0
    assert at_95.metrics["coverage"] == 1.0


def test_horizon_day_k_is_widened_by_sqrt_k_around_the_last_actual_close() -> None:
    values = [3.0, 4.0, 5.0]
    result = forecast_series(
        series("2020-03-02", values), window_mean, 3, None, 3, None, INTERVALS, 80
    )
    widths = [(h["upper"] - h["lower"]) / 2 for h in result.horizon]
    assert widths == pytest.approx([2.5, 2.5 * math.sqrt(2), 2.5 * math.sqrt(3)])
    for day in result.horizon:
        assert day["lower"] < day["predicted"] < day["upper"]


def test_horizon_feeds_each_prediction_into_the_next_window() -> None:
    result = forecast_series(series("2020-03-02", [3.0, 6.0, 9.0]), window_mean, 3, None, 3)
    assert result.points == []
    assert [h["actual"] for h in result.history] == [3.0, 6.0, 9.0]
    assert result.metrics == {
        "points": 0, "rmse": None, "mae": None, "mape": None,
        "persistence_rmse": None, "persistence_mae": None, "persistence_mape": None,
        "coverage": None, "winkler": None, "mean_width": None, "adapted_level": None,
    }  # fmt: skip
    # mean(3,6,9)=6; mean(6,9,6)=7; mean(9,6,7)=22/3
    assert [p["predicted"] for p in result.horizon] == pytest.approx([6.0, 7.0, 22 / 3])
    assert [p["date"] for p in result.horizon] == ["2020-03-05", "2020-03-06", "2020-03-09"]
    assert result.predictions_made == 3


def test_too_few_closes_for_one_prediction_is_a_series_error() -> None:
    with pytest.raises(SeriesError, match=r"need at least 4 rows of Close .* got 3$"):
        forecast_series(series("2020-03-02", [3.0, 6.0, 9.0]), window_mean, 3, None)
    with pytest.raises(SeriesError, match=r"context \(which ends 2019-11-06\); got 2$"):
        forecast_series(series("2020-03-02", [3.0, 6.0]), window_mean, 3, CONTEXT, 5)


def test_range_warnings_count_closes_outside_the_training_range() -> None:
    values = [5.0, 50.0, 150.0, 250.0, 260.0]
    result = forecast_series(series("2020-03-02", values), window_mean, 3, None, 0, (10.0, 200.0))
    assert result.warnings == [
        "2 closes are above the training range (max 200.00); predictions saturate there",
        "1 close is below the training range (min 10.00); predictions saturate there",
    ]
