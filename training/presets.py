"""Named hyperparameter sets. A preset fills every setting a run leaves unset.

`default` is the walk-forward winner (see README "Model quality"): scale-free relative windows,
sign-flipped copies, a bias-free LSTM(16), 10 epochs, three seeds averaged, the output shrunk
toward persistence by the walk-forward's choice. `tutorial` is the reference tutorial as written:
MinMax-scaled levels, 4 x LSTM(45) with Dropout 0.2, 100 epochs, seed 42; its walk-forward uses
quarterly folds by default because each of its fits takes ~5 minutes on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Every setting of a run after the preset has filled the gaps."""

    encoding: str
    epochs: int
    units: int
    layers: int
    dropout: float
    batch_size: int
    seed: int
    members: int
    walk_forward: str
    folds: int
    shrink: float | None  # None: chosen by the walk-forward (relative encoding only)

    @property
    def seeds(self) -> list[int]:
        """One seed per member: `seed`, `seed + 1`, ..."""
        return [self.seed + index for index in range(self.members)]

    @property
    def sign_flip(self) -> bool:
        """Mirrored training copies: only meaningful for the relative encoding."""
        return self.encoding == "relative"

    @property
    def output_bias(self) -> bool:
        """The relative model has no output bias, which keeps the shrink exact and removes a
        constant drift; the tutorial's Dense keeps its bias."""
        return self.encoding != "relative"


PRESETS = {
    "default": Settings(
        encoding="relative",
        epochs=10,
        units=16,
        layers=1,
        dropout=0.0,
        batch_size=32,
        seed=0,
        members=3,
        walk_forward="monthly",
        folds=12,
        shrink=None,
    ),
    "tutorial": Settings(
        encoding="minmax",
        epochs=100,
        units=45,
        layers=4,
        dropout=0.2,
        batch_size=32,
        seed=42,
        members=1,
        walk_forward="quarterly",
        folds=4,
        shrink=None,
    ),
}

# Settings that change the trained model; a run that overrides any of them is `custom`. Seeds,
# the evaluation scheme and the shrink (chosen from the data) do not change what the preset is.
MODEL_SETTINGS = ("encoding", "epochs", "units", "layers", "dropout", "batch_size", "members")
