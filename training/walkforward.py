"""Rolling-origin (walk-forward) backtests over the end of the training period.

The last N months (or quarters) of the training CSV are folds. Each fold is predicted day by day
(from the `window` actual closes before each day) by a model trained from scratch on everything
before the fold's first day, so every fold prediction is out of sample. The pooled fold residuals
choose the shrink toward persistence, calibrate the prediction intervals and measure their
coverage (each fold with widths calibrated without it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_store import conformal_quantiles, sliding_windows
from training.errors import InputError
from training.evaluate import BASELINES, baseline_predictions, scored

SHRINKS = (0.0, 0.25, 0.5, 0.75, 1.0)
COVERAGE_LEVELS = (80, 95)


@dataclass(frozen=True)
class Fold:
    """The training-series rows `[start, stop)` predicted by one fold's model."""

    label: str
    start: int
    stop: int


def plan_folds(dates: np.ndarray, scheme: str, count: int, window: int) -> list[Fold]:
    """The last `count` calendar months or quarters of `dates` (the training series' dates) as
    folds. Refuses a plan whose first fold leaves no training window before it."""
    days = np.asarray(dates, dtype="datetime64[D]")
    months = days.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    if scheme == "monthly":
        periods, labels = months, [str(np.datetime64(int(m), "M")) for m in months]
    else:
        periods = months // 3
        labels = [f"{1970 + int(p) // 4}-Q{int(p) % 4 + 1}" for p in periods]
    starts = [0] + [i for i in range(1, len(days)) if periods[i] != periods[i - 1]]
    if count > len(starts) - 1:
        raise InputError(
            f"{count} {scheme} folds need more {scheme} periods than the training CSV holds "
            f"({len(starts)}, and the first is needed for training)"
        )
    stops = [*starts[1:], len(days)]
    folds = [Fold(labels[a], a, b) for a, b in zip(starts, stops, strict=True)][-count:]
    if folds[0].start <= window:
        raise InputError(
            f"the first {scheme} fold ({folds[0].label}) starts at row {folds[0].start + 1}: "
            f"no {window}-day training window before it"
        )
    return folds


@dataclass(frozen=True)
class FoldResult:
    """One fold's windows, actual closes and the model's (unshrunk) predictions."""

    fold: Fold
    first_date: str
    last_date: str
    train_windows: int
    windows: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray


FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def run_folds(
    closes: np.ndarray,
    iso_dates: list[str],
    folds: list[Fold],
    window: int,
    fit_predict: FitPredict,
) -> list[FoldResult]:
    """For each fold, `fit_predict(closes before the fold, the fold's windows)` -> closes."""
    results = []
    for fold in folds:
        windows, actual = sliding_windows(closes[fold.start - window : fold.stop], window)
        predicted = np.asarray(fit_predict(closes[: fold.start], windows), dtype=np.float64)
        results.append(
            FoldResult(
                fold,
                iso_dates[fold.start],
                iso_dates[fold.stop - 1],
                fold.start - window,
                windows,
                actual,
                predicted,
            )
        )
    return results


def shrunk(predicted: np.ndarray, windows: np.ndarray, shrink: float) -> np.ndarray:
    """Predictions moved a fraction `shrink` of the way from the last close (1 = unchanged)."""
    last = np.asarray(windows, dtype=np.float64)[:, -1]
    return last + shrink * (np.asarray(predicted, dtype=np.float64) - last)


def relative_residuals(
    actual: np.ndarray, predicted: np.ndarray, windows: np.ndarray
) -> np.ndarray:
    """`(actual - predicted) / last close`, the scale-free residual the intervals use."""
    return (np.asarray(actual) - np.asarray(predicted)) / np.asarray(windows)[:, -1]


