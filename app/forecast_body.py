"""What keeps a long /forecast cheap: the row cap, checked before parsing, and the response
written with orjson a slice of points at a time, sent as those pieces.

A 16 MB CSV's response is ~30 MB of JSON; as one list of row dicts, then pydantic models, then
one string, it cost ~470 MB of memory and ~10 s of CPU on the event loop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import StreamingResponse

from app.errors import ApiError
from app.forecast import ForecastResult

# Points serialised per piece: ~100 kB each, small enough to leave no big transient copy.
POINTS_PER_PIECE = 1024


class TooManyRowsError(ApiError):
    """A CSV with more lines than MAX_FORECAST_ROWS."""

    status_code = 413
    code = "too_many_rows"


def check_row_count(data: bytes | str, max_rows: int) -> None:
    """Refuse a CSV with more than `max_rows` lines after the header, before parsing it."""
    newline: Any = b"\n" if isinstance(data, bytes) else "\n"
    lines = data.count(newline) + (0 if data.endswith(newline) else 1)
    if lines - 1 > max_rows:
        raise TooManyRowsError(
            f"CSV has {lines - 1} lines after the header; the limit is {max_rows} rows "
            "(MAX_FORECAST_ROWS)"
        )


def forecast_json_pieces(head: dict[str, Any], result: ForecastResult) -> list[bytes]:
    """The response body as pieces whose concatenation is one JSON object: `head`'s fields (at
    least one), then `points`, last, written POINTS_PER_PIECE rows at a time."""
    pieces = [orjson.dumps(head)[:-1] + b',"points":[']
    for start in range(0, result.point_count, POINTS_PER_PIECE):
        rows = orjson.dumps(result.point_rows(start, start + POINTS_PER_PIECE))[1:-1]
        pieces.append(rows if start == 0 else b"," + rows)
        # Building rows holds the GIL throughout; handing it over between pieces keeps the
        # event loop from waiting behind a whole response.
        time.sleep(0)
    pieces.append(b"]}")
    return pieces


async def _drain(pieces: deque[bytes]) -> AsyncIterator[bytes]:
    while pieces:  # each piece is dropped once sent
        yield pieces.popleft()


def pieces_response(pieces: list[bytes]) -> StreamingResponse:
    """A JSON response sent piece by piece, with its exact Content-Length."""
    length = sum(len(piece) for piece in pieces)
    return StreamingResponse(
        _drain(deque(pieces)),
        media_type="application/json",
        headers={"content-length": str(length)},
    )
