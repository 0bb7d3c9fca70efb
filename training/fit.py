"""Seeded, reproducible fitting with one progress line per epoch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TensorFlow's ops deterministic, so the same
    seed, data and settings give the same weights."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class EpochProgress(keras.callbacks.Callback):
    """Logs `epoch i/n  loss x  (t s)` at the end of every epoch."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss", float("nan"))
        logger.info(
            "epoch %d/%d  loss %.6f  (%.1f s)",
            epoch + 1,
            self.epochs,
            loss,
            time.perf_counter() - self.started,
        )


@dataclass(frozen=True)
class FitResult:
    """What the manifest records about a fit."""

    losses: list[float]

    @property
    def epochs_run(self) -> int:
        return len(self.losses)

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


def fit_model(
    model: keras.Model, inputs: np.ndarray, targets: np.ndarray, *, epochs: int, batch_size: int
) -> FitResult:
    """Fit like the tutorial (`model.fit(x, y, epochs, batch_size)`, shuffled each epoch by the
    seeded generator), logging each epoch. Call `seed_everything` before building the model."""
    history = model.fit(
        inputs,
        targets,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[EpochProgress(epochs)],
    )
    return FitResult([float(loss) for loss in history.history["loss"]])
