"""Scaling and windowing for training: the tutorial's MinMaxScaler, stored as shared numbers."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import MinMaxScaler

from model_store import MinMaxEncoding, sliding_windows


def fit_encoding(train_closes: np.ndarray) -> MinMaxEncoding:
    """Fit scikit-learn's MinMaxScaler (range 0..1) on the training closes, as the tutorial does,
    and keep its numbers as the `MinMaxEncoding` the server applies."""
    scaler = MinMaxScaler(feature_range=(0, 1))
    scaler.fit(np.asarray(train_closes, dtype=np.float64).reshape(-1, 1))
    return MinMaxEncoding(
        data_min=float(scaler.data_min_[0]),
        data_max=float(scaler.data_max_[0]),
        scale=float(scaler.scale_[0]),
        min=float(scaler.min_[0]),
        feature_range=(0.0, 1.0),
    )


def training_set(
    train_closes: np.ndarray, window: int, encoding: MinMaxEncoding
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs `(n, window, 1)` float32 and scaled targets `(n,)`: each window of `window`
    closes paired with the close after it."""
    windows, targets = sliding_windows(train_closes, window)
    return encoding.encode(windows), encoding.encode_targets(targets, windows)
