"""Prediction intervals: calibrated by training on held-out residuals, stored in the manifest's
`intervals` field, applied by the server. numpy only. Two methods:

- `split-conformal` (fixed width): a residual is `(actual - predicted) / last_close`, and the
  level-L half-width is the ceil((n + 1) * L / 100)-th smallest absolute residual, the same
  share of the last close for every window.
- `normalised-conformal` (adaptive width): the model also predicts the scale `s` of the next
  relative change (one more output of the same graph), a score is
  `|actual - predicted| / (last_close * s)`, and the half-width is the level's conformal score
  quantile times `s * last_close`: wide after a violent window, narrow after a calm one. The
  scale may be partially pooled toward a long-run level (`scale.pooling`, fitted by training).
  With `adapt`, the level moves along a series by adaptive conformal inference (Gibbs and
  Candes, 2021): after every day the miscoverage target steps by `gamma * (alpha - missed)`.

Both are finite-sample valid for exchangeable scores. `intervals_from_json` is the one parser of
the manifest field: it names the method and checks every parameter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from model_store.errors import ManifestError

LEVELS = range(50, 100)  # whole percents a client may ask for
DEFAULT_LEVEL = 95
FIXED_METHOD = "split-conformal"
SCALED_METHOD = "normalised-conformal"
ADAPT_METHOD = "aci"
DEFAULT_GAMMA = 0.005  # Gibbs and Candes' step size for daily data
STD_SCALE = "std"  # the scale output is the standard deviation of the encoded change
POOLING_KIND = "geometric"  # level ** (1 - exponent) * scale ** exponent
# A floor (a share of the last close) so a constant window still gets a finite, non-zero scale.
MIN_SCALE = 1e-6
Scales = TypeVar("Scales", np.ndarray, np.float64)  # many windows' scales, or one window's


def conformal_quantiles(residuals: np.ndarray, levels: range = LEVELS) -> dict[int, float]:
    """Half-width per level from relative residuals. With too few residuals for a level's rank
    the largest one is used (so tiny calibration sets under-cover; training reports coverage)."""
    ordered = _sorted_scores(residuals)
    return {level: float(score_quantile(ordered, level)) for level in levels}


def _sorted_scores(scores: np.ndarray) -> np.ndarray:
    ordered = np.sort(np.abs(np.asarray(scores, dtype=np.float64)))
    if len(ordered) == 0 or not np.all(np.isfinite(ordered)):
        raise ValueError("need at least one finite residual to calibrate intervals")
    return ordered


def score_quantile(ordered: np.ndarray, level: float | np.ndarray) -> np.ndarray:
    """The split-conformal quantile of sorted scores at `level` percent (scalar or array): the
    ceil((n + 1) * level / 100)-th smallest, kept between the smallest and the largest score."""
    count = len(ordered)
    rank = np.ceil((count + 1) * np.asarray(level, dtype=np.float64) / 100.0 - 1e-9)
    index = np.clip(rank, 1, count).astype(np.int64) - 1
    quantile: np.ndarray = ordered[index]
    return quantile


def _band(
    predicted: np.ndarray, one_step_width: np.ndarray, steps_ahead: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray]:
    """`(lower, upper)`: `predicted` plus or minus the one-step half-width times the square root
    of the steps ahead, the lower bound no lower than zero."""
    width = one_step_width
    if not (isinstance(steps_ahead, int) and steps_ahead == 1):  # one step: sqrt(1) changes nothing
        width = width * np.sqrt(np.asarray(steps_ahead, dtype=np.float64))
    predicted = np.asarray(predicted, dtype=np.float64)
    return np.maximum(predicted - width, 0.0), predicted + width


def _band_one(predicted: float, one_step_width: float) -> tuple[float, float]:
    """`_band` for one window, one step ahead, in Python floats (the same arithmetic)."""
    return max(predicted - one_step_width, 0.0), predicted + one_step_width


def _check_level(level: int) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be a whole percent between {min(LEVELS)} and {max(LEVELS)}")


@dataclass(frozen=True)
class Intervals:
    """Fixed relative half-widths per coverage level (percent), and where they came from."""

    quantiles: dict[int, float]
    residuals: int
    source: str
    method = FIXED_METHOD
    adaptive = False

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
        width = self.half_width(level) * np.asarray(last_close, dtype=np.float64)
        return _band(predicted, width, steps_ahead)

    def bounds_one(
        self, predicted: float, last_close: float, level: int = DEFAULT_LEVEL
    ) -> tuple[float, float]:
        """`bounds` for one window, one step ahead, in Python floats."""
        return _band_one(predicted, self.half_width(level) * last_close)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": FIXED_METHOD,
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


@dataclass(frozen=True)
class ScalePooling:
    """Partial pooling of the predicted scale toward a long-run level:
    `level ** (1 - exponent) * scale ** exponent` (both shares of the last close). An exponent
    of 1 keeps the scale; below 1 a high scale is pulled down and a low one up, as volatility
    reverts to its long-run level (what GARCH does through its unconditional variance)."""

    exponent: float
    level: float

    def apply(self, scale: Scales) -> Scales:
        pooled: Scales = self.level ** (1.0 - self.exponent) * np.power(scale, self.exponent)
        return pooled

    def to_json(self) -> dict[str, Any]:
        return {"kind": POOLING_KIND, "exponent": self.exponent, "level": self.level}

    @classmethod
    def from_json(cls, spec: Any) -> ScalePooling:
        try:
            kind, pooling = spec["kind"], cls(float(spec["exponent"]), float(spec["level"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest field 'intervals' is malformed: pooling {exc}") from exc
        problems = {
            f"scale.pooling.kind must be {POOLING_KIND!r}": kind != POOLING_KIND,
            "scale.pooling.exponent must be in (0, 1]": not 0.0 < pooling.exponent <= 1.0,
            "scale.pooling.level must be positive": not 0.0 < pooling.level < math.inf,
        }
        for problem, found in problems.items():
            if found:
                raise ManifestError(f"manifest field 'intervals' is malformed: {problem}")
        return pooling


@dataclass(frozen=True)
class ScaleOutput:
    """Where the graph puts its scale forecast: column `index` of the output holds the standard
    deviation of the next change in encoded units, `per_close` encoded units per whole last
    close (100 for the relative encoding's percent), and the pooling applied to it (if any)."""

    index: int
    per_close: float
    pooling: ScalePooling | None = None

    def relative_scale(self, outputs: np.ndarray) -> np.ndarray:
        """The predicted standard deviation of the next change as a share of the last close."""
        encoded = np.asarray(outputs, dtype=np.float64)[:, self.index]
        scale: np.ndarray = np.maximum(encoded / self.per_close, MIN_SCALE)
        return scale if self.pooling is None else self.pooling.apply(scale)

    def relative_scale_one(self, outputs: Sequence[float]) -> float:
        """`relative_scale` for one window's outputs, in Python floats; the pooling's power is
        numpy's, which can differ from Python's in the last digit."""
        scale = max(outputs[self.index] / self.per_close, MIN_SCALE)
        return scale if self.pooling is None else float(self.pooling.apply(np.float64(scale)))

    def to_json(self) -> dict[str, Any]:
        pooling = {} if self.pooling is None else {"pooling": self.pooling.to_json()}
        return {"output": self.index, "kind": STD_SCALE, "per_close": self.per_close, **pooling}


@dataclass(frozen=True)
class AdaptiveBands:
    """Bounds from adaptive conformal inference along a series, and the level each day used
    (percent, a real number); `next_level` is the level for the day after the last one."""

    lower: np.ndarray
    upper: np.ndarray
    levels: np.ndarray
    next_level: float


@dataclass(frozen=True)
class ScaledIntervals:
    """Normalised split-conformal intervals: sorted calibration scores (|residual| divided by
    last close times predicted scale), the scale output they divide by, the adaptation step."""

    scores: np.ndarray
    source: str
    scale_output: ScaleOutput
    gamma: float = DEFAULT_GAMMA
    method = SCALED_METHOD
    adaptive = True

    @classmethod
    def calibrate(
        cls,
        scores: np.ndarray,
        source: str,
        scale_output: ScaleOutput,
        gamma: float = DEFAULT_GAMMA,
    ) -> ScaledIntervals:
        """From held-out normalised scores (signs are dropped)."""
        return cls(_sorted_scores(scores), source, scale_output, gamma)

    @property
    def residuals(self) -> int:
        """How many held-out scores calibrate the widths."""
        return len(self.scores)

    @cached_property
    def quantiles(self) -> dict[int, float]:
        """The score quantile per whole-percent level (a multiple of the predicted scale); computed
        once, so a request at a whole-percent level only looks its multiplier up."""
        return {level: float(score_quantile(self.scores, level)) for level in LEVELS}

    def half_width(
        self, level: float | np.ndarray, scale: np.ndarray, last_close: np.ndarray | float
    ) -> np.ndarray:
        """Half-width in price units: the level's score quantile times scale times last close."""
        cached = self.quantiles.get(level) if isinstance(level, int) else None
        multiplier = score_quantile(self.scores, level) if cached is None else cached
        width: np.ndarray = multiplier * np.asarray(scale, dtype=np.float64) * last_close
        return width

    def bounds(
        self,
        predicted: np.ndarray,
        last_close: np.ndarray | float,
        scale: np.ndarray,
        level: float = DEFAULT_LEVEL,
        steps_ahead: np.ndarray | int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(lower, upper)` around `predicted`; `scale` is the window's predicted relative scale.
        Day k ahead of the last close uses that close's window scale times sqrt(k): the scale
        forecast is flat over the horizon (as for EWMA volatility), and k independent daily
        changes add their variances."""
        return _band(predicted, self.half_width(level, scale, last_close), steps_ahead)

    def bounds_one(
        self, predicted: float, last_close: float, scale: float, level: int = DEFAULT_LEVEL
    ) -> tuple[float, float]:
        """`bounds` for one window, one step ahead, in Python floats."""
        multiplier = self.quantiles.get(level)
        if multiplier is None:
            multiplier = float(score_quantile(self.scores, level))
        return _band_one(predicted, multiplier * scale * last_close)

    def adaptive_bounds(
        self,
        predicted: np.ndarray,
        last_close: np.ndarray,
        scale: np.ndarray,
        actual: np.ndarray,
        level: int = DEFAULT_LEVEL,
    ) -> AdaptiveBands:
        """Bounds for a series in time order, each day's level adapted to the misses before it
        (the actual close of day t is known when day t + 1 is predicted)."""
        target_miss = 1.0 - level / 100.0
        miss = target_miss
        # Plain floats: one day at a time is a sequential recursion, and numpy per day is slow.
        scores, count = self.scores.tolist(), len(self.scores)
        units = (np.asarray(scale, dtype=np.float64) * np.asarray(last_close)).tolist()
        centres, actuals = np.asarray(predicted, dtype=np.float64).tolist(), list(actual)
        levels, lower, upper = [], [], []
        for centre, unit, close in zip(centres, units, actuals, strict=True):
            day_level = 100.0 * (1.0 - miss)
            rank = math.ceil((count + 1) * day_level / 100.0 - 1e-9)
            half = scores[min(max(rank, 1), count) - 1] * unit
            levels.append(day_level)
            lower.append(max(centre - half, 0.0))
            upper.append(centre + half)
            missed = not centre - half <= close <= centre + half
            miss += self.gamma * (target_miss - float(missed))
        return AdaptiveBands(
            np.array(lower), np.array(upper), np.array(levels), 100.0 * (1.0 - miss)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "method": SCALED_METHOD,
            "relative_to": "last_close",
            "scale": self.scale_output.to_json(),
            "adapt": {"method": ADAPT_METHOD, "gamma": self.gamma},
            "horizon": "window scale x sqrt(steps)",
            "residuals": self.residuals,
            "source": self.source,
            "quantiles": {str(level): q for level, q in self.quantiles.items()},
            "scores": self.scores.tolist(),
        }

    @classmethod
    def from_json(cls, spec: Any) -> ScaledIntervals:
        """Rebuild from the manifest's `intervals` field, checking every parameter."""
        try:
            scale, adapt = spec["scale"], spec["adapt"]
            scores = np.asarray([float(s) for s in spec["scores"]], dtype=np.float64)
            pooling = None if "pooling" not in scale else ScalePooling.from_json(scale["pooling"])
            scale_output = ScaleOutput(int(scale["output"]), float(scale["per_close"]), pooling)
            kind, adapt_method, gamma = scale["kind"], adapt["method"], float(adapt["gamma"])
            source, residuals = str(spec["source"]), int(spec["residuals"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"manifest field 'intervals' is malformed: {exc}") from exc
        problems = {
            "scores must be finite, non-negative and sorted": len(scores) == 0
            or not np.all(np.isfinite(scores))
            or bool(np.any(scores < 0.0))
            or bool(np.any(np.diff(scores) < 0.0)),
            f"residuals ({residuals}) must count the scores ({len(scores)})": residuals
            != len(scores),
            f"scale.kind must be {STD_SCALE!r}": kind != STD_SCALE,
            "scale.output must be 1 (the column after the point forecast)": scale_output.index != 1,
            "scale.per_close must be positive": not scale_output.per_close > 0.0
            or not math.isfinite(scale_output.per_close),
            f"adapt.method must be {ADAPT_METHOD!r}": adapt_method != ADAPT_METHOD,
            "adapt.gamma must be in (0, 0.5]": not 0.0 < gamma <= 0.5,
        }
        for problem, found in problems.items():
            if found:
                raise ManifestError(f"manifest field 'intervals' is malformed: {problem}")
        return cls(scores, source, scale_output, gamma)


IntervalSpec = Intervals | ScaledIntervals


def intervals_from_json(spec: Any) -> IntervalSpec | None:
    """The manifest's `intervals` field as the method it names (None when absent). Bundles from
    before the method name existed are fixed-width."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ManifestError("manifest field 'intervals' must be an object")
    method = spec.get("method", FIXED_METHOD)
    if method == FIXED_METHOD:
        return Intervals.from_json(spec)
    if method == SCALED_METHOD:
        return ScaledIntervals.from_json(spec)
    raise ManifestError(
        f"manifest field 'intervals' names unknown method {method!r} "
        f"(known: {FIXED_METHOD}, {SCALED_METHOD})"
    )


def interval_band(
    intervals: IntervalSpec,
    predicted: np.ndarray,
    last_close: np.ndarray | float,
    scales: np.ndarray | None,
    level: float,
    steps_ahead: np.ndarray | int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """`level`% bounds with either kind of intervals (`scales`: the windows' predicted relative
    scales, needed by scaled intervals, ignored by fixed ones)."""
    if isinstance(intervals, ScaledIntervals):
        if scales is None:
            raise ValueError("scaled intervals need the predicted scales")
        return intervals.bounds(predicted, last_close, scales, level, steps_ahead)
    return intervals.bounds(predicted, np.asarray(last_close), int(level), steps_ahead)


def interval_band_one(
    intervals: IntervalSpec,
    predicted: float,
    last_close: float,
    scale: float | None,
    level: int,
) -> tuple[float, float]:
    """`interval_band` for one window, one step ahead, at a whole-percent level, in Python
    floats: the same bounds to the last digit, for a fraction of the array calls' cost."""
    if isinstance(intervals, ScaledIntervals):
        if scale is None:
            raise ValueError("scaled intervals need the predicted scales")
        return intervals.bounds_one(predicted, last_close, scale, level)
    return intervals.bounds_one(predicted, last_close, level)


def winkler_score(
    lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, level: float
) -> np.ndarray:
    """The interval score per day: width plus 2 / alpha times how far the actual lies outside."""
    alpha = 1.0 - level / 100.0
    lower, upper, actual = (np.asarray(a, dtype=np.float64) for a in (lower, upper, actual))
    score: np.ndarray = (
        (upper - lower)
        + (2.0 / alpha) * np.maximum(lower - actual, 0.0)
        + (2.0 / alpha) * np.maximum(actual - upper, 0.0)
    )
    return score
