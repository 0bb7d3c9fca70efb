"""uvicorn's access log line, formatted for less: the same text from the same format string.

uvicorn's AccessFormatter copies each record twice (once for the request fields, once for the
level prefix) and looks the status phrase up on every line. With one client at a time the line
is written while that client sends its next request, so its cost shows in every round trip
(docs/decisions/0023-lean-access-formatter.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal, cast

from uvicorn._ansi import style as ansi_style
from uvicorn.logging import AccessFormatter

_STYLE_CHARACTERS: dict[type[logging.PercentStyle], Literal["%", "{", "$"]] = {
    logging.PercentStyle: "%",
    logging.StrFormatStyle: "{",
    logging.StringTemplateStyle: "$",
}


class _Fields:
    """What a format string reads: an object whose `__dict__` is the given mapping."""

    def __init__(self, fields: dict[str, Any]):
        self.__dict__ = fields


class LeanAccessFormatter(AccessFormatter):
    """uvicorn's AccessFormatter, giving the same line for the same record and settings: the
    fields are read from one mapping instead of two copies of the record, and each status
    code's text is built once."""

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ):
        super().__init__(fmt, datefmt, style, use_colors)
        self._status_texts: dict[int, str] = {}

    @classmethod
    def like(cls, formatter: AccessFormatter) -> LeanAccessFormatter:
        """A lean formatter with `formatter`'s format, date format, style and colours."""
        style = _STYLE_CHARACTERS[type(formatter._style)]
        return cls(formatter._fmt, formatter.datefmt, style, formatter.use_colors)

    def get_status_code(self, status_code: int) -> str:
        text = self._status_texts.get(status_code)
        if text is None:
            text = self._status_texts[status_code] = super().get_status_code(status_code)
        return text

    def formatMessage(self, record: logging.LogRecord) -> str:
        client_addr, method, full_path, http_version, status_code = cast(
            tuple[str, str, str, str, int], record.args
        )
        fields = dict(record.__dict__)
        levelname, request_line = record.levelname, f"{method} {full_path} HTTP/{http_version}"
        if self.use_colors:
            levelname = self.color_level_name(levelname, record.levelno)
            request_line = ansi_style(request_line, bold=True)
            if "color_message" in fields:
                fields["msg"] = fields["color_message"]
                fields["message"] = fields["color_message"] % record.args
        fields["levelprefix"] = levelname + ":" + " " * (8 - len(record.levelname))
        fields["client_addr"] = client_addr
        fields["request_line"] = request_line
        fields["status_code"] = self.get_status_code(int(status_code))
        return self._style.format(_Fields(fields))


def use_lean_access_formatter(handlers: Iterable[logging.Handler]) -> None:
    """Give every handler formatting with uvicorn's own AccessFormatter (uvicorn's default
    logging) the lean one instead; a formatter of the user's own is left as it is."""
    for handler in handlers:
        if type(handler.formatter) is AccessFormatter:
            handler.setFormatter(LeanAccessFormatter.like(handler.formatter))
