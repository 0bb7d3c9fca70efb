"""The networks: one LSTM stack per ensemble member, and the members averaged in one graph.

Both presets use the same builder: the tutorial's stack (4 x LSTM(45), Dropout 0.2, biased Dense)
and the default's small member (LSTM(16), no Dropout, bias-free Dense). The ensemble is a single
functional graph (shared input -> each member's layers -> Average) so the bundle keeps one
`model.keras` and one `model.onnx`.
"""

from __future__ import annotations

import keras

LEARNING_RATE = 1e-3  # Adam's default, recorded in the manifest


def build_member(
    window: int, units: int, layers: int, dropout: float, output_bias: bool, prefix: str = "m0"
) -> keras.Model:
    """`layers` LSTM(`units`) layers (all but the last return sequences), each followed by
    Dropout(`dropout`) when it is above zero, then Dense(1); compiled with Adam and MSE.

    No Dropout layer is added at rate 0: it would draw from the seeded generator and change
    the weights a seed gives. Layer names carry `prefix` so members can share one graph.
    """
    inputs = keras.Input(shape=(window, 1), name="window")
    hidden = inputs
    for index in range(layers):
        hidden = keras.layers.LSTM(
            units, return_sequences=index < layers - 1, name=f"{prefix}_lstm{index}"
        )(hidden)
        if dropout > 0.0:
            hidden = keras.layers.Dropout(dropout, name=f"{prefix}_dropout{index}")(hidden)
    outputs = keras.layers.Dense(1, use_bias=output_bias, name=f"{prefix}_dense")(hidden)
    model = keras.Model(inputs, outputs, name=f"{prefix}_close_lstm")
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mean_squared_error")
    return model


def shrink_output(member: keras.Model, shrink: float) -> None:
    """Scale a bias-free member's output by `shrink` by scaling its Dense kernel.

    Exact: without a bias the output is linear in the kernel. For the relative encoding an
    output scaled by s is the prediction moved a fraction s of the way from the last close.
    """
    dense = member.layers[-1]
    if dense.use_bias:
        raise ValueError("shrink needs a bias-free output layer")
    dense.kernel.assign(dense.kernel * shrink)


def combine(members: list[keras.Model], window: int) -> keras.Model:
    """One model whose output is the mean of the members' outputs (the member itself when there
    is only one), built from the members' own trained layers."""
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(shape=(window, 1), name="window")
    outputs = []
    for member in members:
        hidden = inputs
        for layer in member.layers[1:]:  # layers[0] is the member's InputLayer
            hidden = layer(hidden)
        outputs.append(hidden)
    averaged = keras.layers.Average(name="ensemble_mean")(outputs)
    return keras.Model(inputs, averaged, name="close_lstm_ensemble")
