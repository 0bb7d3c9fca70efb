"""Sliding windows: the one rule both training and serving use to pair 40 closes with the next."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def sliding_windows(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `(inputs, targets)` with `inputs[i] = values[i:i+window]`, `targets[i] = values[i+window]`.

    Shapes are `(len(values) - window, window)` and `(len(values) - window,)`; both are copies.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("values must be one-dimensional")
    if window < 1:
        raise ValueError("window must be at least 1")
    count = len(values) - window
    if count < 1:
        return np.empty((0, window)), np.empty((0,))
    inputs = sliding_window_view(values, window)[:count]
    return np.array(inputs), values[window:].copy()


def prediction_windows(values: np.ndarray, window: int) -> np.ndarray:
    """All windows of `values` including the last one (which predicts the day after the series).

    Shape `(len(values) - window + 1, window)`, a read-only view of `values` (no copy: a long
    series' windows would be `window` times its size); empty when it is shorter than `window`.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window:
        return np.empty((0, window))
    return sliding_window_view(values, window)
