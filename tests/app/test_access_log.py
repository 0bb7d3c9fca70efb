"""The lean access formatter writes uvicorn's own line, and replaces only uvicorn's formatter."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Literal

import pytest
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from app.access_log import LeanAccessFormatter, use_lean_access_formatter
from app.main import create_app
from tests.app.support import app_settings

ACCESS_MESSAGE = '%s - "%s %s HTTP/%s" %d'  # what uvicorn's request cycle logs
UVICORN_FORMAT = LOGGING_CONFIG["formatters"]["access"]["fmt"]


def access_record(status: int, path: str = "/predict?level=80") -> logging.LogRecord:
    args = ("127.0.0.1:50123", "POST", path, "1.1", status)
    return logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access", logging.INFO, __file__, 1, ACCESS_MESSAGE, args, None
    )


@pytest.mark.parametrize("colors", [False, True])
@pytest.mark.parametrize("status", [200, 404, 413, 503, 599])
def test_the_line_is_uvicorns_line(colors: bool, status: int) -> None:
    record = access_record(status)
    uvicorn_line = AccessFormatter(UVICORN_FORMAT, use_colors=colors).format(record)
    assert LeanAccessFormatter(UVICORN_FORMAT, use_colors=colors).format(record) == uvicorn_line
    assert '"POST /predict?level=80 HTTP/1.1' in uvicorn_line.replace("\x1b[1m", "")


@pytest.mark.parametrize(
    ("fmt", "style"),
    [
        ("%(asctime)s %(levelprefix)s %(request_line)s %(status_code)s %(name)s", "%"),
        ("{levelprefix} {client_addr} {request_line!r} {status_code} {message}", "{"),
        ("$levelprefix $client_addr $status_code", "$"),
    ],
)
def test_other_formats_and_styles_give_uvicorns_line(
    fmt: str, style: Literal["%", "{", "$"]
) -> None:
    record = access_record(200)
    uvicorn_formatter = AccessFormatter(fmt, "%H:%M", style, use_colors=False)
    lean = LeanAccessFormatter.like(uvicorn_formatter)
    assert lean.format(record) == uvicorn_formatter.format(record)
    # The status text is built once and then looked up: later lines are the same.
    assert lean.format(access_record(200)) == uvicorn_formatter.format(access_record(200))


@pytest.fixture
def uvicorn_logging() -> Iterator[logging.Logger]:
    """uvicorn's default logging, configured as `uvicorn` configures it before it imports the app."""
    loggers = [logging.getLogger(name) for name in LOGGING_CONFIG["loggers"]]
    saved = [
        (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
        for logger in loggers
    ]
    logging.config.dictConfig(deepcopy(LOGGING_CONFIG))
    try:
        yield logging.getLogger("uvicorn.access")
    finally:
        for logger, (handlers, level, propagate, disabled) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


def test_the_app_gives_uvicorns_access_handler_the_lean_formatter(
    uvicorn_logging: logging.Logger, tiny_store: Path
) -> None:
    # uvicorn's own handler (pytest may have added capturing handlers of its own beside it)
    (handler,) = [h for h in uvicorn_logging.handlers if type(h.formatter) is AccessFormatter]
    uvicorn_line = handler.format(access_record(200))
    create_app(app_settings(tiny_store))
    assert type(handler.formatter) is LeanAccessFormatter
    assert handler.format(access_record(200)) == uvicorn_line


def test_a_formatter_of_the_users_own_is_kept() -> None:
    class Mine(AccessFormatter):
        pass

    plain, mine = logging.StreamHandler(), logging.StreamHandler()
    plain.setFormatter(logging.Formatter("%(message)s"))
    mine.setFormatter(Mine(UVICORN_FORMAT))
    kept = [plain.formatter, mine.formatter]
    use_lean_access_formatter([plain, mine, logging.StreamHandler()])
    assert [plain.formatter, mine.formatter] == kept
