"""Settings from environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import DEFAULT_STORE_DIR, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_VARIABLES = (
    "MODEL_STORE_DIR", "MODEL_NAME", "MODEL_VERSION", "PREDICTOR_BACKEND", "MODEL_POLL_SECONDS",
    "ADMIN_TOKEN", "MAX_BODY_BYTES", "CORS_ORIGINS", "LOG_LEVEL",
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_serve_the_committed_demo_store() -> None:
    settings = Settings()
    assert settings.model_store_dir == DEFAULT_STORE_DIR == REPO_ROOT / "models"
    assert settings.model_name == "fb-lstm"
    assert settings.model_version == "latest" and settings.pinned_version("fb-lstm") is None
    assert settings.models == [] and settings.default_model_name == "fb-lstm"
    assert settings.model_versions == {} and settings.max_loaded_versions == 2
    assert settings.predictor_backend == "onnx"
    assert settings.model_poll_seconds == 0
    assert settings.admin_token is None
    assert settings.cors_origins == []


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_STORE_DIR", str(tmp_path))
    monkeypatch.setenv("MODEL_NAME", "aapl-lstm")
    monkeypatch.setenv("MODEL_VERSION", "3")
    monkeypatch.setenv("PREDICTOR_BACKEND", "keras")
    monkeypatch.setenv("MODEL_POLL_SECONDS", "2.5")
    monkeypatch.setenv("ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("MAX_BODY_BYTES", "1024")
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:5173, https://dash.example")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("MODELS", "fb-lstm, aapl-lstm")
    monkeypatch.setenv("MODEL_VERSIONS", "fb-lstm=1, msft-lstm=latest")
    monkeypatch.setenv("MAX_LOADED_VERSIONS", "3")
    settings = Settings()
    assert settings.model_store_dir == tmp_path
    assert settings.model_name == "aapl-lstm"
    assert settings.pinned_version("aapl-lstm") == 3  # MODEL_VERSION: the default model's
    assert settings.default_model_name == "aapl-lstm" and not settings.serve_all
    assert settings.models == ["fb-lstm", "aapl-lstm"]
    assert settings.pinned_version("fb-lstm") == 1 and settings.pinned_version("msft-lstm") is None
    assert settings.max_loaded_versions == 3
    assert settings.predictor_backend == "keras"
    assert settings.model_poll_seconds == 2.5
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.max_body_bytes == 1024
    assert settings.cors_origins == ["http://localhost:5173", "https://dash.example"]
    assert settings.log_level == "debug"


def test_an_empty_admin_token_disables_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "")
    assert Settings().admin_token is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODEL_VERSION", "newest", "invalid version 'newest'"),
        ("MODEL_VERSION", "0", "invalid version '0'"),
        ("MODEL_NAME", "../etc", "invalid model name '../etc'"),
        ("PREDICTOR_BACKEND", "torch", "predictor_backend"),
        ("MODEL_POLL_SECONDS", "-1", "model_poll_seconds"),
        ("MAX_BODY_BYTES", "0", "max_body_bytes"),
        ("MAX_FORECAST_ROWS", "0", "max_forecast_rows"),
        ("ADMISSION_WAIT_SECONDS", "-1", "admission_wait_seconds"),
        ("RETRY_AFTER_SECONDS", "0", "retry_after_seconds"),
        ("HEADER_TIMEOUT_SECONDS", "0", "header_timeout_seconds"),
        ("BODY_TIMEOUT_SECONDS", "0", "body_timeout_seconds"),
        ("MAX_HEADER_BYTES", "100", "max_header_bytes"),
        ("MAX_CONNECTIONS", "0", "max_connections"),
        ("MODELS", "fb-lstm,../etc", "invalid model name '../etc'"),
        ("DEFAULT_MODEL", "a b", "invalid model name 'a b'"),
        ("MODEL_VERSIONS", "fb-lstm", "'fb-lstm' is not name=version"),
        ("MODEL_VERSIONS", "fb-lstm=0", "invalid version '0'"),
        ("MAX_LOADED_VERSIONS", "0", "max_loaded_versions"),
    ],
)
def test_bad_values_fail_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_uvicorn_with_invalid_settings_exits_with_one_line_naming_the_variables() -> None:
    # A real `uvicorn app.main:app`, as `make run` and the container start it.
    env = {**os.environ, "MODEL_NAME": "../x", "MODEL_VERSION": "abc", "ADMIN_TOKEN": "s3cret"}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "invalid settings: MODEL_NAME: invalid model name '../x': use 1-64 letters, digits, '.', "
        "'_' or '-', starting with a letter or digit; MODEL_VERSION: invalid version 'abc': use "
        "'latest' or a positive integer"
    ]


def test_limit_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "MAX_FORECAST_ROWS": "1000",
        "ADMISSION_BUDGET_BYTES": str(64 * 1024 * 1024),
        "ADMISSION_LIGHT_BYTES": "1024",
        "ADMISSION_WAIT_SECONDS": "0.25",
        "RETRY_AFTER_SECONDS": "7",
        "HEADER_TIMEOUT_SECONDS": "3.5",
        "BODY_TIMEOUT_SECONDS": "20.5",
        "MAX_HEADER_BYTES": "8192",
        "MAX_CONNECTIONS": "100",
    }
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    settings = Settings()
    assert {name: str(getattr(settings, name.lower())) for name in values} == values


def test_a_budget_below_the_body_limit_stops_the_server_with_one_line() -> None:
    env = {**os.environ, "MAX_BODY_BYTES": "1000", "ADMISSION_BUDGET_BYTES": "999"}
    result = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "invalid setting: ADMISSION_BUDGET_BYTES (999) must be at least MAX_BODY_BYTES (1000), "
        "or the largest body never fits"
    ]


def test_an_invalid_literal_setting_names_its_variable_and_value() -> None:
    env = {**os.environ, "PREDICTOR_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "invalid setting: PREDICTOR_BACKEND='torch': Input should be 'onnx' or 'keras'"
    )
