"""The scale head: from the same window of closes, the scale (standard deviation) of the next
change.

The head reads the window's own realised volatility, a heterogeneous-horizon mix (HAR) of its
absolute daily changes: the last day, the last week, the whole window and a RiskMetrics-style
EWMA (lambda 0.94). Fixed, non-trainable layers compute those four numbers inside the graph;
one trainable non-negative Dense mixes them into the scale, fitted by a Gaussian negative
log-likelihood of the point forecast's residuals. Absolute changes rather than squares keep one
earnings gap from dominating the window's volatility for weeks. It has no bias, so the scale is
proportional to the window's volatility whatever the ticker's usual level: a calm index and a
wild stock get bands of their own size. The head sits beside the point forecast in one graph
whose output is `(n, 2)`: the encoded change and its scale.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from model_store import RelativeEncoding, ScaleOutput, ScalePooling, sliding_windows
from training.fit import seed_everything

RELATIVE_FACTOR = RelativeEncoding().factor  # the encoding the scale head reads: percent units
EWMA_LAMBDA = 0.94  # RiskMetrics' daily decay
WEEK = 5  # trading days
SCALE_EPOCHS = 30
SCALE_BATCH = 64
SCALE_LEARNING_RATE = 0.01  # four weights: a large step converges in a few epochs
SCALE_FEATURES = ("last_day", "last_week", "window", "ewma")
# Where the served graph puts the scale: column 1, in percent of the last close.
SCALE_OUTPUT = ScaleOutput(index=1, per_close=RELATIVE_FACTOR)
POOLING_EXPONENTS = tuple(round(0.05 * step, 2) for step in range(1, 21))  # 0.05 .. 1


def _absolute_changes(window: int) -> np.ndarray:
    """`(window, 2 * (window - 1))`: close i+1 minus close i, then its negative, so a ReLU of
    the two halves adds up to the absolute change."""
    changes = window - 1
    matrix = np.zeros((window, 2 * changes), dtype=np.float32)
    for index in range(changes):
        matrix[index, index], matrix[index + 1, index] = -1.0, 1.0
    matrix[:, changes:] = -matrix[:, :changes]
    return matrix


def _volatility_mix(window: int) -> np.ndarray:
    """`(2 * (window - 1), 4)`: averages of the absolute changes over each horizon in
    SCALE_FEATURES (each change appears twice, once per sign, and only one half is non-zero)."""
    changes = window - 1
    horizons = np.zeros((changes, len(SCALE_FEATURES)), dtype=np.float32)
    horizons[-1, 0] = 1.0
    horizons[-min(WEEK, changes) :, 1] = 1.0 / min(WEEK, changes)
    horizons[:, 2] = 1.0 / changes
    decay = EWMA_LAMBDA ** np.arange(changes - 1, -1, -1)
    horizons[:, 3] = decay / decay.sum()
    return np.concatenate([horizons, horizons])


def build_scale_head(window: int) -> keras.Model:
    """Window `(n, window, 1)` -> scale of the next encoded change `(n, 1)`."""
    inputs = keras.Input(shape=(window, 1), name="window")
    flat = keras.layers.Flatten(name="scale_flatten")(inputs)
    changes = keras.layers.Dense(
        2 * (window - 1), activation="relu", use_bias=False, trainable=False, name="scale_abs"
    )(flat)
    realised = keras.layers.Dense(
        len(SCALE_FEATURES), use_bias=False, trainable=False, name="scale_har"
    )(changes)
    scale = keras.layers.Dense(
        1,
        use_bias=False,
        kernel_constraint=keras.constraints.NonNeg(),
        kernel_initializer=keras.initializers.Constant(1.0 / len(SCALE_FEATURES)),
        name="scale_mix",
    )(realised)
    model = keras.Model(inputs, scale, name="scale_head")
    model.get_layer("scale_abs").set_weights([_absolute_changes(window)])
    model.get_layer("scale_har").set_weights([_volatility_mix(window)])
    return model


def gaussian_nll(residual: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """Negative log-likelihood (up to a constant) of a normal residual with this scale."""
    scale = tf.maximum(tf.reshape(scale, [-1]), 1e-3)
    residual = tf.reshape(tf.cast(residual, scale.dtype), [-1])
    return tf.math.log(scale) + 0.5 * tf.square(residual / scale)


def fit_scale_head(
    inputs: np.ndarray, residuals: np.ndarray, window: int, seed: int, epochs: int = SCALE_EPOCHS
) -> keras.Model:
    """A scale head fitted to the encoded residuals of the point forecast on `inputs`."""
    seed_everything(seed)
    head = build_scale_head(window)
    head.compile(optimizer=keras.optimizers.Adam(SCALE_LEARNING_RATE), loss=gaussian_nll)
    head.fit(
        inputs, np.asarray(residuals, np.float32), epochs=epochs, batch_size=SCALE_BATCH, verbose=0
    )
    return head


def with_scale(members: list[keras.Model], head: keras.Model, window: int) -> keras.Model:
    """One flat graph of the members' and the head's own trained layers: the window ->
    `(n, 2)`, the members' mean output then the head's scale (flat, so the bundle's
    `model.keras` holds only the layer classes the server's allow-list names)."""
    inputs = keras.Input(shape=(window, 1), name="window")
    outputs = [_chain(member, inputs) for member in members]
    point = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="ensemble_mean")(outputs)
    hidden = inputs
    for name in ("scale_flatten", "scale_abs", "scale_har", "scale_mix"):
        hidden = head.get_layer(name)(hidden)
    both = keras.layers.Concatenate(name="forecast_and_scale")([point, hidden])
    return keras.Model(inputs, both, name="close_lstm_with_scale")