def _pooled(results: list[FoldResult], shrink: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    windows = np.concatenate([r.windows for r in results])
    actual = np.concatenate([r.actual for r in results])
    predicted = np.concatenate([shrunk(r.predicted, r.windows, shrink) for r in results])
    return windows, actual, predicted


def shrink_curve(results: list[FoldResult]) -> dict[float, float]:
    """Pooled walk-forward RMSE ratio to persistence for every candidate shrink."""
    curve = {}
    for shrink in SHRINKS:
        windows, actual, predicted = _pooled(results, shrink)
        persistence = windows[:, -1]
        curve[shrink] = float(
            np.sqrt(np.mean((predicted - actual) ** 2) / np.mean((persistence - actual) ** 2))
        )
    return curve


def choose_shrink(curve: dict[float, float]) -> float:
    """The candidate with the lowest pooled RMSE; a tie goes to the smaller shrink (closer to
    persistence, the simpler forecast)."""
    return min(curve, key=lambda shrink: (curve[shrink], shrink))


def diebold_mariano(
    actual: np.ndarray, predicted: np.ndarray, baseline: np.ndarray
) -> dict[str, Any]:
    """Diebold-Mariano test of equal squared-error loss for one-step forecasts (no autocorrelation
    correction needed at horizon 1). Positive t: the model's loss is lower than the baseline's;
    `p_value` is one-sided (the model is better) from the normal approximation."""
    difference = (baseline - actual) ** 2 - (predicted - actual) ** 2
    count = len(difference)
    spread = float(np.std(difference, ddof=1)) if count > 1 else 0.0
    t = float(np.mean(difference) / (spread / math.sqrt(count))) if spread > 0 else 0.0
    return {
        "loss": "squared error",
        "against": "persistence",
        "days": count,
        "mean_difference": float(np.mean(difference)),
        "t": t,
        "p_value": 0.5 * math.erfc(t / math.sqrt(2.0)),
    }


def leave_one_fold_out_coverage(residuals: list[np.ndarray]) -> dict[str, float]:
    """Share of each fold's residuals inside the interval calibrated on the OTHER folds only,
    pooled over the folds, per level in `COVERAGE_LEVELS` (empty with a single fold)."""
    if len(residuals) < 2:
        return {}
    inside = {level: 0 for level in COVERAGE_LEVELS}
    for index, held_out in enumerate(residuals):
        others = np.concatenate(residuals[:index] + residuals[index + 1 :])
        widths = conformal_quantiles(others, range(min(COVERAGE_LEVELS), 100))
        for level in COVERAGE_LEVELS:
            inside[level] += int(np.sum(np.abs(held_out) <= widths[level]))
    total = sum(len(r) for r in residuals)
    return {str(level): inside[level] / total for level in COVERAGE_LEVELS}


def summarize(scheme: str, results: list[FoldResult], shrink: float) -> dict[str, Any]:
    """The manifest's `metrics.walk_forward`: per fold and pooled metrics of the (shrunk) model
    and the baselines, with ratios to persistence, and the significance of the difference."""
    folds = []
    for result in results:
        predicted = shrunk(result.predicted, result.windows, shrink)
        folds.append(
            {
                "label": result.fold.label,
                "first_date": result.first_date,
                "last_date": result.last_date,
                "days": len(result.actual),
                "train_windows": result.train_windows,
                **scored(
                    result.actual, {"model": predicted, **baseline_predictions(result.windows)}
                ),
                # The (shrunk) predictions themselves, so anyone can recompute the metrics, the
                # interval widths and their coverage from the manifest and the training CSV.
                "predicted": predicted.tolist(),
            }
        )
    windows, actual, predicted = _pooled(results, shrink)
    return {
        "scheme": scheme,
        "baselines": list(BASELINES),
        "folds": folds,
        "overall": scored(actual, {"model": predicted, **baseline_predictions(windows)}),
        "diebold_mariano": diebold_mariano(actual, predicted, windows[:, -1]),
    }


def folds_table(summary: dict[str, Any], test_label: str, test: dict[str, Any]) -> str:
    """Per fold RMSE of model and persistence and every predictor's ratio to persistence, then
    the pooled row and the test month."""
    header = (
        f"{'fold':<10}{'first':>12}{'days':>6}{'model':>9}{'persist.':>10}"
        f"{'model/p':>9}{'drift/p':>9}{'movavg/p':>10}"
    )
    rows = [(f["label"], f["first_date"], f["days"], f) for f in summary["folds"]]
    rows.append(("overall", "", sum(f["days"] for f in summary["folds"]), summary["overall"]))
    rows.append((test_label, "", None, test))
    lines = [header]
    for label, first, days, values in rows:
        lines.append(
            f"{label:<10}{first:>12}{'' if days is None else days:>6}"
            f"{values['model']['rmse']:>9.3f}{values['persistence']['rmse']:>10.3f}"
            f"{values['model']['ratio']:>9.4f}{values['drift']['ratio']:>9.4f}"
            f"{values['moving_average']['ratio']:>10.4f}"
        )
    return "\n".join(lines)
