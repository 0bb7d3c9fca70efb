"""POST /predict (the default model), /models/{name}/predict and
/models/{name}/versions/{version}/predict: next close for one window or a batch of windows."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends

from app.dependencies import (
    ModelPredictorDep,
    PredictorDep,
    ServiceDep,
    VersionPredictorDep,
    require_json,
)
from app.predictor import Predictor
from app.schemas import (
    PREDICT_EXAMPLES,
    BatchPredictResponse,
    ErrorResponse,
    LevelQuery,
    PredictRequest,
    PredictResponse,
)
from app.service import PredictionService
from model_store import DEFAULT_LEVEL

router = APIRouter(tags=["predict"])

PredictBody = Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body above MAX_BODY_BYTES"},
    415: {"model": ErrorResponse, "description": "Content-Type is not application/json"},
    422: {"model": ErrorResponse, "description": "Invalid values or window length"},
    503: {"model": ErrorResponse, "description": "No model loaded yet"},
}
_MODEL_RESPONSES = {
    404: {"model": ErrorResponse, "description": "No such model (or loaded version)"},
    **_RESPONSES,
}
_DESCRIPTION = """Predict the next close after `closes` (one window), or after each of `windows`
(a batch, one batched model call). Every window holds the model's window length of finite,
positive closes, oldest first. Each prediction comes with its `level`% interval (`lower`,
`upper`: split-conformal, calibrated by training; null without intervals) and, for a model with
adaptive intervals, the predicted `scale` the interval is a multiple of."""


async def answer(
    body: PredictRequest,
    predictor: Predictor,
    service: PredictionService,
    level: int,
    alone: bool = False,
) -> dict[str, Any]:
    """The response for `body`, predicted by `predictor` through the service, as the fields of
    PredictResponse (one window) or BatchPredictResponse (a batch): plain values, so the hot
    path (app/hot.py) encodes it as it is and this route through its response model. `alone`:
    the server runs no other request, so a single window need not wait for company."""
    model = {"name": predictor.name, "version": predictor.version}
    if body.closes is not None:
        service.check_lengths(predictor, [body.closes], single=True)
        one = await service.predict_one(predictor, body.closes, level, "predict", alone)
        return {
            "next_close": one.close,
            "lower": one.lower,
            "upper": one.upper,
            "scale": one.scale,
            "level": level,
            "model": model,
        }
    windows = body.windows or []
    service.check_lengths(predictor, windows, single=False)
    if not windows:
        empty: list[float] | None = None if predictor.intervals is None else []
        adaptive = predictor.intervals is not None and predictor.intervals.adaptive
        no_scales: list[float] | None = [] if adaptive else None
        return {
            "predictions": [],
            "lower": empty,
            "upper": empty,
            "scales": no_scales,
            "level": level,
            "model": model,
        }
    array = np.array(windows, dtype=np.float64)
    result = await service.predict(predictor, array, level, "predict")
    lower = None if result.lower is None else result.lower.tolist()
    upper = None if result.upper is None else result.upper.tolist()
    scales = None if result.scales is None else result.scales.tolist()
    return {
        "predictions": result.closes.tolist(),
        "lower": lower,
        "upper": upper,
        "scales": scales,
        "level": level,
        "model": model,
    }


@router.post(
    "/predict",
    response_model=PredictResponse | BatchPredictResponse,
    dependencies=[Depends(require_json)],
    responses=_RESPONSES,
    description=f"{_DESCRIPTION}\n\nAnswered by the default model (DEFAULT_MODEL).",
)
async def predict(
    body: PredictBody,
    predictor: PredictorDep,
    service: ServiceDep,
    level: LevelQuery = DEFAULT_LEVEL,
) -> dict[str, Any]:
    return await answer(body, predictor, service, level)


@router.post(
    "/models/{name}/predict",
    response_model=PredictResponse | BatchPredictResponse,
    dependencies=[Depends(require_json)],
    responses=_MODEL_RESPONSES,
    description=f"{_DESCRIPTION}\n\nAnswered by the served version of model `name`.",
)
async def predict_model(
    body: PredictBody,
    predictor: ModelPredictorDep,
    service: ServiceDep,
    level: LevelQuery = DEFAULT_LEVEL,
) -> dict[str, Any]:
    return await answer(body, predictor, service, level)


@router.post(
    "/models/{name}/versions/{version}/predict",
    response_model=PredictResponse | BatchPredictResponse,
    dependencies=[Depends(require_json)],
    responses=_MODEL_RESPONSES,
    description=f"{_DESCRIPTION}\n\nAnswered by `version` of model `name`, which must be "
    "loaded: the served version or one served before it (up to MAX_LOADED_VERSIONS).",
)
async def predict_version(
    body: PredictBody,
    predictor: VersionPredictorDep,
    service: ServiceDep,
    level: LevelQuery = DEFAULT_LEVEL,
) -> dict[str, Any]:
    return await answer(body, predictor, service, level)
