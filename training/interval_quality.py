"""Interval forecasts scored alike: the model's scaled band, its adaptive variant and the three
baselines (today's fixed-width conformal band, an EWMA-normalised conformal band, GARCH(1,1)
with Student-t errors from `arch`).

Every method is a centre (the model's point forecast, so only the bands differ), a unit (price
per unit of score: the last close times the method's relative scale) and a quantile function of
the level. Conformal methods take the split-conformal quantile of held-out scores; GARCH takes
its own standardised Student-t quantile. Scores per method: coverage, mean width and Winkler
interval score at 80 % and 95 %, the mean pinball loss of the band edges over levels 50-99, and
the coverage in the calmest and the most volatile third of the days, ranked by the realised
volatility of each day's own window (what a user sees before the day).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from model_store import ScaledIntervals, ScaleOutput, score_quantile, winkler_score

REPORTED_LEVELS = (80, 95)
PINBALL_LEVELS = range(50, 100)
EWMA_LAMBDA = 0.94
METHODS = ("model", "model_adaptive", "fixed", "ewma", "garch")
METHOD_LABELS = {
    "model": "LSTM scale head, normalised conformal",
    "model_adaptive": "the same, adaptive (ACI)",
    "fixed": "fixed-width conformal",
    "ewma": "EWMA (0.94) normalised conformal",
    "garch": "GARCH(1,1) Student-t",
}

Bounds = Callable[[float], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Band:
    """One method's interval forecasts for a stretch of days: `centre +- quantile(level) * unit`."""

    centre: np.ndarray
    unit: np.ndarray
    quantile: Callable[[float], float]

    def bounds(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        half = self.quantile(level) * self.unit
        return self.centre - half, self.centre + half


def ewma_scale(windows: np.ndarray, decay: float = EWMA_LAMBDA) -> np.ndarray:
    """RiskMetrics volatility of each window's own log returns, as a share of the last close."""
    returns = np.diff(np.log(np.asarray(windows, dtype=np.float64)), axis=1)
    weights = decay ** np.arange(returns.shape[1] - 1, -1, -1)
    scale: np.ndarray = np.sqrt((returns**2) @ (weights / weights.sum()))
    return scale


@dataclass(frozen=True)
class Garch:
    """GARCH(1,1), zero mean, Student-t errors, fitted on daily log returns in percent."""

    params: dict[str, float]

    @classmethod
    def fit(cls, closes: np.ndarray) -> Garch:
        from arch import arch_model  # the train extra only

        returns = 100.0 * np.diff(np.log(np.asarray(closes, dtype=np.float64)))
        result = arch_model(returns, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
        return cls({name: float(value) for name, value in result.params.items()})

    def scales(self, closes: np.ndarray, rows: slice) -> np.ndarray:
        """One-step conditional volatility (share of the last close) of the change into each
        close in `rows`, filtered along `closes` with the fitted parameters."""
        from arch import arch_model

        returns = 100.0 * np.diff(np.log(np.asarray(closes, dtype=np.float64)))
        model = arch_model(returns, mean="Zero", vol="GARCH", p=1, q=1, dist="t")
        volatility = np.asarray(model.fix(list(self.params.values())).conditional_volatility)
        # Return j - 1 is the change into close j; its volatility uses returns before it only.
        scale: np.ndarray = volatility[rows.start - 1 : rows.stop - 1] / 100.0
        return scale

    def quantile(self, level: float) -> float:
        """The two-sided quantile of the unit-variance Student-t with the fitted degrees."""
        dof = self.params["nu"]
        return float(stats.t.ppf(0.5 + level / 200.0, dof) * math.sqrt((dof - 2.0) / dof))


def conformal(scores: np.ndarray) -> Callable[[float], float]:
    """The split-conformal quantile function of held-out scores."""
    ordered = np.sort(np.abs(np.asarray(scores, dtype=np.float64)))
    return lambda level: float(score_quantile(ordered, level))


def adaptive_bounds(band: Band, actual: np.ndarray, scores: np.ndarray, gamma: float) -> Bounds:
    """The band with each day's level moved by adaptive conformal inference along the days."""
    intervals = ScaledIntervals.calibrate(scores, "evaluation", ScaleOutput(1, 1.0), gamma)
    ones = np.ones(len(actual))

    def bounds(level: float) -> tuple[np.ndarray, np.ndarray]:
        adapted = intervals.adaptive_bounds(band.centre, band.unit, ones, actual, int(level))
        return adapted.lower, adapted.upper

    return bounds


def thirds(volatility: np.ndarray) -> tuple[float, float]:
    """The realised-volatility cut points of the calmest and the most volatile third."""
    low, high = np.quantile(volatility, [1.0 / 3.0, 2.0 / 3.0])
    return float(low), float(high)


def window_volatility(windows: np.ndarray) -> np.ndarray:
    """Standard deviation of each window's daily log returns."""
    volatility: np.ndarray = np.std(np.diff(np.log(windows), axis=1), axis=1)
    return volatility


def scores(
    bounds: Bounds, actual: np.ndarray, volatility: np.ndarray, cuts: tuple[float, float]
) -> dict[str, float | None]:
    """Every interval score of one method over a stretch of days (prices in price units)."""
    calm, wild = volatility <= cuts[0], volatility > cuts[1]
    result: dict[str, float | None] = {"days": len(actual)}
    pinball = []
    for level in PINBALL_LEVELS:
        lower, upper = bounds(level)
        alpha = 1.0 - level / 100.0
        for tau, edge in ((alpha / 2.0, lower), (1.0 - alpha / 2.0, upper)):
            miss = actual - edge
            pinball.append(float(np.mean(np.maximum(tau * miss, (tau - 1.0) * miss))))
        if level in REPORTED_LEVELS:
            inside = (lower <= actual) & (actual <= upper)
            result[f"coverage_{level}"] = float(np.mean(inside))
            result[f"width_{level}"] = float(np.mean(upper - lower))
            result[f"winkler_{level}"] = float(np.mean(winkler_score(lower, upper, actual, level)))
            result[f"calm_coverage_{level}"] = float(np.mean(inside[calm])) if calm.any() else None
            result[f"volatile_coverage_{level}"] = (
                float(np.mean(inside[wild])) if wild.any() else None
            )
    result["pinball"] = float(np.mean(pinball))
    return result


@dataclass(frozen=True)
class Stretch:
    """The days one evaluation covers, with every method's unit (price per score)."""

    windows: np.ndarray
    actual: np.ndarray
    centre: np.ndarray
    units: dict[str, np.ndarray]  # method -> last close x relative scale

    def scores_of(self, method: str) -> np.ndarray:
        """Normalised held-out scores of a conformal method on these days."""
        return (self.actual - self.centre) / self.units[method]


def stretch(
    windows: np.ndarray,
    actual: np.ndarray,
    centre: np.ndarray,
    model_scale: np.ndarray,
    garch_scale: np.ndarray,
) -> Stretch:
    """A stretch with the four units: model, fixed (the last close), EWMA and GARCH."""
    last = np.asarray(windows, dtype=np.float64)[:, -1]
    units = {
        "model": last * model_scale,
        "fixed": last,
        "ewma": last * ewma_scale(windows),
        "garch": last * garch_scale,
    }
    return Stretch(windows, np.asarray(actual), np.asarray(centre), units)


def method_bounds(
    part: Stretch, calibration: dict[str, np.ndarray], garch: Garch, gamma: float
) -> dict[str, Bounds]:
    """Every method's bounds on `part`, conformal ones calibrated on `calibration` scores."""
    bands = {
        method: Band(part.centre, part.units[method], conformal(calibration[method]))
        for method in ("model", "fixed", "ewma")
    }
    bands["garch"] = Band(part.centre, part.units["garch"], garch.quantile)
    result: dict[str, Bounds] = {method: band.bounds for method, band in bands.items()}
    result["model_adaptive"] = adaptive_bounds(
        bands["model"], part.actual, calibration["model"], gamma
    )
    return {method: result[method] for method in METHODS}


def _joined(parts: list[Bounds]) -> Bounds:
    def bounds(level: float) -> tuple[np.ndarray, np.ndarray]:
        pieces = [part(level) for part in parts]
        return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])

    return bounds


