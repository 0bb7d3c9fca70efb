"""End to end with real TensorFlow: train -> export -> parity -> publish -> verify, on the FB files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from model_store import Bundle, ModelStore, parse_price_csv
from training.errors import InputError, ParityError
from training.export import check_parity
from training.pipeline import TrainConfig, train_and_publish

pytestmark = pytest.mark.slow


def test_tiny_bundle_is_complete_and_verifies(tiny_store: Path, tiny_bundle: Bundle) -> None:
    store = ModelStore(tiny_store)
    assert store.versions("tiny") == [1]
    assert sorted(tiny_bundle.manifest.files) == ["model.keras", "model.onnx", "report.png"]
    assert store.verify("tiny", 1).manifest == tiny_bundle.manifest
    assert tiny_bundle.path.joinpath("report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_manifest_records_the_run(tiny_bundle: Bundle, shared_data: Path) -> None:
    manifest = tiny_bundle.manifest
    assert manifest.window == 40 and manifest.feature == "Close"
    training = manifest.training
    assert training["preset"] == "custom"
    assert (training["epochs"], training["epochs_run"], training["units"], training["layers"]) == (
        1,
        1,
        4,
        1,
    )
    assert training["train_windows"] == 1218
    assert training["seed"] == 0 and np.isfinite(training["final_loss"])
    assert (training["encoding"], training["members"], training["seeds"]) == ("relative", 2, [0, 1])
    assert training["walk_forward"] == {"scheme": "monthly", "folds": 2}
    assert manifest.encoding.to_json() == {"kind": "relative", "factor": 100.0}
    train_file = shared_data / "FB_training_data.csv"
    assert manifest.data["train"] == {
        "file": "FB_training_data.csv",
        "sha256": hashlib.sha256(train_file.read_bytes()).hexdigest(),
        "rows": 1258,
        "first_date": "2015-01-02",
        "last_date": "2019-12-31",
    }
    assert manifest.data["test"]["rows"] == 21
    assert manifest.data["test"]["first_date"] == "2020-01-02"
    series = parse_price_csv(train_file.read_bytes())
    assert manifest.context.dates == series.iso_dates()[-40:]
    assert manifest.context.closes == series.values[-40:].tolist()
    assert set(manifest.versions) >= {"python", "tensorflow", "keras", "onnxruntime", "tf2onnx"}
    assert manifest.onnx["input"] == "window"


def test_persistence_rmse_on_january_2020_is_the_tutorials(tiny_bundle: Bundle) -> None:
    assert round(tiny_bundle.manifest.metrics["persistence"]["rmse"], 3) == 4.248


def test_metrics_are_what_onnx_runtime_serves(tiny_bundle: Bundle) -> None:
    """Recompute the test month from the bundle alone, the way the server does."""
    manifest = tiny_bundle.manifest
    evaluation = manifest.evaluation
    history = np.array(manifest.context.closes + evaluation["actual"])
    windows = np.lib.stride_tricks.sliding_window_view(history, 40)[: len(evaluation["actual"])]
    encoding = tiny_bundle.encoding
    session = ort.InferenceSession(str(tiny_bundle.file("model.onnx")))
    outputs = session.run(None, {session.get_inputs()[0].name: encoding.encode(windows)})[0]
    served = encoding.decode(outputs[:, :1], windows)
    np.testing.assert_array_equal(served, evaluation["predicted"])
    actual = np.array(evaluation["actual"])
    rmse = float(np.sqrt(np.mean((served - actual) ** 2)))
    assert rmse == pytest.approx(manifest.metrics["model"]["rmse"], rel=1e-12)
    np.testing.assert_array_equal(evaluation["persistence"], history[39:-1])


def test_parity_between_keras_and_onnx(tiny_bundle: Bundle) -> None:
    import keras

    manifest = tiny_bundle.manifest
    assert manifest.parity["windows"] == 21
    assert manifest.parity["tolerance"] == 1e-4
    assert 0.0 <= manifest.parity["max_abs_diff"] <= 1e-4
    history = np.array(manifest.context.closes + manifest.evaluation["actual"])
    windows = np.lib.stride_tricks.sliding_window_view(history, 40)[:21]
    inputs = tiny_bundle.encoding.encode(windows)
    model = keras.saving.load_model(tiny_bundle.file("model.keras"))
    session = ort.InferenceSession(str(tiny_bundle.file("model.onnx")))
    onnx_out = session.run(None, {"window": inputs})[0]
    assert np.max(np.abs(model.predict(inputs, verbose=0) - onnx_out)) <= 1e-4


def test_second_publish_is_version_two(shared_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        train_csv=shared_data / "FB_training_data.csv",
        test_csv=shared_data / "FB_test_data.csv",
        store=tmp_path,
        name="twice",
        epochs=1,
        units=2,
        layers=1,
        seed=3,
        members=1,
        walk_forward="none",
    )
    first = train_and_publish(config)
    second = train_and_publish(config)
    assert (first.version, second.version) == (1, 2)
    assert ModelStore(tmp_path).resolve("twice") == 2
    # Same seed, same data, same settings: the same predictions (op determinism is on).
    assert first.manifest.evaluation["predicted"] == second.manifest.evaluation["predicted"]
    assert first.manifest.training["final_loss"] == second.manifest.training["final_loss"]


def test_bad_config_is_refused_before_training(shared_data: Path, tmp_path: Path) -> None:
    base = {
        "train_csv": shared_data / "FB_training_data.csv",
        "test_csv": shared_data / "FB_test_data.csv",
        "store": tmp_path,
        "name": "x",
    }
    with pytest.raises(InputError, match="epochs must be a positive integer"):
        train_and_publish(TrainConfig(**base, epochs=0))
    with pytest.raises(InputError, match=r"dropout must be in \[0, 1\)"):
        train_and_publish(TrainConfig(**base, dropout=1.0))
    with pytest.raises(InputError, match="preset must be one of default, tutorial, got 'fast'"):
        train_and_publish(TrainConfig(**base, preset="fast"))
    with pytest.raises(InputError, match="encoding must be one of relative, minmax"):
        train_and_publish(TrainConfig(**base, encoding="log"))
    with pytest.raises(InputError, match="walk-forward must be one of monthly, quarterly, none"):
        train_and_publish(TrainConfig(**base, walk_forward="weekly"))
    with pytest.raises(InputError, match="folds must be a positive integer, got 0"):
        train_and_publish(TrainConfig(**base, folds=0))
    with pytest.raises(InputError, match="members must be a positive integer, got 0"):
        train_and_publish(TrainConfig(**base, members=0))
    with pytest.raises(InputError, match="shrink applies to the relative encoding only"):
        train_and_publish(TrainConfig(**base, preset="tutorial", shrink=0.5))
    with pytest.raises(InputError, match=r"shrink must be in \[0, 1\], got 1.5"):
        train_and_publish(TrainConfig(**base, shrink=1.5))
    with pytest.raises(InputError, match="61 monthly folds need more monthly periods"):
        train_and_publish(TrainConfig(**base, folds=61))
    assert not any(tmp_path.iterdir())


def test_parity_failure_publishes_nothing(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converter that drifts by 1e-3 (ten times the tolerance) must stop the run before publish."""
    import training.export

    real_run_onnx = training.export.run_onnx

    def drifting_run_onnx(path: Path, inputs: np.ndarray) -> np.ndarray:
        return real_run_onnx(path, inputs) + 1e-3

    monkeypatch.setattr(training.export, "run_onnx", drifting_run_onnx)
    config = TrainConfig(
        train_csv=shared_data / "FB_training_data.csv",
        test_csv=shared_data / "FB_test_data.csv",
        store=tmp_path,
        name="drift",
        epochs=1,
        units=2,
        layers=1,
        members=1,
        walk_forward="none",
    )
    with pytest.raises(
        ParityError, match=r"ONNX export differs from Keras by 0\.001 \(tolerance 0\.0001\)"
    ):
        train_and_publish(config)
    assert ModelStore(tmp_path).versions("drift") == []
    assert not (tmp_path / "drift").exists() or list((tmp_path / "drift").iterdir()) == []


