"""POST /forecast (the default model) and /models/{name}/forecast: a Yahoo Finance CSV in,
predicted vs actual (and a horizon) out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile

from app.dependencies import (
    ModelPredictorDep,
    PredictorDep,
    ServiceDep,
    SettingsDep,
    media_type,
)
from app.errors import ApiError, UnsupportedMediaTypeError
from app.forecast_body import pieces_response
from app.predictor import Predictor
from app.schemas import MAX_HORIZON, ErrorResponse, ForecastResponse, LevelQuery
from app.service import PredictionService
from model_store import DEFAULT_LEVEL

router = APIRouter(tags=["forecast"])

# Raw bodies read as CSV text: text/plain is what a browser's fetch() sends for a string body.
CSV_MEDIA_TYPES = ("text/csv", "text/plain", "application/csv")

_EXAMPLE_CSV = (
    "Date,Open,High,Low,Close,Adj Close,Volume\n"
    "2020-01-02,206.75,209.789993,206.270004,209.779999,209.779999,12077100\n"
    "2020-01-03,207.210007,210.399994,206.949997,208.669998,208.669998,11188400\n"
)

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A Yahoo Finance daily CSV: multipart upload (field `file`) or a raw body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "text/csv": {"schema": {"type": "string"}, "example": _EXAMPLE_CSV},
        },
    }
}


class MissingFileError(ApiError):
    """A multipart body without the `file` field."""

    code = "invalid_csv"


async def read_csv_body(request: Request, max_bytes: int) -> bytes | str:
    """The CSV from a multipart upload (field `file`) or a raw text/csv body."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=16, max_part_size=max_bytes) as form:
            upload = form.get("file")
            if upload is None:
                raise MissingFileError("multipart body has no field 'file'")
            if isinstance(upload, UploadFile):
                return await upload.read()
            return upload
    if kind in CSV_MEDIA_TYPES:
        return await request.body()
    raise UnsupportedMediaTypeError(
        "send the CSV as multipart/form-data (field 'file') or as a text/csv body "
        f"(got Content-Type {kind or 'none'!r})"
    )


ColumnQuery = Annotated[
    str | None,
    Query(max_length=64, description="Price column to read (default: the model's feature)."),
]
HorizonQuery = Annotated[
    int, Query(ge=0, le=MAX_HORIZON, description="Business days to forecast past the CSV.")
]
AdaptQuery = Annotated[
    bool,
    Query(
        description="Adapt each point's level to the misses before it (adaptive conformal "
        "inference); needs a model with adaptive intervals."
    ),
]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed CSV (names the row and column)"},
    413: {
        "model": ErrorResponse,
        "description": "Body above MAX_BODY_BYTES or more rows than MAX_FORECAST_ROWS",
    },
    415: {"model": ErrorResponse, "description": "Not multipart/form-data or text/csv"},
    422: {"model": ErrorResponse, "description": "Invalid query parameters"},
    503: {"model": ErrorResponse, "description": "No model loaded yet"},
}
_DESCRIPTION = """Predict every CSV row whose `window` prior closes are known (one batched call),
compare with the actual closes, and optionally extend `horizon` business days past the last row.

The CSV is a Yahoo Finance daily export: `Date` plus the price column (header case-insensitive,
other columns ignored, any date order, CRLF/BOM fine, `null` rows skipped with a warning). A CSV
that starts right after the model's training data (e.g. the month after) at a similar price
(first close within 25% of the last training close) is predicted from the model's own last
training closes; otherwise its first `window` rows come back as `history`. Every prediction has
a `level`% interval (null without intervals) and `metrics.coverage` is the share of actual closes
inside their point's interval, `metrics.winkler` their mean interval score. With `adapt=true`
each point's level moves after every miss or hit before it, so coverage along the upload tracks
`level`."""


async def answer(
    request: Request,
    predictor: Predictor,
    service: PredictionService,
    max_bytes: int,
    column: str | None,
    horizon: int,
    level: int,
    max_rows: int,
    adapt: bool,
) -> Response:
    """The forecast of the request's CSV by `predictor` through the service."""
    data = await read_csv_body(request, max_bytes)
    pieces = await service.forecast_body(predictor, data, column, horizon, level, max_rows, adapt)
    return pieces_response(pieces)


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    openapi_extra=_REQUEST_BODY,
    responses=_RESPONSES,
    description=f"{_DESCRIPTION}\n\nAnswered by the default model (DEFAULT_MODEL).",
)
async def forecast(
    request: Request,
    predictor: PredictorDep,
    settings: SettingsDep,
    service: ServiceDep,
    column: ColumnQuery = None,
    horizon: HorizonQuery = 0,
    level: LevelQuery = DEFAULT_LEVEL,
    adapt: AdaptQuery = False,
) -> Response:
    return await answer(
        request,
        predictor,
        service,
        settings.max_body_bytes,
        column,
        horizon,
        level,
        settings.max_forecast_rows,
        adapt,
    )


@router.post(
    "/models/{name}/forecast",
    response_model=ForecastResponse,
    openapi_extra=_REQUEST_BODY,
    responses={404: {"model": ErrorResponse, "description": "No such model"}, **_RESPONSES},
    description=f"{_DESCRIPTION}\n\nAnswered by the served version of model `name`.",
)
async def forecast_model(
    request: Request,
    predictor: ModelPredictorDep,
    settings: SettingsDep,
    service: ServiceDep,
    column: ColumnQuery = None,
    horizon: HorizonQuery = 0,
    level: LevelQuery = DEFAULT_LEVEL,
    adapt: AdaptQuery = False,
) -> Response:
    return await answer(
        request,
        predictor,
        service,
        settings.max_body_bytes,
        column,
        horizon,
        level,
        settings.max_forecast_rows,
        adapt,
    )
