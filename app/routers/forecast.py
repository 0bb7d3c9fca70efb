"""POST /forecast: a Yahoo Finance CSV in, predicted vs actual (and a horizon) out."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from app.dependencies import MetricsDep, PredictorDep, SettingsDep, media_type
from app.errors import ApiError, InvalidInputError, UnsupportedMediaTypeError
from app.forecast import Context, ForecastResult, forecast_series
from app.predictor import Predictor
from app.schemas import MAX_HORIZON, ErrorResponse, ForecastResponse, LevelQuery, ModelRef
from model_store import DEFAULT_LEVEL, MinMaxEncoding, parse_price_csv

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


def run_forecast(
    data: bytes | str,
    predictor: Predictor,
    column: str | None,
    horizon: int,
    level: int,
    adapt: bool = False,
) -> tuple[str, ForecastResult]:
    """Parse the CSV and forecast it with the served predictor (CPU-bound: runs off the loop)."""
    column = column or predictor.bundle.feature
    series = parse_price_csv(data, column)
    bundle = predictor.bundle
    own_feature = series.column.lower() == bundle.feature.lower()
    context = Context(bundle.context_dates, bundle.context_closes) if own_feature else None
    encoding = predictor.encoding
    # Only a MinMax model saturates outside a range; a relative one has none.
    training_range = (
        (encoding.data_min, encoding.data_max) if isinstance(encoding, MinMaxEncoding) else None
    )
    result = forecast_series(
        series,
        predictor.forecast,
        predictor.window,
        context,
        horizon,
        training_range,
        predictor.intervals,
        level,
        adapt,
    )
    return series.column, result


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    openapi_extra=_REQUEST_BODY,
    responses={
        400: {"model": ErrorResponse, "description": "Malformed CSV (names the row and column)"},
        413: {"model": ErrorResponse, "description": "Body above MAX_BODY_BYTES"},
        415: {"model": ErrorResponse, "description": "Not multipart/form-data or text/csv"},
        422: {"model": ErrorResponse, "description": "Invalid query parameters"},
        503: {"model": ErrorResponse, "description": "No model loaded yet"},
    },
)
async def forecast(
    request: Request,
    predictor: PredictorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    column: Annotated[
        str | None,
        Query(max_length=64, description="Price column to read (default: the model's feature)."),
    ] = None,
    horizon: Annotated[
        int, Query(ge=0, le=MAX_HORIZON, description="Business days to forecast past the CSV.")
    ] = 0,
    level: LevelQuery = DEFAULT_LEVEL,
    adapt: Annotated[
        bool,
        Query(
            description="Adapt each point's level to the misses before it (adaptive conformal "
            "inference); needs a bundle with adaptive intervals."
        ),
    ] = False,
) -> ForecastResponse:
    """Predict every CSV row whose `window` prior closes are known (one batched call), compare
    with the actual closes, and optionally extend `horizon` business days past the last row.

    The CSV is a Yahoo Finance daily export: `Date` plus the price column (header
    case-insensitive, other columns ignored, any date order, CRLF/BOM fine, `null` rows skipped
    with a warning). A CSV that starts right after the model's training data (e.g. the month
    after) at a similar price (first close within 25% of the last training close) is predicted
    from the model's own last training closes; otherwise its first `window` rows come back as
    `history`. Every prediction has a `level`% interval (null without intervals) and
    `metrics.coverage` is the share of actual closes inside their point's interval,
    `metrics.winkler` their mean interval score. With `adapt=true` each point's level moves
    after every miss or hit before it, so coverage along the upload tracks `level`."""
    if adapt and not (predictor.intervals is not None and predictor.intervals.adaptive):
        raise InvalidInputError(
            f"adapt=true needs a bundle with adaptive intervals; {predictor.name} "
            f"v{predictor.version} has "
            + ("none" if predictor.intervals is None else "fixed-width intervals"),
            detail=[{"loc": ["query", "adapt"], "msg": "not supported", "type": "adapt"}],
        )
    data = await read_csv_body(request, settings.max_body_bytes)
    name, result = await to_thread.run_sync(
        run_forecast, data, predictor, column, horizon, level, adapt
    )
    metrics.predictions.labels("forecast").inc(result.predictions_made)
    return ForecastResponse.model_validate(
        {
            "model": ModelRef(name=predictor.name, version=predictor.version),
            "column": name,
            "level": level,
            "adapt": adapt,
            "history": result.history,
            "points": result.points,
            "metrics": result.metrics,
            "horizon": result.horizon,
            "warnings": result.warnings,
        }
    )
