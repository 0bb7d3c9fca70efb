"""The hyperparameters are declared once (`training.presets.Settings`): the CLI flags, the presets,
the validation and the manifest's `training` block all follow that declaration."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from model_store import Bundle
from training.config import TrainConfig, add_setting_flags, flagged_settings
from training.errors import InputError
from training.presets import MODEL_SETTINGS, PRESETS, SETTINGS, Settings


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    add_setting_flags(parser)
    return parser


def test_one_flag_per_setting_typed_like_the_declaration() -> None:
    flags = [action.option_strings[0] for action in parser()._actions[1:]]
    assert flags == [f"--{name.replace('_', '-')}" for name in SETTINGS]
    args = parser().parse_args(
        ["--batch-size", "8", "--dropout", "0.1", "--shrink", "0.5", "--walk-forward", "none"]
    )
    overrides = flagged_settings(args)
    assert set(overrides) == {field.name for field in dataclasses.fields(Settings)}
    assert (overrides["batch_size"], overrides["dropout"], overrides["shrink"]) == (8, 0.1, 0.5)
    assert overrides["walk_forward"] == "none" and overrides["epochs"] is None
    with pytest.raises(SystemExit):
        parser().parse_args(["--encoding", "log"])  # choices come from the declaration


def test_unset_flags_take_the_preset_and_set_ones_override_it(tmp_path: Path) -> None:
    paths = {"train_csv": tmp_path, "test_csv": tmp_path, "store": tmp_path, "name": "x"}
    unset = flagged_settings(parser().parse_args([]))
    assert TrainConfig(**paths, preset="tutorial", **unset).settings == PRESETS["tutorial"]
    set_ = flagged_settings(parser().parse_args(["--units", "7", "--seed", "3"]))
    settings = TrainConfig(**paths, **set_).settings
    assert settings == dataclasses.replace(PRESETS["default"], units=7, seed=3)
    with pytest.raises(TypeError, match="unknown setting"):
        TrainConfig(**paths, unit=7)


def test_every_declared_rule_is_enforced(tmp_path: Path) -> None:
    paths = {"train_csv": tmp_path, "test_csv": tmp_path, "store": tmp_path, "name": "x"}
    refusals = {
        "window": (0, "window must be a positive integer, got 0"),
        "batch_size": (True, "batch-size must be a positive integer, got True"),
        "seed": (-1, "seed must be a non-negative integer, got -1"),
        "dropout": (1.0, r"dropout must be in \[0, 1\), got 1.0"),
        "encoding": ("log", "encoding must be one of relative, minmax, got 'log'"),
        "intervals": ("wide", "intervals must be one of scaled, fixed, got 'wide'"),
        "scale_epochs": (0, "scale-epochs must be a positive integer, got 0"),
    }
    for name, (value, message) in refusals.items():
        with pytest.raises(InputError, match=message):
            TrainConfig(**paths, **{name: value}).validate()
    with pytest.raises(InputError, match="intervals scaled needs the relative encoding"):
        TrainConfig(**paths, encoding="minmax").validate()
    TrainConfig(**paths, encoding="minmax", intervals="fixed").validate()
    TrainConfig(**paths).validate()
    assert "window" in MODEL_SETTINGS and "seed" not in MODEL_SETTINGS


def test_presets_declare_every_setting_and_the_manifest_records_the_model_ones() -> None:
    assert PRESETS["tutorial"].recorded() == {
        "encoding": "minmax",
        "epochs": 100,
        "batch_size": 32,
        "units": 45,
        "layers": 4,
        "dropout": 0.2,
        "seed": 42,
        "members": 1,
        "intervals": "fixed",
        "scale_epochs": 30,
        "scale_pooling": "none",
    }


@pytest.mark.slow
def test_the_manifest_records_the_settings_as_run(tiny_bundle: Bundle) -> None:
    training = tiny_bundle.manifest.training
    assert set(training) == {
        "preset", "encoding", "epochs", "epochs_run", "batch_size", "units", "layers",
        "dropout", "optimizer", "learning_rate", "loss", "seed", "seeds", "members",
        "sign_flip", "output_bias", "shrink", "shrink_source", "final_loss", "final_losses",
        "train_windows", "walk_forward", "intervals", "scale_epochs", "scale_pooling",
        "scale_head",
    }  # fmt: skip
    assert {key: training[key] for key in PRESETS["default"].recorded()} == {
        "encoding": "relative",
        "epochs": 1,
        "batch_size": 32,
        "units": 4,
        "layers": 1,
        "dropout": 0.2,
        "seed": 0,
        "members": 2,
        "intervals": "scaled",
        "scale_epochs": 30,
        "scale_pooling": "none",
    }
    assert set(training["scale_head"]) == {"loss", "last_day", "last_week", "window", "ewma"}
    assert (training["optimizer"], training["loss"], training["seeds"]) == ("adam", "mse", [0, 1])
    assert training["walk_forward"] == {"scheme": "monthly", "folds": 2}
