"""Service settings, read from environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_store import LATEST, ModelStoreError, parse_version, validate_name

# The committed demo store at the repo root, found relative to this package so any working
# directory works.
DEFAULT_STORE_DIR = Path(__file__).resolve().parent.parent / "models"


class Settings(BaseSettings):
    """Every knob of the service; each field is the upper-case environment variable of its name."""

    # `model_` fields are ours, not pydantic's namespace.
    model_config = SettingsConfigDict(extra="ignore", protected_namespaces=())

    model_store_dir: Path = Field(
        default=DEFAULT_STORE_DIR,
        description="Root of the bundle store (`<store>/<name>/<version>/`).",
    )
    model_name: str = Field(
        default="fb-lstm", description="The default model when DEFAULT_MODEL is unset."
    )
    model_version: str = Field(
        default="latest",
        description="The default model's version: `latest` (follow new ones) or a pinned integer.",
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated model names to serve, or `*` for every model folder in the "
        "store (new folders are picked up by the poller); the default model is always served.",
    )
    default_model: str | None = Field(
        default=None,
        description="The model behind /predict, /forecast, /model and /readyz (default: MODEL_NAME).",
    )
    model_versions: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Per-model versions, `name=version` comma-separated (`latest` or an integer).",
    )
    max_loaded_versions: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Versions of one model kept in memory: the served one and those served before.",
    )
    predictor_backend: Literal["onnx", "keras"] = Field(
        default="onnx",
        description="`onnx` (ONNX Runtime, default) or `keras` (needs the train extra).",
    )
    model_poll_seconds: float = Field(
        default=0.0, ge=0.0, description="How often to look for new versions; 0 turns polling off."
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /admin/*; the admin endpoints are off when unset.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest request body accepted, in bytes."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Off by default: on two shared cores it lowered throughput and lengthened /predict's tail
    # under heavy uploads; it pays only for a worker with a core to itself
    # (docs/decisions/0017-lean-hot-path.md).
    inference_thread: bool = Field(
        default=False,
        description="Run the /predict batcher's model calls in a thread of their own, so the "
        "event loop parses requests meanwhile.",
    )
    access_log: bool = Field(
        default=True,
        description="uvicorn's line per request (client, method, path, status); off leaves "
        "/metrics as the only record of each request.",
    )
    max_forecast_rows: int = Field(
        default=300_000, gt=0, description="Most CSV lines (after the header) one /forecast reads."
    )
    # One largest upload at a time by default: on two cores, heavy work gets one and the event
    # loop keeps the other.
    admission_budget_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Request-body bytes of heavy requests handled at once; at least MAX_BODY_BYTES.",
    )
    admission_light_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Requests with bodies up to this size are light: never queued or refused.",
    )
    admission_wait_seconds: float = Field(
        default=1.0, ge=0.0, description="Longest a heavy request waits for budget before a 503."
    )
    retry_after_seconds: int = Field(
        default=2, ge=1, description="`Retry-After` of every 503 `overloaded`."
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0.0, description="Deadline for a request's head, from its first byte."
    )
    keep_alive_seconds: int = Field(
        default=75,
        gt=0.0,
        description="How long an idle keep-alive connection stays open between requests.",
    )
    body_timeout_seconds: float = Field(
        default=60.0, gt=0.0, description="Deadline for a request's whole body, from its head."
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request head (request line + headers)."
    )
    max_connections: int = Field(
        default=4096, gt=0, description="Open connections per worker; more are answered 503."
    )

    @model_validator(mode="after")
    def _budget_fits_a_body(self) -> Settings:
        if self.admission_budget_bytes < self.max_body_bytes:
            raise ValueError(
                f"ADMISSION_BUDGET_BYTES ({self.admission_budget_bytes}) must be at least "
                f"MAX_BODY_BYTES ({self.max_body_bytes}), or the largest body never fits"
            )
        return self

    @field_validator("model_name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        try:
            return validate_name(value)
        except ModelStoreError as exc:  # pydantic reports ValueErrors with the field's name
            raise ValueError(str(exc)) from None

    @field_validator("default_model")
    @classmethod
    def _valid_default(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return validate_name(value)
        except ModelStoreError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        names = [name.strip() for name in value.split(",") if name.strip()]
        try:
            return names if names == ["*"] else [validate_name(name) for name in names]
        except ModelStoreError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("model_versions", mode="before")
    @classmethod
    def _split_versions(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        versions: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, version = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not name=version")
            try:
                versions[validate_name(name.strip())] = str(parse_version(version))
            except ModelStoreError as exc:
                raise ValueError(str(exc)) from None
        return versions

    @field_validator("model_version")
    @classmethod
    def _valid_version(cls, value: str) -> str:
        try:
            return str(parse_version(value))
        except ModelStoreError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def default_model_name(self) -> str:
        """The model the legacy routes answer for."""
        return self.default_model or self.model_name

    @property
    def serve_all(self) -> bool:
        """Whether every model folder of the store is served (`MODELS=*`)."""
        return self.models == ["*"]

    def pinned_version(self, name: str) -> int | None:
        """The version `name` starts pinned to, or None when it follows `latest`."""
        default = self.model_version if name == self.default_model_name else LATEST
        version = parse_version(self.model_versions.get(name, default))
        return version if isinstance(version, int) else None


# Settings whose value is a secret: never echoed in an error.
_SECRET_SETTINGS = frozenset({"ADMIN_TOKEN"})


def _env_error(error: Any) -> str:
    if not error["loc"]:  # a rule across settings names its variables itself
        return str(error["msg"]).removeprefix("Value error, ")
    variable = ".".join(str(part) for part in error["loc"]).upper()
    message = str(error["msg"]).removeprefix("Value error, ")
    # The token's value must never reach a log, and the validators' own messages already
    # quote the name and version they refuse.
    if variable in _SECRET_SETTINGS or repr(error["input"])[:60] in message:
        return f"{variable}: {message}"
    return f"{variable}={repr(error['input'])[:60]}: {message}"


def settings_from_environment() -> Settings:
    """Settings from the environment. An invalid value ends the process with one line naming
    the variable (a SystemExit, not pydantic's multi-line traceback under uvicorn)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [_env_error(error) for error in exc.errors()]
        plural = "s" if len(problems) > 1 else ""
        raise SystemExit(f"invalid setting{plural}: {'; '.join(problems)}") from None
