"""Seeded, reproducible fitting with one progress line per epoch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.model import build_member

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
    model: keras.Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    log_epochs: bool = True,
) -> FitResult:
    """Fit like the tutorial (`model.fit(x, y, epochs, batch_size)`, shuffled each epoch by the
    seeded generator), logging each epoch unless `log_epochs` is off (walk-forward folds).
    Call `seed_everything` before building the model."""
    history = model.fit(
        inputs,
        targets,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[EpochProgress(epochs)] if log_epochs else [],
    )
    return FitResult([float(loss) for loss in history.history["loss"]])


@dataclass(frozen=True)
class MemberSpec:
    """How to build every member of an ensemble; each member differs only by its seed."""

    window: int
    units: int
    layers: int
    dropout: float
    output_bias: bool
    epochs: int
    batch_size: int


def train_members(
    spec: MemberSpec,
    seeds: list[int],
    inputs: np.ndarray,
    targets: np.ndarray,
    log_epochs: bool = True,
) -> tuple[list[keras.Model], list[FitResult]]:
    """One freshly seeded model per seed, each fitted on the same inputs (the seed fixes the
    initial weights and the shuffling order)."""
    members, fits = [], []
    for index, seed in enumerate(seeds):
        seed_everything(seed)
        member = build_member(
            spec.window, spec.units, spec.layers, spec.dropout, spec.output_bias, f"m{index}"
        )
        if log_epochs:
            logger.info("member %d/%d (seed %d)", index + 1, len(seeds), seed)
        fit = fit_model(
            member,
            inputs,
            targets,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            log_epochs=log_epochs,
        )
        fits.append(fit)
        members.append(member)
    return members, fits
