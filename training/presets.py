"""The hyperparameters, declared once, and the named presets that fill every one a run leaves unset.

Each `Settings` field carries its command-line help and the rule its value must satisfy; the CLI
flags, the validation and the manifest's `training` block are derived from these declarations.

`default` is the walk-forward winner (see docs/model-quality.md): scale-free relative windows,
sign-flipped copies, a bias-free LSTM(16), 10 epochs, three seeds averaged, the output shrunk
toward persistence by the walk-forward's choice, and a scale head whose forecast sets each
window's band (`--intervals fixed` gives one width for every window, as fb-lstm v2 has). `tutorial` is the reference tutorial as written:
MinMax-scaled levels, 4 x LSTM(45) with Dropout 0.2, 100 epochs, seed 42; its walk-forward uses
quarterly folds by default because each of its fits takes minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from model_store import ENCODINGS as REGISTERED_ENCODINGS

ENCODINGS = tuple(REGISTERED_ENCODINGS)  # the kinds model_store can store and serve
SCHEMES = ("monthly", "quarterly", "none")
INTERVAL_KINDS = ("scaled", "fixed")
POOLING_KINDS = ("fitted", "none")


def setting(
    help: str | None = None,
    *,
    rule: str,
    choices: tuple[str, ...] | None = None,
    model: bool = False,
    manifest: bool = False,
) -> Any:
    """A declared hyperparameter: its flag help, the `rule` its value obeys (see
    `training.config`), its `choices`, whether changing it changes the trained `model` (so the
    run is no longer its preset) and whether the manifest's `training` block records it as set."""
    metadata = {"help": help, "rule": rule, "choices": choices, "model": model}
    return dataclasses.field(metadata={**metadata, "manifest": manifest})


@dataclass(frozen=True)
class Settings:
    """Every setting of a run after the preset has filled the gaps (in command-line order)."""

    encoding: str = setting(
        "relative | minmax (levels)",
        rule="choice",
        choices=ENCODINGS,
        model=True,
        manifest=True,
    )
    epochs: int = setting(rule="positive", model=True, manifest=True)
    batch_size: int = setting(rule="positive", model=True, manifest=True)
    units: int = setting("LSTM units per layer", rule="positive", model=True, manifest=True)
    layers: int = setting(
        "number of stacked LSTM layers", rule="positive", model=True, manifest=True
    )
    dropout: float = setting(rule="fraction", model=True, manifest=True)
    window: int = setting("closes per input window", rule="positive", model=True)
    seed: int = setting(
        "first member's seed; member i uses seed + i", rule="non-negative", manifest=True
    )
    members: int = setting(
        "ensemble size (models averaged)", rule="positive", model=True, manifest=True
    )
    walk_forward: str = setting(
        "backtest folds over the end of the training CSV (none: skip the backtest)",
        rule="choice",
        choices=SCHEMES,
    )
    folds: int = setting("number of walk-forward folds (last N periods)", rule="positive")
    # None: chosen by the walk-forward (relative encoding only).
    shrink: float | None = setting(
        "fraction of the predicted change kept (relative encoding; default: the "
        "walk-forward's best of 0, .25, .5, .75, 1)",
        rule="shrink",
    )
    intervals: str = setting(
        "scaled (bands from the model's own scale forecast, relative encoding) | fixed (one "
        "width for every window)",
        rule="intervals",
        choices=INTERVAL_KINDS,
        manifest=True,
    )
    scale_epochs: int = setting("epochs of the scale head's fit", rule="positive", manifest=True)
    scale_pooling: str = setting(
        "fitted (pull the predicted scale toward the training series' long-run level by an "
        "exponent fitted on its history) | none (scaled intervals only)",
        rule="choice",
        choices=POOLING_KINDS,
        manifest=True,
    )

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

    def recorded(self) -> dict[str, Any]:
        """The settings the manifest's `training` block records as they were set."""
        return {
            name: getattr(self, name) for name in SETTINGS if SETTINGS[name].metadata["manifest"]
        }


SETTINGS = {field.name: field for field in dataclasses.fields(Settings)}

# Settings that change the trained model; a run that overrides any of them is `custom`. Seeds,
# the evaluation scheme and the shrink (chosen from the data) do not change what the preset is.
MODEL_SETTINGS = tuple(name for name, field in SETTINGS.items() if field.metadata["model"])

PRESETS = {
    "default": Settings(
        encoding="relative",
        epochs=10,
        batch_size=32,
        units=16,
        layers=1,
        dropout=0.0,
        window=40,
        seed=0,
        members=3,
        walk_forward="monthly",
        folds=12,
        shrink=None,
        intervals="scaled",
        scale_epochs=30,
        scale_pooling="none",
    ),
    "tutorial": Settings(
        encoding="minmax",
        epochs=100,
        batch_size=32,
        units=45,
        layers=4,
        dropout=0.2,
        window=40,
        seed=42,
        members=1,
        walk_forward="quarterly",
        folds=4,
        shrink=None,
        intervals="fixed",
        scale_epochs=30,
        scale_pooling="none",
    ),
}
