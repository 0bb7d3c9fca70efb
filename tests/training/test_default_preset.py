"""The real default preset (3 x LSTM(16), 10 epochs, relative encoding) on the FB files, without
the walk-forward (the committed bundle's recorded shrink is passed instead): January 2020 must not
lose to persistence. About a minute on two cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.pipeline import TrainConfig, train_and_publish

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "models" / "fb-lstm"


def committed_default_manifest() -> dict[str, object]:
    """The manifest of the newest committed bundle (the default preset)."""
    newest = max((p for p in DEMO.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    manifest: dict[str, object] = json.loads((newest / "manifest.json").read_text())
    return manifest


def test_default_preset_is_not_worse_than_persistence_in_january(
    shared_data: Path, tmp_path: Path
) -> None:
    training = committed_default_manifest()["training"]
    assert isinstance(training, dict) and training["preset"] == "default"
    bundle = train_and_publish(
        TrainConfig(
            train_csv=shared_data / "FB_training_data.csv",
            test_csv=shared_data / "FB_test_data.csv",
            store=tmp_path,
            name="default",
            walk_forward="none",
            shrink=training["shrink"],
        )
    )
    metrics = bundle.manifest.metrics
    ratio = metrics["model"]["rmse"] / metrics["persistence"]["rmse"]
    print(
        f"default preset, shrink {training['shrink']}: January 2020 RMSE "
        f"{metrics['model']['rmse']:.4f} vs persistence {metrics['persistence']['rmse']:.4f}, "
        f"ratio {ratio:.4f}"
    )
    assert bundle.manifest.training["preset"] == "default"
    assert bundle.manifest.training["seeds"] == [0, 1, 2]
    assert ratio <= 1.005
