"""The tutorial's network: stacked LSTMs, each followed by Dropout, then one Dense output."""

from __future__ import annotations

import keras


def build_model(window: int, units: int, layers: int, dropout: float) -> keras.Model:
    """`layers` LSTM(`units`) layers (all but the last return sequences), each followed by
    Dropout(`dropout`), then Dense(1); compiled with Adam and mean squared error.

    With the defaults (45 units, 4 layers, 0.2) this is the tutorial's model.
    """
    model = keras.Sequential(name="close_lstm")
    model.add(keras.Input(shape=(window, 1), name="window"))
    for index in range(layers):
        model.add(keras.layers.LSTM(units, return_sequences=index < layers - 1))
        model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(1))
    model.compile(optimizer="adam", loss="mean_squared_error")
    return model
