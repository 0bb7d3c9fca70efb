"""CSV parsing and series rules on real files: the FB exports, Yahoo `null` rows, each defect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store import SeriesError, parse_price_csv
from model_store.series import _parse_general, parse_plain_csv

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def row(day: str, close: str) -> str:
    return f"{day},1.0,1.0,1.0,{close},1.0,100\n"


def test_fb_training_file_parses_in_order(shared_data: Path) -> None:
    series = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes())
    assert len(series) == 1258
    assert series.column == "Close"
    assert series.iso_dates()[0] == "2015-01-02" and series.iso_dates()[-1] == "2019-12-31"
    assert series.values[0] == pytest.approx(78.449997)
    assert np.all(np.diff(series.dates) > np.timedelta64(0, "D"))
    assert series.warnings == ()


def test_column_is_chosen_by_name_not_position(shared_data: Path) -> None:
    data = (shared_data / "FB_test_data.csv").read_bytes()
    close, opening = parse_price_csv(data, "Close"), parse_price_csv(data, "open")
    assert close.values[0] == pytest.approx(209.779999)  # the tutorial's bug read Open instead
    assert opening.values[0] == pytest.approx(206.75)
    assert opening.column == "Open"


def test_rows_are_sorted_by_date(tmp_path: Path) -> None:
    path = tmp_path / "shuffled.csv"
    path.write_text(
        HEADER + row("2020-01-03", "3") + row("2020-01-01", "1") + row("2020-01-02", "2")
    )
    series = parse_price_csv(path.read_bytes())
    assert series.iso_dates() == ["2020-01-01", "2020-01-02", "2020-01-03"]
    assert series.values.tolist() == [1.0, 2.0, 3.0]


def test_yahoo_null_rows_are_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "nulls.csv"
    path.write_text(
        HEADER
        + row("2020-01-01", "1")
        + "2020-01-02,null,null,null,null,null,null\n"
        + row("2020-01-03", "3")
    )
    series = parse_price_csv(path.read_bytes())
    assert series.values.tolist() == [1.0, 3.0]
    assert series.warnings == ("row 3 (2020-01-02): Close is null, skipped",)


def test_byte_order_mark_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + row("2020-01-01", "1") + "\n").encode())
    assert parse_price_csv(path.read_bytes()).values.tolist() == [1.0]


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        (
            row("2020-01-01", "1") + row("2020-01-01", "2"),
            "duplicate date 2020-01-01 (rows 2 and 3)",
            3,
        ),
        (
            row("2020-01-01", "1") + row("01/02/2020", "2"),
            "row 3: date '01/02/2020' is not a date",
            3,
        ),
        (row("2020-01-01", "abc"), "row 2, column Close: 'abc' is not a number", 2),
        (row("2020-01-01", ""), "row 2, column Close: empty value", 2),
        (row("2020-01-01", "nan"), "row 2, column Close: 'nan' is not finite", 2),
        (row("2020-01-01", "inf"), "row 2, column Close: 'inf' is not finite", 2),
        (row("2020-01-01", "0"), "row 2, column Close: '0' is not positive", 2),
        (row("2020-01-01", "-5.5"), "row 2, column Close: '-5.5' is not positive", 2),
        (row("2020-01-01", "1") + "2020-01-02,1,1\n", "row 3: 3 fields, the header has 7", 3),
    ],
)
def test_malformed_rows_are_named(tmp_path: Path, body: str, message: str, line: int) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + body)
    with pytest.raises(SeriesError) as caught:
        parse_price_csv(path.read_bytes())
    assert caught.value.message.startswith(message)
    assert caught.value.row == line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "CSV is empty"),
        (HEADER.encode(), "CSV has no data rows"),
        (
            (HEADER + "2020-01-02,null,null,null,null,null,null\n").encode(),
            "CSV has no non-null rows",
        ),
        (b"Date,Open\n2020-01-01,1\n", "CSV header has no 'Close' column (found: Date, Open)"),
        (b"\x00\x01\x02binary", "CSV is binary, not text"),
        ((HEADER + "2020-01-01,1,1,1,\xe9,1,1\n").encode("latin-1"), "CSV is not UTF-8 text"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(SeriesError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_price_csv(path.read_bytes())


def test_numpy_parser_reads_the_real_exports_like_the_general_parser(shared_data: Path) -> None:
    for name in ("FB_training_data.csv", "FB_test_data.csv", "AAPL_2022-01_2023-05.csv"):
        data = (shared_data / name).read_bytes()
        fast = parse_plain_csv(data, "Close")
        assert fast is not None, name
        general = _parse_general(data, "Close")
        assert np.array_equal(fast.dates, general.dates)
        assert np.array_equal(fast.values, general.values)
        assert fast.warnings == general.warnings


@pytest.mark.parametrize(
    "body",
    [
        row("2020-01-03", "3") + row("2020-01-01", "1.5") + row("2020-01-02", "null"),
        row("2020-01-01", "1") + "\n" + row("2020-01-02", "2e1"),
        (row("2020-01-01", "1") + row("2020-01-02", "2")).replace("\n", "\r\n"),
        row("2020-01-01", "+1.25") + row("2020-01-02", "NULL").rstrip("\n"),
    ],
)
def test_numpy_parser_agrees_on_shuffled_null_blank_and_crlf_rows(body: str) -> None:
    data = (HEADER + body).encode()
    fast = parse_plain_csv(data, "Close")
    assert fast is not None
    general = _parse_general(data, "Close")
    assert np.array_equal(fast.dates, general.dates)
    assert np.array_equal(fast.values, general.values)
    assert fast.warnings == general.warnings


@pytest.mark.parametrize(
    "body",
    [
        row("2020-01-01", "abc"),
        row("2020-01-01", "1_000"),
        row("2020-01-01", "nan"),
        row("2020-01-01", "-1"),
        row("2020-01-01", ""),
        row("2020-02-30", "1"),
        row("2020/01/01", "1"),
        row("2020-01-01", "1") + "2020-01-02,1\n",
        row("2020-01-01", "1") + row("2020-01-01", "2"),
    ],
)
def test_every_defect_gets_the_general_parsers_message(body: str) -> None:
    data = (HEADER + body).encode()
    with pytest.raises(SeriesError) as general:
        _parse_general(data, "Close")
    with pytest.raises(SeriesError) as public:
        parse_price_csv(data)
    assert public.value.message == general.value.message


@pytest.mark.parametrize("body", [row("2020-01-01", '"1"'), row("2020-01-01", " 1") + " \n"])
def test_quoted_and_padded_cells_go_to_the_general_parser(body: str) -> None:
    data = (HEADER + body).encode()
    assert parse_plain_csv(data, "Close") is None
    assert parse_price_csv(data).values.tolist() == [1.0]