def walk_forward_comparison(
    parts: list[Stretch], labels: list[str], garches: list[Garch], gamma: float
) -> dict[str, Any]:
    """Per fold and pooled scores of every method; conformal widths of each fold calibrated on
    the other folds' scores only (leave-one-fold-out), GARCH fitted before each fold. The
    adaptive band runs along each fold from the nominal level."""
    actual = np.concatenate([p.actual for p in parts])
    volatility = np.concatenate([window_volatility(p.windows) for p in parts])
    cuts = thirds(volatility)
    per_fold: list[dict[str, Bounds]] = []
    for index, part in enumerate(parts):
        others = {
            method: np.concatenate([p.scores_of(method) for j, p in enumerate(parts) if j != index])
            for method in ("model", "fixed", "ewma")
        }
        per_fold.append(method_bounds(part, others, garches[index], gamma))
    folds = [
        {
            "label": label,
            **{
                method: scores(bounds[method], part.actual, window_volatility(part.windows), cuts)
                for method in METHODS
            },
        }
        for label, part, bounds in zip(labels, parts, per_fold, strict=True)
    ]
    overall = {
        method: scores(_joined([b[method] for b in per_fold]), actual, volatility, cuts)
        for method in METHODS
    }
    return {"folds": folds, "overall": overall}


