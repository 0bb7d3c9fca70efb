"""POST /forecast over a real app and the tiny bundle: the tutorial's January case and CSV rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model_store import Bundle, parse_price_csv
from tests.app.support import app_settings

CSV = {"content-type": "text/csv"}


@pytest.fixture(scope="module")
def january(shared_data: Path) -> bytes:
    return (shared_data / "FB_test_data.csv").read_bytes()


@pytest.fixture(scope="module")
def training_csv(shared_data: Path) -> bytes:
    return (shared_data / "FB_training_data.csv").read_bytes()


def test_january_alone_yields_the_training_modules_own_evaluation(
    client: TestClient, january: bytes, tiny_bundle: Bundle
) -> None:
    response = client.post("/forecast", content=january, headers=CSV)
    assert response.status_code == 200
    body = response.json()
    points = body["points"]
    dates = [point["date"] for point in points]
    assert len(points) == 21
    assert dates[0] == "2020-01-02" and dates[-1] == "2020-01-31"
    assert dates == tiny_bundle.manifest.evaluation["dates"]
    actual_closes = parse_price_csv(january).values
    assert [point["actual"] for point in points] == actual_closes.tolist()
    np.testing.assert_allclose(
        [point["predicted"] for point in points],
        tiny_bundle.manifest.evaluation["predicted"],
        rtol=1e-6,
    )
    metrics = body["metrics"]
    assert metrics["points"] == 21
    assert metrics["rmse"] == pytest.approx(tiny_bundle.manifest.metrics["model"]["rmse"], rel=1e-6)
    assert metrics["mae"] == pytest.approx(tiny_bundle.manifest.metrics["model"]["mae"], rel=1e-6)
    persistence = tiny_bundle.manifest.metrics["persistence"]
    assert metrics["persistence_rmse"] == pytest.approx(persistence["rmse"], rel=1e-9)
    assert metrics["persistence_mape"] == pytest.approx(persistence["mape"], rel=1e-9)
    assert body["model"] == {"name": "tiny", "version": tiny_bundle.version}
    assert body["column"] == "Close"
    assert body["horizon"] == []
    assert body["warnings"][0].startswith(
        "the first 21 rows predicted from the model's context: its last 40 training closes"
    )


def test_multipart_upload_gives_the_same_answer_as_a_raw_body(
    client: TestClient, january: bytes
) -> None:
    raw = client.post("/forecast", content=january, headers=CSV).json()
    upload = client.post("/forecast", files={"file": ("FB_test_data.csv", january, "text/csv")})
    assert upload.status_code == 200
    assert upload.json() == raw


def test_text_plain_is_read_as_csv(client: TestClient, january: bytes) -> None:
    response = client.post("/forecast", content=january, headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert len(response.json()["points"]) == 21


def test_a_long_csv_predicts_every_row_after_its_first_40(
    client: TestClient, training_csv: bytes
) -> None:
    body = client.post("/forecast", content=training_csv, headers=CSV).json()
    series = parse_price_csv(training_csv)
    assert body["metrics"]["points"] == len(series) - 40 == len(body["points"])
    assert body["points"][0]["date"] == series.iso_dates()[40]
    # The training CSV overlaps the bundle's context, so the context is not used.
    assert not any("context" in warning for warning in body["warnings"])


def test_row_order_crlf_bom_header_case_and_extra_columns_do_not_matter(
    client: TestClient, january: bytes
) -> None:
    expected = client.post("/forecast", content=january, headers=CSV).json()["points"]
    lines = january.decode().strip().splitlines()
    header = lines[0].upper().replace("CLOSE,", "cLoSe,") + ",Extra"
    rows = [line + ",x" for line in reversed(lines[1:])]
    messy = "\ufeff" + "\r\n".join([header, *rows]) + "\r\n"
    response = client.post("/forecast", content=messy.encode(), headers=CSV)
    assert response.status_code == 200
    assert response.json()["points"] == expected


def test_null_rows_are_skipped_and_reported(client: TestClient, january: bytes) -> None:
    lines = january.decode().strip().splitlines()
    date = lines[5].split(",")[0]
    lines[5] = f"{date},null,null,null,null,null,null"
    response = client.post("/forecast", content="\n".join(lines).encode(), headers=CSV)
    assert response.status_code == 200
    body = response.json()
    assert len(body["points"]) == 20
    assert date not in [point["date"] for point in body["points"]]
    assert f"row 6 ({date}): Close is null, skipped" in body["warnings"]


@pytest.fixture(scope="module")
def minmax_client(tiny_minmax_store: Path) -> Iterator[TestClient]:
    """An app serving the tiny MinMax (tutorial-kind) bundle: only it has a training range."""
    with TestClient(create_app(app_settings(tiny_minmax_store))) as test_client:
        yield test_client


def test_closes_outside_the_training_range_are_reported(
    minmax_client: TestClient, january: bytes, training_csv: bytes, tiny_minmax_bundle: Bundle
) -> None:
    client = minmax_client
    scaler = tiny_minmax_bundle.manifest.encoding.to_json()
    above = int(np.sum(parse_price_csv(january).values > scaler["data_max"]))
    assert above > 0  # January 2020 went past FB's 2015-2019 high
    body = client.post("/forecast", content=january, headers=CSV).json()
    assert (
        f"{above} closes are above the training range (max {scaler['data_max']:.2f}); "
        "predictions saturate there"
    ) in body["warnings"]

    halved = parse_price_csv(training_csv).values[:60] / 2
    below = int(np.sum(halved < scaler["data_min"]))
    days = np.arange(np.datetime64("2010-01-01"), np.datetime64("2010-03-02"))
    rows = [f"{day},{close}" for day, close in zip(days, halved, strict=True)]
    cheap = "Date,Close\n" + "\n".join(rows)
    body = client.post("/forecast", content=cheap.encode(), headers=CSV).json()
    assert len(body["points"]) == 20
    assert (
        f"{below} closes are below the training range (min {scaler['data_min']:.2f}); "
        "predictions saturate there"
    ) in body["warnings"]


def test_horizon_extends_over_the_next_business_days(client: TestClient, january: bytes) -> None:
    response = client.post("/forecast?horizon=7", content=january, headers=CSV)
    assert response.status_code == 200
    horizon = response.json()["horizon"]
    # 2020-01-31 is a Friday: the weekend is skipped.
    assert [point["date"] for point in horizon] == [
        "2020-02-03", "2020-02-04", "2020-02-05", "2020-02-06", "2020-02-07",
        "2020-02-10", "2020-02-11",
    ]  # fmt: skip
    assert all(np.isfinite(point["predicted"]) and point["predicted"] > 0 for point in horizon)


def test_the_first_horizon_day_is_predict_on_the_last_40_closes(
    client: TestClient, january: bytes, training_csv: bytes
) -> None:
    closes = np.concatenate(
        [parse_price_csv(training_csv).values, parse_price_csv(january).values]
    )[-40:]
    single = client.post("/predict", json={"closes": closes.tolist()}).json()["next_close"]
    horizon = client.post("/forecast?horizon=2", content=january, headers=CSV).json()["horizon"]
    assert horizon[0]["predicted"] == pytest.approx(single, rel=1e-6)
    shifted = [*closes[1:].tolist(), horizon[0]["predicted"]]
    second = client.post("/predict", json={"closes": shifted}).json()["next_close"]
    assert horizon[1]["predicted"] == pytest.approx(second, rel=1e-6)


def test_another_column_is_read_when_asked(client: TestClient, training_csv: bytes) -> None:
    response = client.post("/forecast?column=open", content=training_csv, headers=CSV)
    assert response.status_code == 200
    body = response.json()
    assert body["column"] == "Open"
    series = parse_price_csv(training_csv, "Open")
    assert body["points"][0]["actual"] == series.values[40]


def test_a_csv_too_short_and_not_after_the_context_gets_400(
    client: TestClient, training_csv: bytes
) -> None:
    lines = training_csv.decode().strip().splitlines()
    response = client.post("/forecast", content="\n".join(lines[:31]).encode(), headers=CSV)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    assert error["message"] == (
        "need at least 41 rows of Close to predict one row (the model reads 40 closes), or rows "
        "starting right after the model's context (which ends 2019-12-31); got 30"
    )


MALFORMED = {
    "not a number": (b"Date,Close\n2020-01-02,abc\n", "row 2, column Close: 'abc' is not a number"),
    "negative": (b"Date,Close\n2020-01-02,1\n2020-01-03,-5\n", "row 3, column Close: '-5' is not positive"),
    "NaN": (b"Date,Close\n2020-01-02,NaN\n", "row 2, column Close: 'NaN' is not finite"),
    "bad date": (b"Date,Close\n02/01/2020,1\n", "row 2: date '02/01/2020' is not a date (expected YYYY-MM-DD)"),
    "no Close column": (b"Date,Price\n2020-01-02,1\n", "CSV header has no 'Close' column (found: Date, Price)"),
    "ragged row": (b"Date,Close\n2020-01-02,1,2\n", "row 2: 3 fields, the header has 2"),
    "duplicate date": (b"Date,Close\n2020-01-02,1\n2020-01-02,2\n", "duplicate date 2020-01-02 (rows 2 and 3)"),
    "empty": (b"", "CSV is empty"),
    "header only": (b"Date,Close\n", "CSV has no data rows"),
    "binary": (b"\x00\x01\x02PK", "CSV is binary, not text"),
    "not UTF-8": (b"Date,Close\n2020-01-02,\xff\n", "CSV is not UTF-8 text (byte 22)"),
}  # fmt: skip


@pytest.mark.parametrize(("data", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_csv_gets_400_naming_the_row_and_column(
    client: TestClient, data: bytes, message: str
) -> None:
    response = client.post("/forecast", content=data, headers=CSV)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    assert error["message"] == message


def test_a_multipart_body_without_the_file_field_gets_400(client: TestClient) -> None:
    response = client.post("/forecast", files={"upload": ("x.csv", b"Date,Close\n", "text/csv")})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "multipart body has no field 'file'"


def test_a_broken_multipart_body_gets_400(client: TestClient) -> None:
    response = client.post(
        "/forecast",
        content=b"garbage",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "bad_request",
        "message": "Invalid multipart data.",
        "detail": [],
    }


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream", None])
def test_other_content_types_get_415(
    client: TestClient, january: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/forecast", content=january, headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("query", ["horizon=61", "horizon=-1", "horizon=abc", "column=" + "x" * 65])
def test_invalid_query_parameters_get_422(client: TestClient, january: bytes, query: str) -> None:
    response = client.post(f"/forecast?{query}", content=january, headers=CSV)
    assert response.status_code == 422
    assert response.json()["error"]["detail"][0]["loc"][0] == "query"
