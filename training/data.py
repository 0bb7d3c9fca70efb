"""Load the training and test CSVs through the shared series rules and fingerprint the files."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_store import PriceSeries, SeriesError, parse_price_csv
from training.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedCsv:
    """One parsed CSV and the fingerprint that goes into the manifest's `data` field."""

    path: Path
    series: PriceSeries
    sha256: str

    def fingerprint(self) -> dict[str, Any]:
        """`{file, sha256, rows, first_date, last_date}` for the manifest."""
        dates = self.series.iso_dates()
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "rows": len(self.series),
            "first_date": dates[0],
            "last_date": dates[-1],
        }


def load_csv(path: Path, column: str) -> LoadedCsv:
    """Parse a Yahoo Finance CSV by column name; Yahoo `null` rows are skipped with a warning.

    Raises `InputError` naming the file (and, for a malformed row, the row and column).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        series = parse_price_csv(raw, column=column)
    except SeriesError as exc:
        raise InputError(f"{path.name}: {exc.message}") from None
    for warning in series.warnings:
        logger.warning("%s: %s", path.name, warning)
    return LoadedCsv(path, series, hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class TrainTestData:
    """The training and test series, checked to fit the window and to follow each other in time."""

    train: LoadedCsv
    test: LoadedCsv

    @property
    def train_closes(self) -> np.ndarray:
        return self.train.series.values

    @property
    def test_closes(self) -> np.ndarray:
        return self.test.series.values


def load_train_test(train_csv: Path, test_csv: Path, column: str, window: int) -> TrainTestData:
    """Load both CSVs and check them (see `checked_pair`)."""
    return checked_pair(load_csv(train_csv, column), load_csv(test_csv, column), window)


def load_split(csv: Path, column: str, window: int, test_from: str) -> TrainTestData:
    """One CSV cut by date: the rows before `test_from` (YYYY-MM-DD) train, the rows from it on
    test. Both parts keep the file's name and sha256; their fingerprints say which rows."""
    try:
        first_test_day = np.datetime64(test_from, "D")
    except ValueError:
        raise InputError(f"test-from must be a date (YYYY-MM-DD), got {test_from!r}") from None
    loaded = load_csv(csv, column)
    before = loaded.series.dates < first_test_day
    parts = [
        LoadedCsv(
            loaded.path,
            dataclasses.replace(
                loaded.series, dates=loaded.series.dates[rows], values=loaded.series.values[rows]
            ),
            loaded.sha256,
        )
        for rows in (before, ~before)
    ]
    for part, side in zip(parts, ("before", "from"), strict=True):
        if len(part.series) == 0:
            raise InputError(f"{loaded.path.name}: no rows {side} {first_test_day} to split off")
    return checked_pair(parts[0], parts[1], window)


def checked_pair(train: LoadedCsv, test: LoadedCsv, window: int) -> TrainTestData:
    """Training must hold more than `window` rows (at least one window and its target) and the
    test rows must start after the training rows end."""
    if len(train.series) <= window:
        raise InputError(
            f"{train.path.name}: {len(train.series)} usable rows, need at least {window + 1} "
            f"for one {window}-day window and its next close"
        )
    last_train, first_test = train.series.dates[-1], test.series.dates[0]
    if first_test <= last_train:
        raise InputError(
            f"{test.path.name}: starts {first_test}, which is not after the end of "
            f"{train.path.name} ({last_train})"
        )
    return TrainTestData(train, test)