def test_check_parity_refuses_nan_and_shape_mismatch() -> None:
    outputs = np.array([[0.5], [0.25]], dtype=np.float32)
    assert check_parity(outputs, outputs + 5e-5) == pytest.approx(5e-5, rel=1e-3)
    with pytest.raises(ParityError, match="differs from Keras by nan"):
        check_parity(outputs, np.array([[0.5], [np.nan]]))
    with pytest.raises(ParityError, match="ONNX returned 1 outputs, Keras 2"):
        check_parity(outputs, outputs[:1])


def test_other_window_column_and_stacked_layers(shared_data: Path, tmp_path: Path) -> None:
    import keras

    bundle = train_and_publish(
        TrainConfig(
            train_csv=shared_data / "FB_training_data.csv",
            test_csv=shared_data / "FB_test_data.csv",
            store=tmp_path,
            name="open-10",
            epochs=1,
            units=3,
            layers=2,
            window=10,
            column="Open",
            members=1,
            walk_forward="none",
        )
    )
    manifest = bundle.manifest
    assert (manifest.window, manifest.feature) == (10, "Open")
    assert manifest.training["train_windows"] == 1248
    assert manifest.context.closes[-1] == 204.0  # FB Open on 2019-12-31
    assert manifest.evaluation["actual"][0] == pytest.approx(206.75)  # Open on 2020-01-02
    assert manifest.parity["windows"] == 21 and manifest.parity["max_abs_diff"] <= 1e-4
    model = keras.saving.load_model(bundle.file("model.keras"))
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert [layer.return_sequences for layer in lstms] == [True, False]
    assert model.input_shape == (None, 10, 1)
