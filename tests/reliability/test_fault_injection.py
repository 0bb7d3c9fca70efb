"""Faults injected into a store a real server is polling, while it serves a steady /predict load.

The promise (TensorFlow Serving's): a bad new version never takes the good one down, a good one
is swapped in without a failed request, a vanished store leaves the loaded model serving (and
says so), and a publish killed half-way leaves nothing the server would load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_harness import BackgroundLoad

from bench.server import REPO_ROOT, Server
from model_store import MANIFEST_FILE, ModelStore

KILLER = Path(__file__).resolve().parent / "kill_on_staging.py"
POLL = "0.2"  # MODEL_POLL_SECONDS: the server looks at the store five times a second
NAME = "tiny"

pytestmark = pytest.mark.slow

StartServer = Callable[..., Server]
Corruption = Callable[[Path], None]


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST_FILE).read_text())


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def rehash(folder: Path) -> None:
    """Make the manifest's sha256s match the (tampered) files: the corruption is then one that
    only the loader, not the hash check, can catch."""
    manifest = read_manifest(folder)
    manifest["files"] = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in manifest["files"]
    }
    write_manifest(folder, manifest)


def flip_byte(folder: Path) -> None:
    path = folder / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(folder: Path) -> None:
    path = folder / "model.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def lying_hash(folder: Path) -> None:
    manifest = read_manifest(folder)
    manifest["files"]["model.onnx"] = manifest["files"]["report.png"]
    write_manifest(folder, manifest)


def listed_but_missing(folder: Path) -> None:
    manifest = read_manifest(folder)
    manifest["files"]["weights.bin"] = "0" * 64
    write_manifest(folder, manifest)


def unlisted_extra_file(folder: Path) -> None:
    (folder / "payload.sh").write_text("#!/bin/sh\necho owned\n")


def garbage_onnx_with_valid_hash(folder: Path) -> None:
    (folder / "model.onnx").write_bytes(b"this is not an ONNX model\n" * 150)
    rehash(folder)


def truncated_manifest(folder: Path) -> None:
    path = folder / MANIFEST_FILE
    path.write_bytes(path.read_bytes()[:100])


def undecodable_scaler(folder: Path) -> None:
    """A scaler that would turn every output into inf or nonsense: zero MinMax scale, or a zero
    relative factor, whichever kind the bundle has."""
    manifest = read_manifest(folder)
    scaler = manifest["scaler"]
    scaler["scale" if scaler["kind"] == "minmax" else "factor"] = 0.0
    write_manifest(folder, manifest)


def lambda_keras(path: Path) -> Corruption:
    def replace_keras(folder: Path) -> None:
        shutil.copyfile(path, folder / "model.keras")
        rehash(folder)

    return replace_keras


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Keras model with a Lambda layer (Python bytecode that runs on load), saved."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(40, 1), name="window"),
            keras.layers.Lambda(lambda x: x * 1.0),
            keras.layers.LSTM(2),
            keras.layers.Dense(1),
        ]
    )
    path = tmp_path_factory.mktemp("lambda") / "model.keras"
    model.save(path)
    return path


def install_version(store: Path, corrupt: Corruption | None, scratch: Path) -> int:
    """Copy version 1 as the next version, apply `corrupt`, and rename it into place in one step
    (the way ModelStore.publish does), so the poller never sees a half-made folder."""
    number = max(ModelStore(store).versions(NAME)) + 1
    staging = scratch / f"v{number}"
    shutil.copytree(store / NAME / "1", staging)
    manifest = read_manifest(staging)
    manifest["version"] = number
    write_manifest(staging, manifest)
    if corrupt is not None:
        corrupt(staging)
    os.rename(staging, store / NAME / str(number))
    return number


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def version_error(server: Server, version: int) -> str | None:
    for entry in server.client.get("/models/tiny/status").json()["versions"]:
        if entry["version"] == version:
            return entry["error"]
    return None


def test_corrupt_versions_are_refused_and_a_good_one_swapped_in_under_load(
    private_store: Path, start_server: StartServer, lambda_model: Path, tmp_path: Path
) -> None:
    corruptions: list[tuple[str, Corruption, str]] = [
        ("flipped byte in model.onnx", flip_byte, "sha256 mismatch for model.onnx"),
        ("truncated model.onnx", truncate, "sha256 mismatch for model.onnx"),
        ("manifest hash that lies", lying_hash, "sha256 mismatch for model.onnx"),
        ("manifest lists a missing file", listed_but_missing, "missing file weights.bin"),
        ("unlisted extra file", unlisted_extra_file, "unexpected file payload.sh"),
        ("text as model.onnx, hashed", garbage_onnx_with_valid_hash, "INVALID_PROTOBUF"),
        ("truncated manifest.json", truncated_manifest, "manifest.json is unreadable"),
        ("scaler that cannot decode", undecodable_scaler, "manifest field 'scaler' has"),
        ("Lambda layer in model.keras, hashed", lambda_keras(lambda_model), "Lambda"),
    ]
    server = start_server(private_store, NAME, MODEL_POLL_SECONDS=POLL)
    with BackgroundLoad(server.base_url) as load:
        load.wait_for_requests(50)
        for label, corrupt, fragment in corruptions:
            number = install_version(private_store, corrupt, tmp_path)
            error = wait_for(lambda n=number: version_error(server, n), f"refusal of {label}")
            assert fragment in error, f"{label}: {error}"
            assert server.served_version() == 1, label
            load.wait_for_requests(20)
            assert load.report.failures == 0, f"{label}: {load.report.summary()}"

        good = install_version(private_store, None, tmp_path)
        wait_for(lambda: server.served_version() == good, f"swap to good version {good}")
        load.wait_for_requests(50)
    report = load.report
    assert report.failures == 0, report.summary()
    assert set(report.versions) == {1, good}, report.summary()
    status = server.client.get("/models/tiny/status").json()
    refused = [entry["version"] for entry in status["versions"] if entry["error"]]
    assert refused == list(range(2, good)), status
    assert "Traceback" not in server.log_text()
    print(f"{len(corruptions)} corrupt versions refused, v{good} swapped in: {report.summary()}")


def test_the_keras_backend_loads_in_safe_mode_and_refuses_the_lambda_model(
    tiny_store: Path, lambda_model: Path, tmp_path: Path
) -> None:
    """Second line of defence, below the static check: Keras itself, as the keras backend calls it."""
    from app.predictor import KerasRuntime

    store = Path(shutil.copytree(tiny_store, tmp_path / "store"))
    install_version(store, lambda_keras(lambda_model), tmp_path)
    bundle = ModelStore(store).verify(NAME, 2)
    with pytest.raises(ValueError, match="Lambda"):
        KerasRuntime(bundle)
    # The same runtime loads the genuine bundle: the refusal is about the Lambda, not the path.
    genuine = KerasRuntime(ModelStore(store).verify(NAME, 1))
    assert np.isfinite(genuine.run(np.full((1, 40, 1), 0.5, dtype=np.float32))).all()


def store_error_status(server: Server, fragment: str) -> dict[str, Any] | None:
    """/models, once its `store_error` contains `fragment`."""
    status: dict[str, Any] = server.client.get("/models/tiny/status").json()
    return status if fragment in (status["store_error"] or "") else None


def test_a_deleted_store_leaves_the_loaded_model_serving_and_is_reported(
    private_store: Path, tiny_store: Path, start_server: StartServer
) -> None:
    server = start_server(private_store, NAME, MODEL_POLL_SECONDS=POLL)
    with BackgroundLoad(server.base_url) as load:
        load.wait_for_requests(50)
        shutil.rmtree(private_store)
        # A poll during the rmtree may first see the model folder gone ("has no versions"),
        # then the store itself.
        status = wait_for(lambda: store_error_status(server, "does not exist"), "store error")
        load.wait_for_requests(200)  # well past several polls of the missing store
    assert load.report.failures == 0, load.report.summary()
    assert (status["served"], status["ready"]) == (1, True)
    assert server.served_version() == 1
    assert "model store unavailable" in server.log_text()

    # Put back, the store is read again and the error clears.
    shutil.copytree(tiny_store, private_store)
    wait_for(
        lambda: server.client.get("/models/tiny/status").json()["store_error"] is None,
        "the store error to clear once the folder is back",
    )


def train_command(shared_data: Path, store: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "training",
        "train",
        "--train-csv",
        str(shared_data / "FB_training_data.csv"),
        "--test-csv",
        str(shared_data / "FB_test_data.csv"),
        "--store",
        str(store),
        "--name",
        NAME,
        "--epochs",
        "1",
        "--units",
        "4",
        "--layers",
        "1",
        "--seed",
        "3",
        # The default preset's shape at the smallest size: what is killed is the publish.
        "--members",
        "1",
        "--folds",
        "2",
    ]


def run_and_kill_at_staging(
    shared_data: Path, store: Path, log: Path, delay_ms: int
) -> tuple[int, list[str]]:
    """Start a tiny training run into `store`; SIGKILL it `delay_ms` after its publish starts
    staging. Returns the trainer's exit status and the staging folder names seen."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with log.open("ab") as output:
        trainer = subprocess.Popen(
            train_command(shared_data, store), cwd=REPO_ROOT, env=env, stdout=output, stderr=output
        )
    watcher = subprocess.run(
        [sys.executable, str(KILLER), str(store / NAME), str(trainer.pid), "300", str(delay_ms)],
        capture_output=True,
        text=True,
    )
    trainer.wait()
    staging = watcher.stdout.split()
    assert watcher.returncode == 0 and staging, (
        f"trainer ended ({trainer.returncode}) before its staging folder was seen: "
        f"{watcher.stderr}{log.read_text(errors='replace')[-2000:]}"
    )
    return trainer.returncode, staging


