"""Every request and response body of the API, strict at the edge, with examples for /docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BATCH_WINDOWS = 10_000
MAX_HORIZON = 60

# strict: a string such as "209.5" or a bool is refused rather than coerced.
Close = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]

_EXAMPLE_CLOSES = [
    198.0, 197.0, 195.5, 193.0, 191.5, 190.0, 189.5, 188.5, 190.0, 191.0,
    192.5, 194.0, 193.0, 195.0, 196.5, 198.0, 199.5, 200.0, 199.0, 198.5,
    197.0, 198.0, 199.5, 200.5, 201.0, 202.5, 203.0, 202.0, 201.5, 200.0,
    199.0, 198.5, 200.0, 201.5, 203.0, 204.5, 205.0, 206.5, 207.0, 205.25,
]  # fmt: skip


class ModelRef(BaseModel):
    """Which bundle answered."""

    name: str = Field(examples=["fb-lstm"])
    version: int = Field(examples=[1])


class PredictRequest(BaseModel):
    """Either one window (`closes`) or a batch (`windows`), oldest close first. The window length
    is the served bundle's (40 for the demo model)."""

    model_config = ConfigDict(extra="forbid")

    closes: list[Close] | None = Field(None, description="One window of closes, oldest first.")
    windows: Annotated[
        list[list[Close]] | None,
        Field(max_length=MAX_BATCH_WINDOWS, description="Up to 10,000 windows, each oldest first."),
    ] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.closes is None) == (self.windows is None):
            raise ValueError("send exactly one of 'closes' (one window) or 'windows' (a batch)")
        return self


PREDICT_EXAMPLES: dict[str, Any] = {
    "one window": {
        "summary": "One window of 40 closes",
        "value": {"closes": _EXAMPLE_CLOSES},
    },
    "batch": {
        "summary": "A batch of windows",
        "value": {"windows": [_EXAMPLE_CLOSES, [c + 1.0 for c in _EXAMPLE_CLOSES]]},
    },
}


class PredictResponse(BaseModel):
    """The close predicted for the day after the window."""

    next_close: float = Field(examples=[205.9])
    model: ModelRef


class BatchPredictResponse(BaseModel):
    """One predicted next close per window, in request order."""

    predictions: list[float] = Field(examples=[[205.9, 206.8]])
    model: ModelRef


class ForecastPoint(BaseModel):
    """A CSV row predicted one step ahead from the closes before it."""

    date: str = Field(examples=["2020-01-02"])
    actual: float = Field(examples=[209.78])
    predicted: float = Field(examples=[207.1])


class HorizonPoint(BaseModel):
    """A business day after the CSV, predicted recursively from earlier predictions."""

    date: str = Field(examples=["2020-02-03"])
    predicted: float = Field(examples=[203.4])


class ForecastMetrics(BaseModel):
    """Errors of the one-step predictions against the actual closes (dollars; mape in percent),
    and of the persistence baseline (tomorrow = today). None when there are no points."""

    points: int
    rmse: float | None
    mae: float | None
    mape: float | None
    persistence_rmse: float | None
    persistence_mae: float | None
    persistence_mape: float | None


class ForecastResponse(BaseModel):
    """Predicted vs actual for every row with `window` known closes before it, plus the horizon."""

    model: ModelRef
    column: str = Field(examples=["Close"])
    points: list[ForecastPoint]
    metrics: ForecastMetrics
    horizon: list[HorizonPoint]
    warnings: list[str] = Field(
        examples=[["row 5 (2020-01-08): Close is null, skipped"]],
    )


class Liveness(BaseModel):
    """The process answers."""

    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    """A verified, warmed-up bundle is served."""

    status: Literal["ready"] = "ready"
    model: ModelRef


class VersionStatus(BaseModel):
    """One complete version in the store."""

    version: int
    served: bool
    error: str | None = Field(description="Why this version was refused, if it was.")


class LoadErrorInfo(BaseModel):
    """The most recent version that failed to verify, load or warm up."""

    version: int
    message: str
    at: str


class ModelsStatus(BaseModel):
    """The store's versions of the served model name and the lifecycle state."""

    name: str
    backend: str
    served: int | None
    pinned: int | None
    loaded_at: str | None
    ready: bool
    not_ready_reason: str | None
    versions: list[VersionStatus]
    last_load_error: LoadErrorInfo | None
    store_error: str | None = Field(
        description="Why the last look at the store failed (e.g. the folder is gone), if it did."
    )
    poll_seconds: float


class PinRequest(BaseModel):
    """Serve this version from now on (rollback), or `latest` to follow new versions again."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[int, Field(strict=True, ge=1)] | Literal["latest"] = Field(examples=[1])


class AdminResult(BaseModel):
    """What an admin call left being served."""

    changed: bool = Field(description="Whether a different version is now served.")
    served: ModelRef
    pinned: int | None


class ErrorInfo(BaseModel):
    """The error itself."""

    code: str = Field(examples=["invalid_request"])
    message: str = Field(examples=["body.closes.3: Input should be a finite number"])
    detail: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one error shape of every endpoint."""

    error: ErrorInfo
