"""The /forecast body writer: the column-by-column JSON of the points is, byte for byte, orjson's
JSON of the row dicts, with and without bounds and scales, across piece boundaries."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from app.forecast import ForecastResult
from app.forecast_body import POINTS_PER_PIECE, forecast_json_pieces, points_json


def result(count: int, bounds: bool, scales: bool) -> ForecastResult:
    rng = np.random.default_rng(count)
    actual = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, count)))
    predicted = actual * (1.0 + rng.normal(0.0, 0.01, count))
    # Values orjson writes in several notations: tiny, huge, integral, long fractions.
    predicted[: min(count, 4)] = [1e-7, 123456789012345.67, 250.0, 1 / 3][: min(count, 4)]
    return ForecastResult(
        point_dates=np.busday_offset("1990-01-01", np.arange(count), roll="forward"),
        actual=actual,
        predicted=predicted,
        bounds=(predicted * 0.97, predicted * 1.03) if bounds else None,
        metrics={"points": count},
        horizon=[],
        scales=actual * 0.012 if scales else None,
    )


@pytest.mark.parametrize(("bounds", "scales"), [(True, True), (True, False), (False, False)])
def test_points_are_written_as_orjson_writes_the_row_dicts(bounds: bool, scales: bool) -> None:
    points = result(2 * POINTS_PER_PIECE + 17, bounds, scales)

    assert points_json(points, 0, points.point_count) == orjson.dumps(points.points)[1:-1]
    assert points_json(points, 5, 9) == orjson.dumps(points.point_rows(5, 9))[1:-1]


def test_the_pieces_join_into_the_whole_body() -> None:
    points = result(POINTS_PER_PIECE + 3, bounds=True, scales=True)
    head = {"column": "Close", "warnings": []}

    body = b"".join(forecast_json_pieces(head, points))

    assert orjson.loads(body) == {**head, "points": points.points}
    assert body == orjson.dumps({**head, "points": points.points})
