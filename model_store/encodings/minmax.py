"""The tutorial's encoding: one MinMax range fit on the training closes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from model_store.errors import ManifestError


@dataclass(frozen=True)
class MinMaxEncoding:
    """One MinMax range fit on the training closes (scikit-learn's formula: `x * scale + min`),
    applied to every window and target alike. Outside that range its model saturates."""

    data_min: float
    data_max: float
    scale: float
    min: float
    feature_range: tuple[float, float] = (0.0, 1.0)
    kind: ClassVar[str] = "minmax"
    shrinkable: ClassVar[bool] = False

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

    @property
    def training_range(self) -> tuple[float, float]:
        """The closes the model was scaled on; predictions saturate outside them."""
        return (self.data_min, self.data_max)

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

    def decode_one(self, output: float, last_close: float) -> float:
        return (output - self.min) / self.scale

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "data_min": self.data_min,
            "data_max": self.data_max,
            "scale": self.scale,
            "min": self.min,
            "feature_range": list(self.feature_range),
        }

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> MinMaxEncoding:
        low, high = (float(v) for v in spec["feature_range"])
        encoding = cls(
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
