"""The tutorial's test evaluation and the metrics reported against persistence.

Each test day is predicted from the 40 actual closes before it (the tail of training plus earlier
test days); persistence predicts each day's close as the previous day's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_store import sliding_windows


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


def metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE and MAE in price units, MAPE in percent."""
    actual = np.asarray(actual, dtype=np.float64)
    error = np.asarray(predicted, dtype=np.float64) - actual
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mape": float(np.mean(np.abs(error) / actual) * 100.0),
    }


def comparison_table(report: dict[str, dict[str, float]]) -> str:
    """A fixed-width table of metrics per predictor, e.g. model vs persistence."""
    lines = [f"{'':<12}{'RMSE':>10}{'MAE':>10}{'MAPE %':>10}"]
    for label, values in report.items():
        lines.append(
            f"{label:<12}{values['rmse']:>10.3f}{values['mae']:>10.3f}{values['mape']:>10.3f}"
        )
    return "\n".join(lines)
