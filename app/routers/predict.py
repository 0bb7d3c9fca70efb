"""POST /predict: next close for one window or a batch of windows."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Body, Depends

from app.dependencies import BatcherDep, MetricsDep, PredictorDep, require_json
from app.errors import InvalidInputError
from app.predictor import Predictions, Predictor, interval_bounds
from app.schemas import (
    PREDICT_EXAMPLES,
    BatchPredictResponse,
    ErrorResponse,
    LevelQuery,
    ModelRef,
    PredictRequest,
    PredictResponse,
)
from model_store import DEFAULT_LEVEL

router = APIRouter(tags=["predict"])

# With a fast (ONNX) runtime, up to this many windows run on the event loop: a thread hop would
# cost more than the call (~0.1 ms a window). Bigger batches run in a worker thread so they never
# stall the loop; single windows are batched across concurrent requests (app/batching.py).
INLINE_WINDOWS = 64


def bounds_of(
    predictor: Predictor, predictions: Predictions, windows: np.ndarray, level: int
) -> tuple[list[float] | None, list[float] | None]:
    """`level`% bounds around each window's predicted close (one vectorised step after the
    prediction, so batching is untouched), or `(None, None)` for a bundle without intervals."""
    if predictor.intervals is None:
        return None, None
    lower, upper = interval_bounds(predictor.intervals, predictions, windows[:, -1], level)
    return lower.tolist(), upper.tolist()


def price_scales(predictions: Predictions, windows: np.ndarray) -> list[float] | None:
    """Each window's predicted scale (standard deviation of the next close) in price units."""
    if predictions.scales is None:
        return None
    scales: list[float] = (predictions.scales * windows[:, -1]).tolist()
    return scales


def single_response(
    predictor: Predictor,
    predictions: Predictions,
    windows: np.ndarray,
    level: int,
    model: ModelRef,
) -> PredictResponse:
    """The answer for one window: its predicted close, interval and scale."""
    lower, upper = bounds_of(predictor, predictions, windows, level)
    scales = price_scales(predictions, windows)
    return PredictResponse(
        next_close=float(predictions.closes[0]),
        lower=None if lower is None else lower[0],
        upper=None if upper is None else upper[0],
        scale=None if scales is None else scales[0],
        level=level,
        model=model,
    )


@router.post(
    "/predict",
    response_model=PredictResponse | BatchPredictResponse,
    dependencies=[Depends(require_json)],
    responses={
        413: {"model": ErrorResponse, "description": "Body above MAX_BODY_BYTES"},
        415: {"model": ErrorResponse, "description": "Content-Type is not application/json"},
        422: {"model": ErrorResponse, "description": "Invalid values or window length"},
        503: {"model": ErrorResponse, "description": "No model loaded yet"},
    },
)
async def predict(
    body: Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)],
    predictor: PredictorDep,
    metrics: MetricsDep,
    batcher: BatcherDep,
    level: LevelQuery = DEFAULT_LEVEL,
) -> PredictResponse | BatchPredictResponse:
    """Predict the next close after `closes` (one window), or after each of `windows` (a batch,
    one batched model call). Every window holds the served bundle's window length of finite,
    positive closes, oldest first. Each prediction comes with its `level`% interval
    (`lower`, `upper`: split-conformal, calibrated by training; null without intervals) and,
    for a bundle with adaptive intervals, the predicted `scale` the interval is a multiple of."""
    single = body.closes is not None
    windows = [body.closes] if body.closes is not None else body.windows or []
    for index, window in enumerate(windows):
        if len(window) != predictor.window:
            where, loc = (
                ("closes", ["body", "closes"])
                if single
                else (
                    f"windows[{index}]",
                    ["body", "windows", index],
                )
            )
            raise InvalidInputError(
                f"{where} must hold {predictor.window} closes (got {len(window)})",
                detail=[{"loc": loc, "msg": "wrong window length", "type": "window_length"}],
            )
    model = ModelRef(name=predictor.name, version=predictor.version)
    if not windows:
        empty: list[float] | None = None if predictor.intervals is None else []
        adaptive = predictor.intervals is not None and predictor.intervals.adaptive
        no_scales: list[float] | None = [] if adaptive else None
        return BatchPredictResponse(
            predictions=[], lower=empty, upper=empty, scales=no_scales, level=level, model=model
        )
    array = np.array(windows, dtype=np.float64)
    inline = predictor.runtime.inline
    if single and inline:
        next_close, scale = await batcher.forecast(predictor, array[0])
        metrics.predictions.labels("predict").inc()
        one = Predictions(np.array([next_close]), None if scale is None else np.array([scale]))
        return single_response(predictor, one, array, level, model)
    if inline and len(array) <= INLINE_WINDOWS:
        predictions = predictor.forecast(array)
    else:
        predictions = await to_thread.run_sync(predictor.forecast, array)
    metrics.predictions.labels("predict").inc(len(predictions.closes))
    if single:
        return single_response(predictor, predictions, array, level, model)
    lower, upper = bounds_of(predictor, predictions, array, level)
    return BatchPredictResponse(
        predictions=predictions.closes.tolist(),
        lower=lower,
        upper=upper,
        scales=price_scales(predictions, array),
        level=level,
        model=model,
    )
