"""Prediction intervals: split-conformal half-widths, calibrated on held-out residuals by training,
stored in the manifest, applied by the server. numpy only.

A residual is `(actual - predicted) / last_close`: relative to the last known close, so one table
serves any price level. For level L the half-width is the ceil((n + 1) * L / 100)-th smallest
absolute residual (the split-conformal quantile, finite-sample valid for exchangeable residuals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_store.errors import ManifestError

LEVELS = range(50, 100)  # whole percents a client may ask for
DEFAULT_LEVEL = 95


def conformal_quantiles(residuals: np.ndarray, levels: range = LEVELS) -> dict[int, float]:
    """Half-width per level from relative residuals. With too few residuals for a level's rank
    the largest one is used (so tiny calibration sets under-cover; training reports coverage)."""
    ordered = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    if len(ordered) == 0 or not np.all(np.isfinite(ordered)):
        raise ValueError("need at least one finite residual to calibrate intervals")
    count = len(ordered)
    return {
        level: float(ordered[min(math.ceil((count + 1) * level / 100), count) - 1])
        for level in levels
    }


@dataclass(frozen=True)
class Intervals:
    """Relative half-widths per coverage level (percent), and where they came from."""

    quantiles: dict[int, float]
    residuals: int
    source: str

    def half_width(self, level: int) -> float:
        """Relative half-width for `level` percent (one of the stored levels)."""
        if level not in self.quantiles:
            raise ValueError(
                f"level must be a whole percent between {min(self.quantiles)} and {max(self.quantiles)}"
            )
        return self.quantiles[level]

    def bounds(
        self,
        predicted: np.ndarray,
        last_close: np.ndarray,
        level: int = DEFAULT_LEVEL,
        steps_ahead: np.ndarray | int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(lower, upper)` around `predicted`. Beyond one step the half-width grows with the square
        root of the steps (a random-walk assumption: recursive predictions compound their errors)."""
        width = (
            self.half_width(level)
            * np.asarray(last_close, dtype=np.float64)
            * np.sqrt(np.asarray(steps_ahead, dtype=np.float64))
        )
        predicted = np.asarray(predicted, dtype=np.float64)
        return np.maximum(predicted - width, 0.0), predicted + width

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "split-conformal",
            "relative_to": "last_close",
            "residuals": self.residuals,
            "source": self.source,
            "quantiles": {str(level): q for level, q in sorted(self.quantiles.items())},
        }

    @classmethod
    def from_json(cls, spec: Any) -> Intervals:
        """Rebuild from the manifest's `intervals` field."""
        try:
            quantiles = {int(level): float(q) for level, q in spec["quantiles"].items()}
            intervals = cls(quantiles, int(spec["residuals"]), str(spec["source"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"manifest field 'intervals' is malformed: {exc}") from exc
        if not quantiles or any(not math.isfinite(q) or q < 0.0 for q in quantiles.values()):
            raise ManifestError("manifest field 'intervals' has a negative or non-finite width")
        return intervals


def intervals_from_json(spec: Any) -> Intervals | None:
    """The manifest's `intervals` block, parsed: the one place that knows its methods."""
    return None if spec is None else Intervals.from_json(spec)
