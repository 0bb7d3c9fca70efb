"""The bundle contract as a type: the committed bundles round-trip exactly, a newer format is
refused with the reason, unknown fields pass through, and every encoding comes from one registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store import (
    ENCODINGS,
    FORMAT_VERSION,
    MANIFEST_FILE,
    Manifest,
    ManifestError,
    MinMaxEncoding,
    ModelStore,
    RelativeEncoding,
    encoding_kind,
)
from tests.model_store.store_samples import MANIFEST

DEMO_STORE = Path(__file__).resolve().parents[2] / "models"


def _document(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / MANIFEST_FILE).read_text())
    return document


@pytest.mark.parametrize("version", [1, 2])
def test_the_committed_bundles_load_and_round_trip_exactly(version: int) -> None:
    bundle = ModelStore(DEMO_STORE).verify("fb-lstm", version)
    assert bundle.manifest.to_json() == _document(bundle.path)
    assert bundle.manifest.format_version == FORMAT_VERSION == 1
    assert bundle.manifest.label == f"fb-lstm v{version}"
    assert len(bundle.manifest.context.closes) == bundle.window == 40


def _published(tmp_path: Path) -> Path:
    return ModelStore(tmp_path).publish("demo", {"model.onnx": b"x"}, MANIFEST).path


def test_a_newer_format_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = _published(tmp_path)
    document = _document(folder)
    document["format_version"] = FORMAT_VERSION + 1
    (folder / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(ManifestError) as refused:
        ModelStore(tmp_path).load("demo", verify=False)
    assert str(refused.value) == (
        f"1: manifest.json format_version {FORMAT_VERSION + 1} is newer than this reader "
        f"understands ({FORMAT_VERSION}): upgrade the service to serve this bundle"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window": 0}, "field 'window' must be a positive integer, got 0"),
        ({"window": True}, "field 'window' must be a positive integer, got True"),
        ({"feature": ""}, "field 'feature' must be a column name"),
        ({"files": {"model.onnx": 3}}, "field 'files' must be an object of sha256 strings"),
        ({"context": {"dates": ["2020-01-01"], "closes": []}}, "as many dates as closes"),
        ({"metrics": [1]}, "field 'metrics' must be an object"),
        ({"format_version": "1"}, "field 'format_version' is invalid"),
        ({"intervals": {"quantiles": {}}}, "field 'intervals' is malformed"),
    ],
)
def test_malformed_fields_are_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    document = {**_document(_published(tmp_path)), **change}
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(document)


def test_fields_this_reader_does_not_know_pass_through(tmp_path: Path) -> None:
    document = {**_document(_published(tmp_path)), "baselines": {"arima": [1.0]}}
    manifest = Manifest.from_json(document)
    assert manifest.extra == {"baselines": {"arima": [1.0]}}
    assert manifest.to_json() == document


def test_every_encoding_kind_comes_from_the_registry() -> None:
    assert {"relative": RelativeEncoding, "minmax": MinMaxEncoding} == ENCODINGS
    closes = np.array([100.0, 102.0, 101.0, 104.0])
    for kind, encoding_class in ENCODINGS.items():
        encoding = encoding_class.fit(closes)
        assert encoding.kind == kind
        assert encoding_kind(kind).from_json(encoding.to_json()) == encoding
    assert MinMaxEncoding.fit(closes).training_range == (100.0, 104.0)
    assert RelativeEncoding.fit(closes).training_range is None
    assert RelativeEncoding.shrinkable and not MinMaxEncoding.shrinkable
    with pytest.raises(
        ManifestError, match=r"unknown scaler kind 'log' \(known: relative, minmax\)"
    ):
        encoding_kind("log")
