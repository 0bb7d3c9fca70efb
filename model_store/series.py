"""Series rules shared by training and serving: how a Yahoo Finance CSV becomes a clean,
ascending series of one price column, and what counts as a valid close."""

from __future__ import annotations

import codecs
import csv
import io
import math
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from model_store.errors import SeriesError

DATE_COLUMN = "Date"
NULL_TOKEN = "null"  # what Yahoo writes for a day without prices


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
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise SeriesError("CSV is empty")
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
        date_index, value_index = indices[DATE_COLUMN], indices[column]
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
    dates = np.array(days, dtype="datetime64[D]")
    order = np.argsort(dates, kind="stable")
    dates, sorted_values = dates[order], np.array(values, dtype=np.float64)[order]
    repeated = np.flatnonzero(np.diff(dates) == np.timedelta64(0, "D"))
    if len(repeated):
        first, second = rows[order[repeated[0]]], rows[order[repeated[0] + 1]]
        raise SeriesError(
            f"duplicate date {dates[repeated[0]]} (rows {min(first, second)} and {max(first, second)})",
            row=max(first, second),
            column=DATE_COLUMN,
        )
    return PriceSeries(dates, sorted_values, column_name, tuple(warnings))
