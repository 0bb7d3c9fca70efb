"""POST /predict: next close for one window or a batch of windows."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Body, Depends

from app.dependencies import BatcherDep, MetricsDep, PredictorDep, require_json
from app.errors import InvalidInputError
from app.schemas import (
    PREDICT_EXAMPLES,
    BatchPredictResponse,
    ErrorResponse,
    ModelRef,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(tags=["predict"])

# With a fast (ONNX) runtime, up to this many windows run on the event loop: a thread hop would
# cost more than the call (~0.1 ms a window). Bigger batches run in a worker thread so they never
# stall the loop; single windows are batched across concurrent requests (app/batching.py).
INLINE_WINDOWS = 64


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
) -> PredictResponse | BatchPredictResponse:
    """Predict the next close after `closes` (one window), or after each of `windows` (a batch,
    one batched model call). Every window holds the served bundle's window length of finite,
    positive closes, oldest first."""
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
        return BatchPredictResponse(predictions=[], model=model)
    array = np.array(windows, dtype=np.float64)
    inline = predictor.runtime.inline
    if single and inline:
        next_close = await batcher.predict(predictor, array[0])
        metrics.predictions.labels("predict").inc()
        return PredictResponse(next_close=next_close, model=model)
    if inline and len(array) <= INLINE_WINDOWS:
        closes = predictor.predict(array)
    else:
        closes = await to_thread.run_sync(predictor.predict, array)
    metrics.predictions.labels("predict").inc(len(closes))
    if single:
        return PredictResponse(next_close=float(closes[0]), model=model)
    return BatchPredictResponse(predictions=closes.tolist(), model=model)
