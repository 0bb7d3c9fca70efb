"""One run's inputs and overrides, checked against the rules `training.presets` declares, and the
`train` command's setting flags derived from the same declarations."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_store import ENCODINGS, encoding_kind, validate_name
from training.errors import InputError
from training.presets import MODEL_SETTINGS, PRESETS, SETTINGS, Settings

# Rules are checked in this order, so a run with several bad values hears about the same one first.
RULE_ORDER = ("positive", "fraction", "non-negative", "choice", "shrink", "intervals")


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Inputs of one run and the settings it overrides; every other setting comes from `preset`.

    Overrides are keyword arguments named like the `Settings` fields; `None` means "the preset's".
    """

    train_csv: Path
    test_csv: Path | None  # None: the test rows are cut from `train_csv` at `test_from`
    store: Path
    name: str
    preset: str
    column: str
    test_from: str | None
    overrides: dict[str, Any]

    def __init__(
        self,
        train_csv: Path,
        test_csv: Path | None,
        store: Path,
        name: str,
        preset: str = "default",
        column: str = "Close",
        test_from: str | None = None,
        **overrides: Any,
    ) -> None:
        unknown = sorted(set(overrides) - set(SETTINGS))
        if unknown:
            raise TypeError(f"TrainConfig got unknown setting(s): {', '.join(unknown)}")
        given = {key: value for key, value in overrides.items() if value is not None}
        fields = {"train_csv": train_csv, "test_csv": test_csv, "store": store, "name": name}
        for key, value in {
            **fields,
            "preset": preset,
            "column": column,
            "test_from": test_from,
        }.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "overrides", given)

    @property
    def settings(self) -> Settings:
        """The preset's settings with this run's explicit values applied."""
        return dataclasses.replace(PRESETS.get(self.preset, PRESETS["default"]), **self.overrides)

    @property
    def preset_label(self) -> str:
        """The preset's name when every model setting is the preset's, else `custom`."""
        base, settings = PRESETS[self.preset], self.settings
        same = all(getattr(settings, name) == getattr(base, name) for name in MODEL_SETTINGS)
        return self.preset if same else "custom"

    def validate(self) -> None:
        """Refuse impossible settings before any data is read or any model is built."""
        validate_name(self.name)
        if (self.test_csv is None) == (self.test_from is None):
            raise InputError("give either a test CSV or a date to cut the training CSV at")
        if self.preset not in PRESETS:
            raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        settings = self.settings
        for rule in RULE_ORDER:
            for name, field in SETTINGS.items():
                if field.metadata["rule"] == rule:
                    check_setting(settings, name)


def check_setting(settings: Settings, name: str) -> None:
    """Raise `InputError` naming the flag when `settings.<name>` breaks its declared rule."""
    field, value = SETTINGS[name], getattr(settings, name)
    rule, flag = field.metadata["rule"], name.replace("_", "-")
    if rule == "positive" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InputError(f"{flag} must be a positive integer, got {value!r}")
    if rule == "non-negative" and (
        isinstance(value, bool) or not isinstance(value, int) or value < 0
    ):
        raise InputError(f"{flag} must be a non-negative integer, got {value!r}")
    if rule == "fraction" and not 0.0 <= value < 1.0:
        raise InputError(f"{flag} must be in [0, 1), got {value!r}")
    if rule == "choice" and value not in field.metadata["choices"]:
        choices = ", ".join(field.metadata["choices"])
        raise InputError(f"{flag} must be one of {choices}, got {value!r}")
    if rule == "intervals":
        if value not in field.metadata["choices"]:
            raise InputError(
                f"{flag} must be one of {', '.join(field.metadata['choices'])}, got {value!r}"
            )
        if value == "scaled" and settings.encoding != "relative":
            raise InputError(f"{flag} scaled needs the relative encoding (use --intervals fixed)")
    if rule == "shrink" and value is not None:
        if not encoding_kind(settings.encoding).shrinkable:
            shrinkable = [kind for kind, encoding in ENCODINGS.items() if encoding.shrinkable]
            raise InputError(f"{flag} applies to the {' and '.join(shrinkable)} encoding only")
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{flag} must be in [0, 1], got {value!r}")


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One optional flag per setting (`--batch-size` for `batch_size`), unset meaning the preset's."""
    hints = typing.get_type_hints(Settings)
    for name, field in SETTINGS.items():
        # `float | None` parses as a float: an absent flag is the `None`.
        kind = next((a for a in typing.get_args(hints[name]) if a is not type(None)), hints[name])
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            choices=field.metadata["choices"],
            help=field.metadata["help"],
        )


def flagged_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The setting overrides parsed by `add_setting_flags`, ready for `TrainConfig(**...)`."""
    return {name: getattr(args, name) for name in SETTINGS}
