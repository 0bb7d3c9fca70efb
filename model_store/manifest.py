"""The bundle contract as a type: the manifest training writes and the app, CLI and dashboard read.

`BundleSpec` is what training knows about a model; `Manifest` adds what the store fills in when it
publishes (name, version, created time, format version, file hashes). `format_version` changes
only when an older reader would misread a bundle; a newer one is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from model_store.encoding import WindowEncoding, encoding_from_json
from model_store.errors import ManifestError
from model_store.intervals import IntervalSpec, intervals_from_json

# The bundle's files, named once.
MANIFEST_FILE = "manifest.json"
KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
CHART_FILE = "report.png"
FORMAT_VERSION = 1

# The JSON key of each field whose name differs from it.
_JSON_KEYS = {"encoding": "scaler"}
_STORE_FIELDS = ("name", "version", "created_at", "files")
_REQUIRED = ("window", "feature", "scaler", "context")


@dataclass(frozen=True)
class Context:
    """The last training closes (oldest first): what predicts a series that follows training."""

    dates: list[str]
    closes: list[float]

    @property
    def date_array(self) -> np.ndarray:
        return np.array(self.dates, dtype="datetime64[D]")

    @property
    def close_array(self) -> np.ndarray:
        return np.array(self.closes, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"dates": list(self.dates), "closes": list(self.closes)}

    @classmethod
    def from_json(cls, spec: Any) -> Context:
        try:
            dates, closes = list(map(str, spec["dates"])), list(map(float, spec["closes"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest field 'context' is malformed: {exc}") from None
        if len(dates) != len(closes):
            raise ManifestError("manifest field 'context' needs as many dates as closes")
        return cls(dates, closes)


@dataclass(frozen=True, kw_only=True)
class BundleSpec:
    """What training writes: how to feed the model and what it measured.

    `intervals` stays the raw block, parsed by `model_store.intervals`; the report blocks
    (metrics, evaluation, training, data, parity, onnx, versions) are plain JSON for people and
    the dashboard. Keys this reader does not know are kept in `extra` and written back.
    """

    window: int
    feature: str
    encoding: WindowEncoding
    context: Context
    intervals: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    parity: Mapping[str, Any] | None = None
    onnx: Mapping[str, Any] | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def parsed_intervals(self) -> IntervalSpec | None:
        """Calibrated prediction intervals, or None for a bundle trained without them."""
        return intervals_from_json(self.intervals)

    def to_json(self) -> dict[str, Any]:
        """The manifest.json document."""
        document: dict[str, Any] = dict(self.extra)
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if item.name in ("encoding", "context"):
                value = value.to_json()
            elif isinstance(value, Mapping):
                value = dict(value)
            document[_JSON_KEYS.get(item.name, item.name)] = value
        return document

    @classmethod
    def from_json(cls, document: Any) -> BundleSpec:
        """The spec part of a manifest.json document (store fields, if any, are ignored)."""
        return cls(**_spec_values(document))


@dataclass(frozen=True, kw_only=True)
class Manifest(BundleSpec):
    """A published bundle's manifest.json."""

    name: str
    version: int
    created_at: str
    files: Mapping[str, str]
    format_version: int = FORMAT_VERSION

    @property
    def label(self) -> str:
        """`name vN`, how messages name a bundle."""
        return f"{self.name} v{self.version}"

    @classmethod
    def from_json(cls, document: Any) -> Manifest:
        """Parse and check a manifest.json document; ManifestError names what is wrong."""
        values = _spec_values(document)
        format_version = document.get("format_version", FORMAT_VERSION)
        if not _is_int(format_version) or format_version < 1:
            raise ManifestError(f"manifest field 'format_version' is invalid: {format_version!r}")
        if format_version > FORMAT_VERSION:
            raise ManifestError(
                f"{MANIFEST_FILE} format_version {format_version} is newer than this reader "
                f"understands ({FORMAT_VERSION}): upgrade the service to serve this bundle"
            )
        if missing := [key for key in _STORE_FIELDS if key not in document]:
            raise ManifestError(f"{MANIFEST_FILE} lacks {', '.join(missing)}")
        files = document["files"]
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise ManifestError("manifest field 'files' must be an object of sha256 strings")
        if not _is_int(document["version"]):
            raise ManifestError(f"manifest field 'version' is invalid: {document['version']!r}")
        return cls(
            **values,
            name=str(document["name"]),
            version=document["version"],
            created_at=str(document["created_at"]),
            files=dict(files),
            format_version=format_version,
        )

    @classmethod
    def published(
        cls, spec: BundleSpec, *, name: str, version: int, created_at: str, files: Mapping[str, str]
    ) -> Manifest:
        """The manifest the store writes for `spec` as `name` v`version`."""
        values = {item.name: getattr(spec, item.name) for item in fields(BundleSpec)}
        return cls(**values, name=name, version=version, created_at=created_at, files=files)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_object(document: Mapping[str, Any], key: str) -> Any:
    value = document.get(key)
    if value is not None and not isinstance(value, dict):
        raise ManifestError(f"manifest field {key!r} must be an object")
    return value


def _spec_values(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ManifestError(f"{MANIFEST_FILE} is not a JSON object")
    if missing := [key for key in _REQUIRED if key not in document]:
        raise ManifestError(f"{MANIFEST_FILE} lacks {', '.join(missing)}")
    window, feature = document["window"], document["feature"]
    if not _is_int(window) or window < 1:
        raise ManifestError(f"manifest field 'window' must be a positive integer, got {window!r}")
    if not isinstance(feature, str) or not feature:
        raise ManifestError(f"manifest field 'feature' must be a column name, got {feature!r}")
    values: dict[str, Any] = {
        "window": window,
        "feature": feature,
        "encoding": encoding_from_json(document["scaler"]),
        "context": Context.from_json(document["context"]),
    }
    known = {_JSON_KEYS.get(item.name, item.name) for item in fields(Manifest)}
    for item in fields(BundleSpec):
        key = _JSON_KEYS.get(item.name, item.name)
        if item.name not in values and item.name != "extra":
            value = _optional_object(document, key)
            if value is not None:  # absent or null: the field's default
                values[item.name] = value
    values["extra"] = {k: v for k, v in document.items() if k not in known}
    intervals_from_json(values.get("intervals"))  # a malformed block is refused at load
    return values