def _chain(member: keras.Model, inputs: keras.KerasTensor) -> keras.KerasTensor:
    hidden = inputs
    for layer in member.layers[1:]:  # layers[0] is the member's InputLayer
        hidden = layer(hidden)
    return hidden


def head_weights(head: keras.Model) -> dict[str, float]:
    """The fitted mix of the realised-volatility features, for the manifest."""
    kernel = head.get_layer("scale_mix").get_weights()[0].reshape(-1)
    return {name: float(value) for name, value in zip(SCALE_FEATURES, kernel, strict=True)}


def fit_scale_for(
    closes: np.ndarray, window: int, seed: int, epochs: int = SCALE_EPOCHS
) -> keras.Model:
    """A scale head fitted on every window of `closes` (relative encoding) to the next change.

    The target is the change itself rather than the point forecast's residual: the point
    forecast is persistence nudged by a few hundredths of the change, and the conformal scores
    are the real residuals anyway, so coverage does not depend on this choice.
    """
    encoding = RelativeEncoding(factor=RELATIVE_FACTOR)
    windows, targets = sliding_windows(closes, window)
    return fit_scale_head(
        encoding.encode(windows), encoding.encode_targets(targets, windows), window, seed, epochs
    )


def relative_scales(head: keras.Model, windows: np.ndarray) -> np.ndarray:
    """The head's scale for each window of closes, as a share of the window's last close."""
    encoding = RelativeEncoding(factor=RELATIVE_FACTOR)
    encoded = head.predict(encoding.encode(windows), verbose=0)
    return SCALE_OUTPUT.relative_scale(np.concatenate([np.zeros_like(encoded), encoded], axis=1))


def fit_pooling(scales: np.ndarray, changes: np.ndarray) -> ScalePooling | None:
    """The partial pooling of `scales` (relative) whose Laplace likelihood of the relative
    `changes` is highest over POOLING_EXPONENTS, or None when the best exponent is 1.

    For an exponent b the likelihood's best multiplier is c_b = mean(|change| / scale^b); the
    level is where the pooled scale equals the unpooled one, level^(1 - b) = c_b / c_1, so the
    pooled scale keeps the head's units. Laplace rather than Gaussian: one earnings gap must not
    decide the exponent.
    """
    scales, moves = np.asarray(scales, np.float64), np.abs(np.asarray(changes, np.float64))
    multipliers = {b: float(np.mean(moves / scales**b)) for b in POOLING_EXPONENTS}
    likelihood = {b: -float(np.mean(np.log(c * scales**b))) for b, c in multipliers.items()}
    exponent = max(POOLING_EXPONENTS, key=lambda b: (likelihood[b], b))
    if exponent == 1.0:
        return None
    level = (multipliers[exponent] / multipliers[1.0]) ** (1.0 / (1.0 - exponent))
    return ScalePooling(exponent, level)


def fit_pooling_for(head: keras.Model, closes: np.ndarray, window: int) -> ScalePooling | None:
    """The pooling of the head's scale fitted on every window of `closes` (the head's own
    training windows) to the next change."""
    windows, targets = sliding_windows(closes, window)
    return fit_pooling(relative_scales(head, windows), targets / windows[:, -1] - 1.0)


def output_with(pooling: ScalePooling | None) -> ScaleOutput:
    """The served graph's scale output read with `pooling`."""
    return ScaleOutput(SCALE_OUTPUT.index, SCALE_OUTPUT.per_close, pooling)
