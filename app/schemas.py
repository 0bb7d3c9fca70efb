"""Every request and response body of the API, strict at the edge, with examples for /docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from model_store import LEVELS

MAX_BATCH_WINDOWS = 10_000
MAX_HORIZON = 60

# The `level` query parameter of /predict and /forecast.
LevelQuery = Annotated[
    int,
    Query(
        ge=min(LEVELS),
        le=max(LEVELS),
        description=(
            f"Coverage of the prediction intervals, a whole percent from {min(LEVELS)} to "
            f"{max(LEVELS)}. Bounds are null when the served bundle has no intervals."
        ),
    ),
]

_BOUND_NOTE = "null when the served bundle has no calibrated intervals"
_SCALE_NOTE = (
    "the model's predicted scale (standard deviation) of the next close in price units, which "
    "the interval is a calibrated multiple of; null for bundles with fixed-width intervals"
)

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
    """The close predicted for the day after the window, with its `level`% interval."""

    next_close: float = Field(examples=[205.9])
    lower: float | None = Field(
        examples=[199.6], description=f"Interval's lower bound; {_BOUND_NOTE}."
    )
    upper: float | None = Field(
        examples=[212.2], description=f"Interval's upper bound; {_BOUND_NOTE}."
    )
    scale: float | None = Field(None, examples=[3.1], description=f"Scale: {_SCALE_NOTE}.")
    level: int = Field(examples=[95], description="Coverage of the interval, percent.")
    model: ModelRef


class BatchPredictResponse(BaseModel):
    """One predicted next close per window, in request order, with `level`% intervals."""

    predictions: list[float] = Field(examples=[[205.9, 206.8]])
    lower: list[float] | None = Field(
        examples=[[199.6, 200.5]], description=f"One lower bound per window; {_BOUND_NOTE}."
    )
    upper: list[float] | None = Field(
        examples=[[212.2, 213.1]], description=f"One upper bound per window; {_BOUND_NOTE}."
    )
    scales: list[float] | None = Field(
        None, examples=[[3.1, 3.2]], description=f"One scale per window: {_SCALE_NOTE}."
    )
    level: int = Field(examples=[95], description="Coverage of the intervals, percent.")
    model: ModelRef


class HistoryPoint(BaseModel):
    """A CSV row with no prediction: one of the closes the first predictions are made from."""

    date: str = Field(examples=["2019-11-04"])
    actual: float = Field(examples=[193.62])


class ForecastPoint(BaseModel):
    """A CSV row predicted one step ahead from the closes before it."""

    date: str = Field(examples=["2020-01-02"])
    actual: float = Field(examples=[209.78])
    predicted: float = Field(examples=[207.1])
    lower: float | None = Field(examples=[200.8], description=f"Lower bound; {_BOUND_NOTE}.")
    upper: float | None = Field(examples=[213.4], description=f"Upper bound; {_BOUND_NOTE}.")
    scale: float | None = Field(None, examples=[3.1], description=f"Scale: {_SCALE_NOTE}.")


class HorizonPoint(BaseModel):
    """A business day after the CSV, predicted recursively from earlier predictions; day k's
    interval is day 1's widened by sqrt(k) (day 1's from the last actual window's scale for a
    bundle with adaptive intervals)."""

    date: str = Field(examples=["2020-02-03"])
    predicted: float = Field(examples=[203.4])
    lower: float | None = Field(examples=[197.1], description=f"Lower bound; {_BOUND_NOTE}.")
    upper: float | None = Field(examples=[209.7], description=f"Upper bound; {_BOUND_NOTE}.")


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
    coverage: float | None = Field(
        description="Share of points whose actual close lies within [lower, upper]; "
        "null without intervals or points."
    )
    winkler: float | None = Field(
        None,
        description="Mean Winkler interval score of the points' intervals (price units: the "
        "width plus 2 / (1 - level) times any miss; lower is better); null without intervals "
        "or points.",
    )
    mean_width: float | None = Field(
        None, description="Mean width of the points' intervals (price units)."
    )
    adapted_level: float | None = Field(
        None,
        description="With adapt=true: the level (percent) adaptive conformal inference reached "
        "after the last point, used for the horizon; null otherwise.",
    )


class ForecastResponse(BaseModel):
    """Predicted vs actual for every row with `window` known closes before it, plus the horizon."""

    model: ModelRef
    column: str = Field(examples=["Close"])
    level: int = Field(examples=[95], description="Coverage of every interval, percent.")
    adapt: bool = Field(
        False, description="Whether the points' levels adapted along the series (adapt=true)."
    )
    history: list[HistoryPoint] = Field(
        description="The CSV rows before the first point (no prediction: the first windows' "
        "closes); empty when the model's context predicts the first rows."
    )
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
    loaded: bool = Field(description="Held in memory: requests may name it.")
    error: str | None = Field(description="Why this version was refused, if it was.")


class LoadErrorInfo(BaseModel):
    """The most recent version that failed to verify, load or warm up."""

    version: int
    message: str
    at: str


class ModelStatus(BaseModel):
    """One model's versions in the store and its lifecycle state."""

    name: str = Field(examples=["fb-lstm"])
    backend: str
    state: Literal["serving", "not_ready"]
    served: int | None
    pinned: int | None = Field(description="The pinned version, or null when following latest.")
    loaded: list[int] = Field(description="Versions held in memory (the served one among them).")
    loaded_at: str | None
    ready: bool
    not_ready_reason: str | None
    versions: list[VersionStatus]
    last_load_error: LoadErrorInfo | None
    store_error: str | None = Field(
        description="Why the last look at the store failed (e.g. the folder is gone), if it did."
    )
    poll_seconds: float


