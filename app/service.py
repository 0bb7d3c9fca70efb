"""Prediction dispatch: the one place every predicting endpoint calls (window checks, batching
across requests, worker threads for big batches, intervals, prediction counts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from anyio import to_thread

from app.batching import MicroBatcher
from app.errors import InvalidInputError
from app.forecast import Context, ForecastResult, forecast_series
from app.forecast_body import check_row_count, forecast_json_pieces
from app.metrics import ServiceMetrics
from app.predictor import Predictor, interval_bounds
from model_store import interval_band_one, parse_price_csv

# With a fast (ONNX) runtime, up to this many windows run on the event loop: a thread hop would
# cost more than the call (~0.1 ms a window). Bigger batches run in a worker thread so they never
# stall the loop; single windows are batched across concurrent requests (app/batching.py).
INLINE_WINDOWS = 64


@dataclass(frozen=True)
class Prediction:
    """Next closes for a batch of windows, with their bounds (None without intervals) and
    predicted scales in price units (None without a scale output)."""

    closes: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    scales: np.ndarray | None = None


@dataclass(frozen=True)
class OnePrediction:
    """The next close after one window, its bounds (None without intervals) and its predicted
    scale in price units (None without a scale output)."""

    close: float
    lower: float | None
    upper: float | None
    scale: float | None


class PredictionService:
    """Runs predictions for any endpoint on the predictor it resolved for the request."""

    def __init__(self, batcher: MicroBatcher, metrics: ServiceMetrics):
        self.batcher = batcher
        self.metrics = metrics

    @staticmethod
    def check_lengths(
        predictor: Predictor, windows: Sequence[Sequence[float]], single: bool
    ) -> None:
        """InvalidInputError naming the first window whose length is not the model's."""
        for index, window in enumerate(windows):
            if len(window) != predictor.window:
                where, loc = (
                    ("closes", ["body", "closes"])
                    if single
                    else (f"windows[{index}]", ["body", "windows", index])
                )
                raise InvalidInputError(
                    f"{where} must hold {predictor.window} closes (got {len(window)})",
                    detail=[{"loc": loc, "msg": "wrong window length", "type": "window_length"}],
                )

    async def predict_one(
        self,
        predictor: Predictor,
        closes: Sequence[float],
        level: int,
        endpoint: str,
        alone: bool = False,
    ) -> OnePrediction:
        """The next close and its `level`% bounds after one window: it joins the batch of
        concurrent requests, or runs at once when the request is `alone` in the server."""
        if not predictor.runtime.inline:
            close, scale = await to_thread.run_sync(predictor.forecast_one, closes)
        elif alone and self.batcher.idle:
            close, scale = self.batcher.forecast_now(predictor, closes)
        else:
            close, scale = await self.batcher.forecast(predictor, np.array(closes, np.float64))
        self.metrics.count_predictions(endpoint, predictor.name, predictor.version_label, 1)
        last = closes[-1]
        price_scale = None if scale is None else scale * last
        if predictor.intervals is None:
            return OnePrediction(close, None, None, price_scale)
        lower, upper = interval_band_one(predictor.intervals, close, last, scale, level)
        return OnePrediction(close, lower, upper, price_scale)

    async def predict(
        self, predictor: Predictor, windows: np.ndarray, level: int, endpoint: str
    ) -> Prediction:
        """Next closes and `level`% bounds for a batch of `windows` `(n, window)`: a big batch,
        or any batch of a slow runtime, runs in a worker thread."""
        inline = predictor.runtime.inline
        if inline and len(windows) <= INLINE_WINDOWS:
            predictions = predictor.forecast(windows)
        else:
            predictions = await to_thread.run_sync(predictor.forecast, windows)
        closes = predictions.closes
        self.metrics.count_predictions(
            endpoint, predictor.name, predictor.version_label, len(closes)
        )
        scales = None if predictions.scales is None else predictions.scales * windows[:, -1]
        if predictor.intervals is None:
            return Prediction(closes, None, None, scales)
        lower, upper = interval_bounds(predictor.intervals, predictions, windows[:, -1], level)
        return Prediction(closes, lower, upper, scales)

    async def forecast_body(
        self,
        predictor: Predictor,
        data: bytes | str,
        column: str | None,
        horizon: int,
        level: int,
        max_rows: int,
        adapt: bool = False,
    ) -> list[bytes]:
        """The forecast of a CSV as JSON body pieces: row cap, parsing, prediction and
        serialisation all run off the loop (CPU-bound). `adapt` moves each point's level along
        the series (adaptive conformal inference; InvalidInputError without adaptive intervals)."""
        check_adapt(predictor, adapt)
        pieces, predictions = await to_thread.run_sync(
            _forecast_body, predictor, data, column, horizon, level, max_rows, adapt
        )
        self.metrics.predictions.labels("forecast", predictor.name, predictor.version_label).inc(
            predictions
        )
        return pieces


def _forecast_body(
    predictor: Predictor,
    data: bytes | str,
    column: str | None,
    horizon: int,
    level: int,
    max_rows: int,
    adapt: bool,
) -> tuple[list[bytes], int]:
    check_row_count(data, max_rows)
    name, result = _forecast(predictor, data, column, horizon, level, adapt)
    head = {
        "model": {"name": predictor.name, "version": predictor.version},
        "column": name,
        "level": level,
        "adapt": adapt,
        "history": result.history,
        "metrics": result.metrics,
        "horizon": result.horizon,
        "warnings": result.warnings,
    }
    return forecast_json_pieces(head, result), result.predictions_made


def check_adapt(predictor: Predictor, adapt: bool) -> None:
    """InvalidInputError when `adapt` is asked of a model without adaptive intervals."""
    if adapt and not (predictor.intervals is not None and predictor.intervals.adaptive):
        raise InvalidInputError(
            f"adapt=true needs a bundle with adaptive intervals; {predictor.name} "
            f"v{predictor.version} has "
            + ("none" if predictor.intervals is None else "fixed-width intervals"),
            detail=[{"loc": ["query", "adapt"], "msg": "not supported", "type": "adapt"}],
        )


def _forecast(
    predictor: Predictor,
    data: bytes | str,
    column: str | None,
    horizon: int,
    level: int,
    adapt: bool,
) -> tuple[str, ForecastResult]:
    bundle = predictor.bundle
    series = parse_price_csv(data, column or bundle.feature)
    own_feature = series.column.lower() == bundle.feature.lower()
    context = Context(bundle.context_dates, bundle.context_closes) if own_feature else None
    result = forecast_series(
        series,
        predictor.forecast,
        predictor.window,
        context,
        horizon,
        predictor.encoding.training_range,
        predictor.intervals,
        level,
        adapt,
    )
    return series.column, result
