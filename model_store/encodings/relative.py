"""The scale-free encoding: each window relative to its own last close."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from model_store.errors import ManifestError

DEFAULT_FACTOR = 100.0  # inputs and targets in percent of the last close


@dataclass(frozen=True)
class RelativeEncoding:
    """Each window is divided by its own last close, and the model predicts the next close's
    change relative to that close (in units of `1 / factor`, percent by default).

    The same weights serve any price level or ticker and nothing saturates outside a range; the
    predicted change can be shrunk towards zero (persistence) by scaling the output layer.
    """

    factor: float = DEFAULT_FACTOR
    kind: ClassVar[str] = "relative"
    shrinkable: ClassVar[bool] = True

    @classmethod
    def fit(cls, values: np.ndarray) -> RelativeEncoding:
        """Nothing to fit: every window carries its own scale."""
        return cls()

    @property
    def training_range(self) -> None:
        """No range: a relative model never saturates."""
        return None

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

    def decode_one(self, output: float, last_close: float) -> float:
        return last_close * (1.0 + output / self.factor)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "factor": self.factor}

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> RelativeEncoding:
        factor = float(spec["factor"])
        if not np.isfinite(factor) or factor <= 0.0:
            raise ManifestError("manifest field 'scaler' has a non-finite or non-positive factor")
        return cls(factor=factor)
