"""Session fixtures shared by every test package: the shared data folder and tiny bundles.

The tiny bundle is a real TensorFlow model of the default kind (relative encoding, two averaged
members of 1 epoch, 4 units, 1 layer, a 2-fold walk-forward that calibrates its intervals) trained
on the FB files and published through the real pipeline, so app and store tests run against
genuine artifacts without each paying for training. `tiny_minmax_bundle` is the same size with the
tutorial's MinMax level encoding, for behaviour only such a model has (saturation outside its
training range).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_store import Bundle, ModelStore

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (`SHARED_DATA_DIR`, default `../shared/data` beside the repo)."""
    folder = Path(os.environ.get("SHARED_DATA_DIR", REPO_ROOT / ".." / "shared" / "data")).resolve()
    if not (folder / "FB_training_data.csv").is_file():
        pytest.fail(f"shared data not found in {folder}; set SHARED_DATA_DIR")
    return folder


@pytest.fixture(scope="session")
def tiny_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder holding one tiny bundle named `tiny` (version 1) trained on the FB files."""
    from training.pipeline import TrainConfig, train_and_publish

    store = tmp_path_factory.mktemp("tiny-store")
    train_and_publish(
        TrainConfig(
            train_csv=shared_data / "FB_training_data.csv",
            test_csv=shared_data / "FB_test_data.csv",
            store=store,
            name="tiny",
            epochs=1,
            units=4,
            layers=1,
            batch_size=32,
            dropout=0.2,
            window=40,
            seed=0,
            column="Close",
            members=2,
            walk_forward="monthly",
            folds=2,
        )
    )
    return store


@pytest.fixture(scope="session")
def tiny_bundle(tiny_store: Path) -> Bundle:
    """The verified tiny bundle in `tiny_store`. Read-only: tests that tamper copy it first."""
    return ModelStore(tiny_store).verify("tiny")


@pytest.fixture(scope="session")
def tiny_minmax_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder holding one tiny MinMax (tutorial-kind) bundle named `tiny` (version 1)."""
    from training.pipeline import TrainConfig, train_and_publish

    store = tmp_path_factory.mktemp("tiny-minmax-store")
    train_and_publish(
        TrainConfig(
            train_csv=shared_data / "FB_training_data.csv",
            test_csv=shared_data / "FB_test_data.csv",
            store=store,
            name="tiny",
            preset="tutorial",
            epochs=1,
            units=4,
            layers=1,
            walk_forward="none",
        )
    )
    return store


@pytest.fixture(scope="session")
def tiny_minmax_bundle(tiny_minmax_store: Path) -> Bundle:
    """The verified tiny MinMax bundle in `tiny_minmax_store`. Read-only."""
    return ModelStore(tiny_minmax_store).verify("tiny")
