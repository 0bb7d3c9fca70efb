"""Series rules shared by training and serving: how a Yahoo Finance CSV becomes a clean,
ascending series of one price column, and what counts as a valid close."""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from model_store.errors import SeriesError

DATE_COLUMN = "Date"
NULL_TOKEN = "null"  # what Yahoo writes for a day without prices
# The numpy parser leaves wider date or price cells to the general one.
MAX_CELL_CHARS = 40
# Cells converted per numpy call by the numpy parser (a few ms of work each).
CONVERT_ROWS = 16384


@dataclass(frozen=True)
class PriceSeries:
    """One price column of a CSV, sorted by date, with the rows that were skipped reported."""

    dates: np.ndarray  # datetime64[D], strictly ascending
    values: np.ndarray  # float64, finite and positive
    column: str
    warnings: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.values)

    def iso_dates(self) -> list[str]:
        """Dates as `YYYY-MM-DD` strings."""
        return [str(d) for d in self.dates]


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if b"\x00" in data[:4096]:
        raise SeriesError("CSV is binary, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SeriesError(f"CSV is not UTF-8 text (byte {exc.start})") from None


def _parse_date(text: str, row: int) -> date:
    text = text.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise SeriesError(
            f"row {row}: date {text[:40]!r} is not a date (expected YYYY-MM-DD)",
            row=row,
            column=DATE_COLUMN,
        ) from None


def parse_close(text: str, *, row: int, column: str) -> float:
    """One price cell: a finite, positive decimal number."""
    cell = text.strip()
    where = f"row {row}, column {column}"
    if not cell:
        raise SeriesError(f"{where}: empty value", row=row, column=column)
    try:
        if "_" in cell:
            raise ValueError
        value = float(cell)
    except ValueError:
        raise SeriesError(
            f"{where}: {cell[:40]!r} is not a number", row=row, column=column
        ) from None
    if not math.isfinite(value):
        raise SeriesError(f"{where}: {cell[:40]!r} is not finite", row=row, column=column)
    if value <= 0.0:
        raise SeriesError(f"{where}: {cell[:40]!r} is not positive", row=row, column=column)
    return value


def parse_price_csv(data: bytes | str, column: str = "Close") -> PriceSeries:
    """Parse a Yahoo Finance daily export by column name.

    The header is matched case-insensitively; `Date` and `column` are required, other columns are
    ignored. Rows may come in any order and are returned ascending. Rows whose price is Yahoo's
    `null` are skipped and reported in `warnings`; every other defect raises `SeriesError` naming
    the row (1-based line number, header = 1) and column.
    """
    fast = parse_plain_csv(data, column) if isinstance(data, bytes) else None
    return fast if fast is not None else _parse_general(data, column)


def _header_indices(header: list[str], column: str) -> tuple[int, int]:
    names = [cell.strip().lower() for cell in header]
    indices: dict[str, int] = {}
    for wanted in (DATE_COLUMN, column):
        if wanted.lower() not in names:
            raise SeriesError(
                f"CSV header has no {wanted!r} column (found: {', '.join(header)[:200]})",
                row=1,
                column=wanted,
            )
        indices[wanted] = names.index(wanted.lower())
    return indices[DATE_COLUMN], indices[column]


def _parse_general(data: bytes | str, column: str) -> PriceSeries:
    """Any CSV the csv module reads (quotes, odd dates, blank lines), and every exact error."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise SeriesError("CSV is empty")
        date_index, value_index = _header_indices(header, column)
        column_name = header[value_index].strip()

        days: list[date] = []
        values: list[float] = []
        rows: list[int] = []
        warnings: list[str] = []
        for cells in reader:
            row = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise SeriesError(
                    f"row {row}: {len(cells)} fields, the header has {len(header)}", row=row
                )
            day = _parse_date(cells[date_index], row)
            if cells[value_index].strip().lower() == NULL_TOKEN:
                warnings.append(f"row {row} ({day}): {column_name} is null, skipped")
                continue
            values.append(parse_close(cells[value_index], row=row, column=column_name))
            days.append(day)
            rows.append(row)
    except csv.Error as exc:
        raise SeriesError(
            f"row {reader.line_num}: malformed CSV ({exc})", row=reader.line_num
        ) from None

    if not values:
        raise SeriesError("CSV has no data rows" if not warnings else "CSV has no non-null rows")
    return _sorted_series(
        np.array(days, dtype="datetime64[D]"),
        np.array(values, dtype=np.float64),
        np.array(rows),
        column_name,
        warnings,
    )


def _sorted_series(
    dates: np.ndarray, values: np.ndarray, rows: np.ndarray, column_name: str, warnings: list[str]
) -> PriceSeries:
    order = np.argsort(dates, kind="stable")
    dates, sorted_values = dates[order], values[order]
    repeated = np.flatnonzero(np.diff(dates) == np.timedelta64(0, "D"))
    if len(repeated):
        first, second = int(rows[order[repeated[0]]]), int(rows[order[repeated[0] + 1]])
        raise SeriesError(
            f"duplicate date {dates[repeated[0]]} (rows {min(first, second)} and {max(first, second)})",
            row=max(first, second),
            column=DATE_COLUMN,
        )
    return PriceSeries(dates, sorted_values, column_name, tuple(warnings))


def _field_matrix(padded: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Each row's field as one fixed-width bytes value (`S<width>`), or None when too wide.
    `padded` ends with MAX_CELL_CHARS zero bytes, so no offset runs past it."""
    width = int((ends - starts).max(initial=0))
    if width == 0 or width > MAX_CELL_CHARS:
        return None
    offsets = starts[:, np.newaxis] + np.arange(width)
    cells = padded.take(offsets)
    cells[offsets >= ends[:, np.newaxis]] = 0
    return cells.view(f"S{width}").ravel()


def parse_plain_csv(data: bytes, column: str = "Close") -> PriceSeries | None:
    """The common case in numpy, without a Python object per row or cell: ASCII, no quotes, the
    header on line 1, ISO dates, plain numbers. None when the CSV needs the general parser
    (which also words every error)."""
    data = data.removeprefix(codecs.BOM_UTF8)
    if b'"' in data or not data.isascii():
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None
    header_end = data.find(b"\n")
    header = data[: header_end if header_end >= 0 else len(data)].decode("ascii").split(",")
    try:
        date_index, value_index = _header_indices(header, column)
    except SeriesError:
        return None
    buffer = np.frombuffer(data, dtype=np.uint8)[header_end + 1 :] if header_end >= 0 else None
    if buffer is None or len(header) < 2 or date_index == value_index:
        return None
    line_ends = np.flatnonzero(buffer == ord("\n"))
    if len(buffer) and buffer[-1] != ord("\n"):
        line_ends = np.append(line_ends, len(buffer))
    if len(line_ends) == 0:
        return None
    line_starts = np.concatenate([[0], line_ends[:-1] + 1]).astype(np.int64)
    filled = line_ends > line_starts
    commas = np.flatnonzero(buffer == ord(","))
    per_line = np.diff(np.searchsorted(commas, np.concatenate([line_starts[:1], line_ends])))
    if not filled.any() or np.any(per_line[filled] != len(header) - 1) or np.any(per_line[~filled]):
        return None
    rows = np.flatnonzero(filled) + 2  # line numbers: the header is line 1
    bounds = np.column_stack(
        [line_starts[filled] - 1, commas.reshape(-1, len(header) - 1), line_ends[filled]]
    )
    padded = np.concatenate([buffer, np.zeros(MAX_CELL_CHARS, dtype=np.uint8)])
    day_cells = _field_matrix(padded, bounds[:, date_index] + 1, bounds[:, date_index + 1])
    value_cells = _field_matrix(padded, bounds[:, value_index] + 1, bounds[:, value_index + 1])
    if day_cells is None or value_cells is None or day_cells.dtype.itemsize != 10:
        return None
    return _plain_series(day_cells, value_cells, rows, header[value_index].strip())


def _in_blocks(convert: Callable[[np.ndarray], np.ndarray], cells: np.ndarray) -> np.ndarray:
    """`convert(cells)`, CONVERT_ROWS cells at a time: a conversion holds the GIL throughout,
    and a server's event loop waits for it."""
    return np.concatenate(
        [
            convert(cells[start : start + CONVERT_ROWS])
            for start in range(0, len(cells), CONVERT_ROWS)
        ]
        or [convert(cells)]
    )


def _plain_series(
    day_cells: np.ndarray, value_cells: np.ndarray, rows: np.ndarray, column_name: str
) -> PriceSeries | None:
    digits = day_cells.view(np.uint8).reshape(-1, 10)
    separators = digits[:, [4, 7]] == ord("-")
    numerals = (digits[:, [0, 1, 2, 3, 5, 6, 8, 9]] >= ord("0")) & (
        digits[:, [0, 1, 2, 3, 5, 6, 8, 9]] <= ord("9")
    )
    is_null = _in_blocks(lambda cells: np.char.lower(cells) == NULL_TOKEN.encode(), value_cells)
    odd = _in_blocks(lambda cells: np.char.find(cells, b"_") >= 0, value_cells)
    if not (separators.all() and numerals.all()) or odd.any() or is_null.all():
        return None
    try:
        dates = _in_blocks(lambda cells: cells.astype("datetime64[D]"), day_cells)
        values = _in_blocks(lambda cells: cells.astype(np.float64), value_cells[~is_null])
    except ValueError:
        return None
    if not np.all(np.isfinite(values) & (values > 0.0)) or dates.min() < np.datetime64(
        "0001-01-01"
    ):
        return None
    warnings = [
        f"row {row} ({day}): {column_name} is null, skipped"
        for row, day in zip(rows[is_null].tolist(), dates[is_null].tolist(), strict=True)
    ]
    return _sorted_series(dates[~is_null], values, rows[~is_null], column_name, warnings)
