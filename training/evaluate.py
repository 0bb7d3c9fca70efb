"""Test-month evaluation, baselines and the metrics reported against persistence.

Each test day is predicted from the 40 actual closes before it (the tail of training plus earlier
test days). Baselines from the same window: persistence (tomorrow = the last close), drift (the
last close plus the window's average daily change) and the moving average (the window's mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_store import sliding_windows

BASELINES = ("persistence", "drift", "moving_average")


@dataclass(frozen=True)
class EvaluationSet:
    """The windows that predict each test day, and the actual closes of those days."""

    windows: np.ndarray  # (n_test, window): actual closes before each test day
    actual: np.ndarray  # (n_test,)

    @property
    def persistence(self) -> np.ndarray:
        """Tomorrow = today: the last close of each window."""
        return self.windows[:, -1].copy()


def evaluation_set(train_closes: np.ndarray, test_closes: np.ndarray, window: int) -> EvaluationSet:
    """The tutorial's test windows: `window` closes before each test day, taken from the tail of
    training followed by the test days already seen."""
    history = np.concatenate([train_closes[-window:], test_closes])
    windows, actual = sliding_windows(history, window)
    return EvaluationSet(windows, actual)


def baseline_predictions(windows: np.ndarray) -> dict[str, np.ndarray]:
    """Each baseline's prediction of the close after every window `(n, window)`."""
    windows = np.asarray(windows, dtype=np.float64)
    last, first = windows[:, -1], windows[:, 0]
    return {
        "persistence": last.copy(),
        "drift": last + (last - first) / (windows.shape[1] - 1),
        "moving_average": windows.mean(axis=1),
    }


def metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE and MAE in price units, MAPE in percent."""
    actual = np.asarray(actual, dtype=np.float64)
    error = np.asarray(predicted, dtype=np.float64) - actual
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mape": float(np.mean(np.abs(error) / actual) * 100.0),
    }


def scored(actual: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """`metrics` for every predictor plus `ratio`: its RMSE over persistence's (below 1 beats it).
    `predictions` must include `persistence`."""
    table = {label: metrics(actual, predicted) for label, predicted in predictions.items()}
    baseline = table["persistence"]["rmse"]
    for values in table.values():
        values["ratio"] = values["rmse"] / baseline if baseline > 0 else float("nan")
    return table


def comparison_table(report: dict[str, dict[str, float]]) -> str:
    """A fixed-width table of metrics per predictor, e.g. model vs the baselines."""
    lines = [f"{'':<16}{'RMSE':>10}{'MAE':>10}{'MAPE %':>10}{'/ persist.':>12}"]
    for label, values in report.items():
        ratio = values.get("ratio")
        lines.append(
            f"{label:<16}{values['rmse']:>10.3f}{values['mae']:>10.3f}{values['mape']:>10.3f}"
            + (f"{ratio:>12.4f}" if ratio is not None else "")
        )
    return "\n".join(lines)