class ModelsStatus(BaseModel):
    """Every served model, the default first."""

    default_model: str = Field(
        examples=["fb-lstm"], description="The model behind /predict, /forecast and /model."
    )
    models: list[ModelStatus]


class ModelMetadata(BaseModel):
    """A served bundle's manifest (without its file hashes) and how it is served. The report
    blocks are the training run's own JSON; fields of newer trainers pass through."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(examples=["fb-lstm"])
    version: int = Field(examples=[2])
    created_at: str = Field(examples=["2026-11-28T06:23:54Z"])
    format_version: int = Field(examples=[1], description="The bundle contract's version.")
    window: int = Field(examples=[40], description="Closes per input window.")
    feature: str = Field(examples=["Close"], description="The price column the model reads.")
    scaler: dict[str, Any] = Field(
        examples=[{"kind": "relative", "factor": 100.0}],
        description="The window encoding: its `kind` and numbers.",
    )
    context: dict[str, list[Any]] = Field(
        description="The last training `dates` and `closes`, oldest first."
    )
    intervals: dict[str, Any] | None = Field(
        description="How prediction intervals are computed; null without intervals."
    )
    metrics: dict[str, Any] = Field(
        description="Test-month errors of the model and baselines, walk-forward, coverage."
    )
    evaluation: dict[str, Any] | None = Field(
        description="The test month: dates, actual, predicted, baselines, 95% bounds."
    )
    training: dict[str, Any] = Field(description="Preset and settings of the training run.")
    data: dict[str, Any] = Field(description="Fingerprints (sha256, rows, dates) of the CSVs.")
    parity: dict[str, Any] | None = Field(description="Keras/ONNX agreement on the test month.")
    onnx: dict[str, Any] | None = Field(description="ONNX input/output names and opset.")
    versions: dict[str, str] = Field(description="Library versions that produced the bundle.")
    backend: str = Field(examples=["onnx"], description="The runtime serving it.")
    loaded_at: str | None = Field(description="When the served version was swapped in.")


class PinRequest(BaseModel):
    """Serve this version from now on (rollback), or `latest` to follow new versions again."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, max_length=64, examples=["fb-lstm"], description="Default: the default model."
    )
    version: Annotated[int, Field(strict=True, ge=1)] | Literal["latest"] = Field(examples=[1])


class ReloadRequest(BaseModel):
    """Which model to reload (the body is optional)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, max_length=64, examples=["fb-lstm"], description="Default: the default model."
    )


class AdminResult(BaseModel):
    """What an admin call left being served."""

    changed: bool = Field(description="Whether a different version is now served.")
    served: ModelRef
    pinned: int | None


class V2Error(BaseModel):
    """The Open Inference Protocol's error shape."""

    error: str = Field(examples=["no model named 'x' is served (served: fb-lstm)"])


class V2ServerReadiness(BaseModel):
    """Whether the default model is served (503 when not)."""

    ready: bool


class V2ModelReadiness(BaseModel):
    """Whether the model (or version) is served (503 when not)."""

    name: str
    ready: bool


class ErrorInfo(BaseModel):
    """The error itself."""

    code: str = Field(examples=["invalid_request"])
    message: str = Field(examples=["body.closes.3: Input should be a finite number"])
    detail: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one error shape of every endpoint."""

    error: ErrorInfo