def test_a_publish_killed_midway_leaves_no_version_the_server_would_load(
    private_store: Path, start_server: StartServer, shared_data: Path, tmp_path: Path
) -> None:
    server = start_server(private_store, NAME, MODEL_POLL_SECONDS=POLL)
    store = ModelStore(private_store)
    debris: list[str] = []
    with BackgroundLoad(server.base_url) as load:
        # At once (staging folder just made, nothing written) and a little later (mid-writes).
        for delay_ms in (0, 6):
            returncode, staging = run_and_kill_at_staging(
                shared_data, private_store, tmp_path / "train.log", delay_ms
            )
            assert returncode == -signal.SIGKILL
            debris += staging
            load.wait_for_requests(100)  # several polls of the store with the debris in it
            # Whatever instant the kill hit, every listed version is complete and verifies, and
            # the server never tried to load anything else.
            versions = store.versions(NAME)
            for version in versions:
                store.verify(NAME, version)
            if delay_ms == 0:
                assert versions == [1], "a version appeared although the publish was killed"
            status = server.client.get("/models/tiny/status").json()
            assert [entry["version"] for entry in status["versions"]] == versions
            assert status["last_load_error"] is None, status
            assert server.served_version() in versions
    assert load.report.failures == 0, load.report.summary()
    left = {entry.name for entry in (private_store / NAME).iterdir()}
    assert left - {str(v) for v in store.versions(NAME)} <= set(debris), left

    # Control: the same command run to completion publishes the next version and the server
    # picks it up, so the kills above are what prevented versions; the debris blocks nothing.
    before = store.versions(NAME)
    completed = subprocess.run(
        train_command(shared_data, private_store), cwd=REPO_ROOT, capture_output=True
    )
    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
    assert store.versions(NAME) == [*before, before[-1] + 1]
    wait_for(lambda: server.served_version() == before[-1] + 1, "the completed version served")