def comparison(
    part: Stretch, calibration: list[Stretch], garch: Garch, gamma: float
) -> dict[str, Any]:
    """Every method's scores on one stretch (the test month, another ticker), the conformal
    methods calibrated on all walk-forward scores."""
    pooled = {
        method: np.concatenate([p.scores_of(method) for p in calibration])
        for method in ("model", "fixed", "ewma")
    }
    bounds = method_bounds(part, pooled, garch, gamma)
    volatility = window_volatility(part.windows)
    cuts = thirds(volatility)
    return {method: scores(bounds[method], part.actual, volatility, cuts) for method in METHODS}


def comparison_table(table: dict[str, dict[str, Any]]) -> str:
    """One row per method: coverage, width, Winkler at 80/95, pinball, conditional coverage."""
    header = (
        f"{'method':<40}{'cov80':>7}{'cov95':>7}{'width95':>9}{'wink80':>8}{'wink95':>8}"
        f"{'pinball':>9}{'calm80':>8}{'vol80':>7}{'calm95':>8}{'vol95':>7}"
    )
    lines = [header]
    for method in METHODS:
        row = table[method]
        lines.append(
            f"{METHOD_LABELS[method]:<40}{100 * row['coverage_80']:>7.1f}"
            f"{100 * row['coverage_95']:>7.1f}{row['width_95']:>9.2f}{row['winkler_80']:>8.2f}"
            f"{row['winkler_95']:>8.2f}{row['pinball']:>9.4f}"
            + "".join(
                f"{100 * row[key]:>{w}.1f}" if row[key] is not None else f"{'-':>{w}}"
                for key, w in (
                    ("calm_coverage_80", 8),
                    ("volatile_coverage_80", 7),
                    ("calm_coverage_95", 8),
                    ("volatile_coverage_95", 7),
                )
            )
        )
    return "\n".join(lines)


def hindsight_winkler(
    centre: np.ndarray, unit: np.ndarray, actual: np.ndarray, level: float
) -> float:
    """The lowest mean Winkler score of `centre +- m * unit` over every multiplier m, i.e. the
    band's score with its width chosen on the very days it is scored on. The score is convex
    and piecewise linear in m, so the best m is the unit-weighted `level` quantile of
    |actual - centre| / unit."""
    alpha = 1.0 - level / 100.0
    ratios = np.abs(actual - centre) / unit
    order = np.argsort(ratios)
    weight = np.cumsum(unit[order]) / np.sum(unit)
    best = ratios[order][np.searchsorted(weight, 1.0 - alpha)]
    lower, upper = centre - best * unit, centre + best * unit
    return float(np.mean(winkler_score(lower, upper, actual, level)))


def centred_volatility(closes: np.ndarray, half: int = 10) -> np.ndarray:
    """For the change into each close after the first, the mean absolute log change over the
    `half` changes before and after it, itself excluded: a volatility known only in hindsight."""
    moves = np.abs(np.diff(np.log(np.asarray(closes, dtype=np.float64))))
    result = np.empty(len(moves))
    for index in range(len(moves)):
        around = np.r_[moves[max(0, index - half) : index], moves[index + 1 : index + 1 + half]]
        result[index] = np.mean(around)
    return result


def known_scale_gain(sigma: np.ndarray, level: float) -> float:
    """For normal changes with known standard deviations `sigma` (one per day), the expected
    Winkler score of the exact band (+-z sigma) over that of the best single width: the most
    any scale forecast could gain over a fixed band on such days."""
    alpha, z = 1.0 - level / 100.0, float(stats.norm.ppf(1.0 - (1.0 - level / 100.0) / 2.0))

    def expected(half: np.ndarray | float) -> float:
        ratio = np.asarray(half) / sigma
        tail = sigma * stats.norm.pdf(ratio) - half * stats.norm.sf(ratio)
        return float(np.mean(2.0 * half + (4.0 / alpha) * tail))

    widths = np.linspace(0.2, 5.0, 2000) * float(np.mean(sigma)) * z
    return expected(z * sigma) / min(expected(width) for width in widths)
