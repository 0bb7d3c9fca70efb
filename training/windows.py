"""Scaling and windowing for training: the scale-free relative encoding (default) or the
tutorial's MinMaxScaler, both stored as shared numbers in the manifest."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import MinMaxScaler

from model_store import MinMaxEncoding, WindowEncoding, encoding_kind, sliding_windows


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


def make_encoding(kind: str, train_closes: np.ndarray) -> WindowEncoding:
    """The registered encoding `kind` fit on `train_closes`; `minmax` through scikit-learn's
    MinMaxScaler, as the tutorial does (the same numbers as `MinMaxEncoding.fit`)."""
    if kind == MinMaxEncoding.kind:
        return fit_encoding(train_closes)
    return encoding_kind(kind).fit(train_closes)


def training_set(
    train_closes: np.ndarray, window: int, encoding: WindowEncoding, sign_flip: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs `(n, window, 1)` float32 and encoded targets `(n,)`: each window of `window`
    closes paired with the close after it.

    `sign_flip` appends the mirrored copies `(-x, -y)` (relative encoding only): a rise and the
    same fall are then equally likely, so the model cannot learn the training period's drift
    (FB's upward drift of 2015-2019 made plain relative models lose to persistence).
    """
    windows, targets = sliding_windows(train_closes, window)
    inputs, encoded = encoding.encode(windows), encoding.encode_targets(targets, windows)
    if sign_flip:
        inputs, encoded = np.concatenate([inputs, -inputs]), np.concatenate([encoded, -encoded])
    return inputs, encoded
