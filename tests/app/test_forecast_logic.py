"""app.forecast without HTTP: context joining, horizon dates, metrics, the too-short rule.

The predict function here is a real one (tomorrow = the window's mean), so expected values can
be computed by hand; the model itself is exercised in test_forecast.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.forecast import Context, follows_context, forecast_series, horizon_dates
from model_store import PriceSeries, SeriesError


def window_mean(windows: np.ndarray) -> np.ndarray:
    return np.asarray(windows).mean(axis=1)


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
        {"date": "2019-11-07", "actual": 13.0, "predicted": 11.0},
        {"date": "2019-11-08", "actual": 14.0, "predicted": 12.0},
    ]
    assert result.metrics["points"] == 2
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
    assert result.warnings == []


def test_horizon_feeds_each_prediction_into_the_next_window() -> None:
    result = forecast_series(series("2020-03-02", [3.0, 6.0, 9.0]), window_mean, 3, None, 3)
    assert result.points == []
    assert result.metrics == {
        "points": 0, "rmse": None, "mae": None, "mape": None,
        "persistence_rmse": None, "persistence_mae": None, "persistence_mape": None,
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
