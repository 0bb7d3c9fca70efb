"""How a window of closes becomes model input and how model output becomes a close.

Training encodes with these classes before fitting; the server decodes with the same numbers read
from the manifest, so both sides apply one rule. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from model_store.errors import ManifestError


class WindowEncoding(Protocol):
    """Maps windows of closes `(n, window)` to model input `(n, window, 1)` float32 and back."""

    @property
    def kind(self) -> str:
        """The `kind` stored in the manifest."""
        ...

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """Model input for windows of closes, shape `(n, window, 1)`, float32."""
        ...

    def encode_targets(self, targets: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Training targets for the closes that follow `windows`, shape `(n,)`."""
        ...

    def decode(self, outputs: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Next closes (float64, shape `(n,)`) from model outputs for `windows`."""
        ...

    def to_json(self) -> dict[str, Any]:
        """Plain numbers for manifest.json."""
        ...


@dataclass(frozen=True)
class MinMaxEncoding:
    """The tutorial's scaling: one MinMax range fit on the training closes (scikit-learn's formula:
    `x * scale + min`), applied to every window and target alike."""

    data_min: float
    data_max: float
    scale: float
    min: float
    feature_range: tuple[float, float] = (0.0, 1.0)
    kind: str = "minmax"

    @classmethod
    def fit(
        cls, values: np.ndarray, feature_range: tuple[float, float] = (0.0, 1.0)
    ) -> MinMaxEncoding:
        """Fit on training values with scikit-learn's arithmetic (for callers without sklearn)."""
        data_min, data_max = float(np.min(values)), float(np.max(values))
        data_range = data_max - data_min
        if data_range == 0.0:
            data_range = 1.0  # scikit-learn's rule for a constant feature
        scale = (feature_range[1] - feature_range[0]) / data_range
        return cls(data_min, data_max, scale, feature_range[0] - data_min * scale, feature_range)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.scale + self.min

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.min) / self.scale

    def encode(self, windows: np.ndarray) -> np.ndarray:
        return self.transform(windows).astype(np.float32)[..., np.newaxis]

    def encode_targets(self, targets: np.ndarray, windows: np.ndarray) -> np.ndarray:
        return self.transform(targets)

    def decode(self, outputs: np.ndarray, windows: np.ndarray) -> np.ndarray:
        return self.inverse_transform(np.asarray(outputs, dtype=np.float64).reshape(-1))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "data_min": self.data_min,
            "data_max": self.data_max,
            "scale": self.scale,
            "min": self.min,
            "feature_range": list(self.feature_range),
        }


@dataclass(frozen=True)
class RelativeEncoding:
    """Scale-free: each window is divided by its own last close, and the model predicts the
    next close's change relative to that close (in units of `1 / factor`, percent by default).

    The same weights serve any price level or ticker and nothing saturates outside a range.
    """

    factor: float = 100.0
    kind: str = "relative"

    def encode(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float64)
        relative: np.ndarray = (windows / windows[:, -1:] - 1.0) * self.factor
        return relative.astype(np.float32)[..., np.newaxis]

    def encode_targets(self, targets: np.ndarray, windows: np.ndarray) -> np.ndarray:
        last = np.asarray(windows, dtype=np.float64)[:, -1]
        return (np.asarray(targets, dtype=np.float64) / last - 1.0) * self.factor

    def decode(self, outputs: np.ndarray, windows: np.ndarray) -> np.ndarray:
        last = np.asarray(windows, dtype=np.float64)[:, -1]
        change = np.asarray(outputs, dtype=np.float64).reshape(-1) / self.factor
        closes: np.ndarray = last * (1.0 + change)
        return closes

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "factor": self.factor}


def encoding_from_json(spec: Any) -> WindowEncoding:
    """Rebuild the encoding stored under the manifest's `scaler` key."""
    if not isinstance(spec, dict):
        raise ManifestError("manifest field 'scaler' must be an object")
    kind = spec.get("kind")
    try:
        if kind == "minmax":
            low, high = (float(v) for v in spec["feature_range"])
            encoding = MinMaxEncoding(
                data_min=float(spec["data_min"]),
                data_max=float(spec["data_max"]),
                scale=float(spec["scale"]),
                min=float(spec["min"]),
                feature_range=(low, high),
            )
            if (
                not np.isfinite(encoding.scale)
                or encoding.scale == 0.0
                or not np.isfinite(encoding.min)
            ):
                raise ManifestError("manifest field 'scaler' has a non-finite or zero scale")
            return encoding
        if kind == "relative":
            factor = float(spec["factor"])
            if not np.isfinite(factor) or factor <= 0.0:
                raise ManifestError(
                    "manifest field 'scaler' has a non-finite or non-positive factor"
                )
            return RelativeEncoding(factor=factor)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"manifest field 'scaler' is malformed: {exc}") from exc
    raise ManifestError(f"unknown scaler kind {kind!r}")
